package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Apply implements dataplane.EVIDataplane: every change is tried, in order;
// their netlink requests go to the kernel in batches (batch.go); the
// failed ones are reported together (the instance retries them). The
// desired state is updated even when the kernel refuses a change, so the
// reconcile repairs it too.
func (e *evi) Apply(changes []dataplane.EVIChange) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	e.d.touch()
	var errs []error
	failed := 0
	fail := func(c dataplane.EVIChange, err error) {
		failed++
		if len(errs) < maxListedErrors {
			errs = append(errs, fmt.Errorf("%s %s: %w", c.Kind, describe(c), err))
		}
	}
	ops := make([]neighOp, 0, len(changes))
	for i, c := range changes {
		op, ok, err := e.plan(c)
		switch {
		case err != nil:
			fail(c, err)
		case ok:
			op.change = i
			ops = append(ops, op)
		}
	}
	for i, err := range e.d.batch.run(ops) {
		if err != nil {
			fail(changes[ops[i].change], err)
		}
	}
	if failed > 0 {
		if failed > len(errs) {
			errs = append(errs, fmt.Errorf("and %d more", failed-len(errs)))
		}
		return fmt.Errorf("%d of %d dataplane changes failed on %s: %w", failed, len(changes), e.vxName, errors.Join(errs...))
	}
	return nil
}

// maxListedErrors bounds the failed changes an Apply error names.
const maxListedErrors = 20

func describe(c dataplane.EVIChange) string {
	switch c.Kind {
	case dataplane.AddRemoteIP, dataplane.RemoveRemoteIP:
		return c.IP.String() + " " + c.MAC.String()
	case dataplane.AddFlood, dataplane.RemoveFlood:
		return fmt.Sprintf("%s vni %d", c.VTEP, c.VNI)
	}
	return fmt.Sprintf("%s %s vni %d", c.MAC, c.VTEP, c.VNI)
}

// plan updates the desired state for one change and returns the netlink
// request that programs it (ok false: nothing to send).
func (e *evi) plan(c dataplane.EVIChange) (op neighOp, ok bool, err error) {
	const set = unix.NLM_F_CREATE | unix.NLM_F_REPLACE // NeighSet
	dst := dest{vtep: c.VTEP.Unmap(), vni: c.VNI}
	if dst.vni == 0 {
		dst.vni = e.cfg.VNI
	}
	switch c.Kind {
	case dataplane.AddRemoteMAC, dataplane.RemoveRemoteMAC:
		e.changes.mac(c.MAC)
	case dataplane.AddFlood, dataplane.RemoveFlood:
		e.changes.mac(route.MAC{})
	case dataplane.AddRemoteIP, dataplane.RemoveRemoteIP:
		e.changes.ip(c.IP.Unmap())
	}
	switch c.Kind {
	case dataplane.AddRemoteMAC:
		if !dst.vtep.IsValid() {
			return op, false, errors.New("no VTEP address")
		}
		e.fdb.set(c.MAC, dst)
		return e.fdbOp(unix.RTM_NEWNEIGH, set, c.MAC, dst), true, nil
	case dataplane.RemoveRemoteMAC:
		if !dst.vtep.IsValid() {
			return op, false, nil // never added (Add refuses it)
		}
		if cur, ok := e.fdb.get(c.MAC); ok && cur == dst {
			e.fdb.del(c.MAC)
		}
		// The kernel deletes only the entry with this destination: after a
		// MAC move (Add new, Remove old) the new entry stays.
		return e.fdbOp(unix.RTM_DELNEIGH, 0, c.MAC, dst), true, nil
	case dataplane.AddFlood:
		if !dst.vtep.IsValid() {
			return op, false, errors.New("no VTEP address")
		}
		e.flood[dst] = true
		return e.fdbOp(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_APPEND, route.MAC{}, dst), true, nil
	case dataplane.RemoveFlood:
		if !dst.vtep.IsValid() {
			return op, false, nil // never added (Add refuses it)
		}
		delete(e.flood, dst)
		return e.fdbOp(unix.RTM_DELNEIGH, 0, route.MAC{}, dst), true, nil
	case dataplane.AddRemoteIP:
		ip := c.IP.Unmap()
		if !ip.IsValid() {
			return op, false, errors.New("no IP address")
		}
		if _, ok := e.neigh.active(ip); !ok {
			e.neigh.setList(ip, []route.MAC{c.MAC}) // the common case
		} else {
			l := slices.DeleteFunc(e.neigh.list(ip), func(m route.MAC) bool { return m == c.MAC })
			e.neigh.setList(ip, append(l, c.MAC))
		}
		return e.neighOpFor(unix.RTM_NEWNEIGH, set, ip, c.MAC), true, nil
	case dataplane.RemoveRemoteIP:
		ip := c.IP.Unmap()
		l := e.neigh.list(ip)
		i := slices.Index(l, c.MAC)
		if i < 0 {
			return op, false, nil // not ours (or already gone): the entry maps the IP elsewhere
		}
		active := i == len(l)-1
		l = slices.Delete(l, i, i+1)
		e.neigh.setList(ip, l)
		if len(l) == 0 {
			return e.neighOpFor(unix.RTM_DELNEIGH, 0, ip, c.MAC), true, nil
		}
		if active {
			return e.neighOpFor(unix.RTM_NEWNEIGH, set, ip, l[len(l)-1]), true, nil
		}
		return op, false, nil
	}
	return op, false, fmt.Errorf("unknown change kind %d", c.Kind)
}

func ignoreNotFound(err error) error {
	if err != nil && isNotFound(err) {
		return nil
	}
	return err
}

// remoteFDB is a VXLAN fdb entry: "bridge fdb … dev vxlan dst VTEP vni VNI
// self permanent".
func (e *evi) remoteFDB(mac route.MAC, d dest) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    e.vxIndex,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT,
		HardwareAddr: net.HardwareAddr(mac[:]),
		IP:           d.vtep.AsSlice(),
		VNI:          int(d.vni),
	}
}

// remoteNeigh is a permanent neighbour on the VXLAN device (ARP proxy).
func (e *evi) remoteNeigh(ip netip.Addr, mac route.MAC) *netlink.Neigh {
	fam := unix.AF_INET
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	return &netlink.Neigh{
		LinkIndex:    e.vxIndex,
		Family:       fam,
		State:        netlink.NUD_PERMANENT,
		IP:           ip.AsSlice(),
		HardwareAddr: net.HardwareAddr(mac[:]),
	}
}
