package linux

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/netnsref"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// fdbKey identifies a VXLAN fdb entry (one remote of a MAC).
type fdbKey struct {
	mac route.MAC
	dst dest
}

// fdbRec is one dumped bridge-family fdb entry, compact: a dump of a
// million entries as []netlink.Neigh took ~600 MB (heap profile of
// bagpipe-scale ingest --routes 1000000, linux driver), these take 48 MB.
type fdbRec struct {
	vtep   netip.Addr // NDA_DST, invalid if absent
	vni    uint32     // NDA_VNI, 0 if absent
	state  uint16
	flags  uint8
	master bool // NDA_MASTER set (a bridge entry)
	mac    route.MAC
}

// neighRec is one dumped neighbour entry.
type neighRec struct {
	ip     netip.Addr
	state  uint16
	hasMAC bool
	mac    route.MAC
}

// snapshot is one dump of the namespace's fdb (bridge family) and
// neighbour tables, indexed by interface and restricted to the interfaces
// the driver cares about: the kernel walks every entry of a table whatever
// the filter, so the driver dumps once per round for all EVIs.
type snapshot struct {
	fdb   map[int][]fdbRec
	neigh map[int][]neighRec // both families
}

// takeSnapshot dumps the fdb and the IPv4 and IPv6 neighbour tables,
// keeping the entries of the interfaces keep accepts. The dumps stream
// (one netlink message decoded at a time) on the driver's dump socket,
// never under an EVI lock.
func (d *Driver) takeSnapshot(keep func(index int) bool) (*snapshot, error) {
	s := &snapshot{fdb: map[int][]fdbRec{}, neigh: map[int][]neighRec{}}
	err := d.dumpRetryStream(unix.AF_BRIDGE, func() { clear(s.fdb) }, func(n *ndEntry) {
		if !keep(n.index) || len(n.lladdr) != 6 {
			return
		}
		r := fdbRec{vtep: n.dst, vni: n.vni, state: n.state, flags: n.flags, master: n.master, mac: route.MAC(n.lladdr)}
		s.fdb[n.index] = append(s.fdb[n.index], r)
	})
	if err != nil {
		return nil, fmt.Errorf("dumping the fdb: %w", err)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		first := true
		err := d.dumpRetryStream(fam, func() {
			if !first { // a retry of this family: drop its partial entries
				for i, l := range s.neigh {
					s.neigh[i] = slices.DeleteFunc(l, func(r neighRec) bool { return r.ip.Is4() == (fam == unix.AF_INET) })
				}
			}
			first = false
		}, func(n *ndEntry) {
			if !keep(n.index) || !n.dst.IsValid() {
				return
			}
			r := neighRec{ip: n.dst, state: n.state}
			if len(n.lladdr) == 6 {
				r.hasMAC, r.mac = true, route.MAC(n.lladdr)
			}
			s.neigh[n.index] = append(s.neigh[n.index], r)
		})
		if err != nil {
			return nil, fmt.Errorf("dumping the neighbours: %w", err)
		}
	}
	return s, nil
}

// streamRetries bounds the attempts of a reconcile dump interrupted by
// concurrent changes (NLM_F_DUMP_INTR). Each attempt walks the whole
// table: while instances program a million entries every attempt is
// interrupted, and five of them (dumpRetries) took a fifth of the CPU of
// a withdraw. One retry, then the round is skipped.
const streamRetries = 2

// dumpRetryStream streams a neighbour dump of one family to f, starting
// again (after reset) when the kernel reports it was interrupted by a
// concurrent change, at most streamRetries times. The entries are decoded
// in place (parseNeigh); f must not keep n.lladdr.
func (d *Driver) dumpRetryStream(family int, reset func(), f func(n *ndEntry)) error {
	d.dumpMu.Lock()
	defer d.dumpMu.Unlock()
	var err error
	for range streamRetries {
		reset()
		req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_DUMP)
		req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: d.dumpSock}}
		req.AddData(&netlink.Ndmsg{Family: uint8(family)})
		err = req.ExecuteIter(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH, func(msg []byte) bool {
			if n, ok := parseNeigh(msg); ok {
				f(&n)
			}
			return true
		})
		if !errors.Is(err, netlink.ErrDumpInterrupted) && !errors.Is(err, nl.ErrDumpInterrupted) {
			return err
		}
	}
	return fmt.Errorf("netlink dump interrupted %d times in a row (instances busy programming): %w", streamRetries, err)
}

// openNetlinkSocket opens a NETLINK_ROUTE socket in the driver's
// namespace ("" for the current one), with a receive timeout.
func openNetlinkSocket(ns string) (*nl.NetlinkSocket, error) {
	target := netns.None()
	if ns != "" {
		var err error
		if target, err = netnsref.Open(ns); err != nil {
			return nil, fmt.Errorf("opening network namespace %q: %w", ns, err)
		}
		defer target.Close()
	}
	s, err := nl.GetNetlinkSocketAt(target, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval((30 * time.Second).Nanoseconds())
	if err := s.SetReceiveTimeout(&tv); err != nil {
		s.Close()
		return nil, fmt.Errorf("setting the netlink socket timeout: %w", err)
	}
	return s, nil
}

// touchLimit bounds the keys an EVI records while a dump runs; beyond it
// the EVI skips the entry checks of that round (the next round does them).
const touchLimit = 1 << 16

// touched records what an EVI changed while a reconcile dump ran: the
// dump may show those entries either way, so the reconcile leaves them
// alone (Apply, Plug and Unplug programmed them themselves).
type touched struct {
	on       bool // a dump is running
	overflow bool // more than touchLimit keys: skip the entry checks
	macs     map[route.MAC]struct{}
	ips      map[netip.Addr]struct{}
	ports    map[string]struct{}
}

func (t *touched) start() {
	*t = touched{on: true}
}

func (t *touched) mac(m route.MAC) {
	if !t.on || t.overflow {
		return
	}
	if t.macs == nil {
		t.macs = map[route.MAC]struct{}{}
	}
	t.macs[m] = struct{}{}
	t.check()
}

func (t *touched) ip(ip netip.Addr) {
	if !t.on || t.overflow {
		return
	}
	if t.ips == nil {
		t.ips = map[netip.Addr]struct{}{}
	}
	t.ips[ip] = struct{}{}
	t.check()
}

func (t *touched) port(name string) {
	if !t.on || t.overflow {
		return
	}
	if t.ports == nil {
		t.ports = map[string]struct{}{}
	}
	t.ports[name] = struct{}{}
	t.check()
}

func (t *touched) check() {
	if len(t.macs)+len(t.ips)+len(t.ports) > touchLimit {
		*t = touched{on: true, overflow: true}
	}
}

func (t *touched) hasMAC(m route.MAC) bool  { _, ok := t.macs[m]; return ok }
func (t *touched) hasIP(ip netip.Addr) bool { _, ok := t.ips[ip]; return ok }
func (t *touched) hasPort(name string) bool { _, ok := t.ports[name]; return ok }

// reconcile brings the kernel in line with the EVI's desired state
// (field notes §A4): devices recreated if deleted, put back in the bridge
// and up; missing fdb, flood and neighbour entries re-added; permanent
// entries nobody asked for removed from our VXLAN device (never from a
// reused one). After an adoption this is what removes the stale entries
// of the earlier run, from the first reconcile at least ReconcileInterval
// after the adoption (time for the instance to relearn its routes). Each
// repair is counted.
//
// snap is a dump Driver.Reconcile took without holding the EVI's lock,
// after e.changes.start(): entries the EVI changed since are left alone.
// With snap nil, or when a device had to be recreated, the EVI dumps again
// under its lock (its own interfaces only).
func (e *evi) reconcile(snap *snapshot) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.detached {
		return nil
	}
	start := time.Now()
	before := e.repairs
	err := e.reconcileLocked(snap)
	e.changes = touched{}
	e.reconciles++
	e.lastReconcile, e.lastReconcileTook = start, time.Since(start)
	e.lastReconcileErr = ""
	if err != nil {
		e.lastReconcileErr = err.Error()
		err = fmt.Errorf("reconciling E-VPN instance %s: %w", e.cfg.ExternalID, err)
	}
	if n := e.repairs - before; n > 0 {
		e.d.repairs.Add(n)
		e.log.Warn("reconcile repaired the dataplane", "repairs", n)
	}
	return err
}

func (e *evi) repaired(what string, args ...any) {
	e.repairs++
	e.log.Info("reconcile: "+what, args...)
}

// interfaces reports whether an interface index is one of the EVI's (its
// VXLAN device or a plugged port).
func (e *evi) interfaces() map[int]bool {
	m := map[int]bool{e.vxIndex: true}
	for _, p := range e.ports {
		m[p.index] = true
	}
	return m
}

func (e *evi) reconcileLocked(snap *snapshot) error {
	before := e.repairs
	if err := e.reconcileDevices(); err != nil {
		return err
	}
	if snap == nil || e.repairs != before {
		e.changes = touched{} // a fresh dump under our lock: nothing to skip
		own := e.interfaces()
		var err error
		if snap, err = e.d.takeSnapshot(func(i int) bool { return own[i] }); err != nil {
			return err
		}
	}
	if e.changes.overflow {
		return nil // busy: the next round checks the entries
	}
	var errs []error
	if err := e.reconcileFDB(snap); err != nil {
		errs = append(errs, err)
	}
	if err := e.reconcileNeigh(snap.neigh[e.vxIndex]); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reconcileDevices recreates our bridge and VXLAN device if they are gone
// and puts the VXLAN device and the ports back in the bridge.
func (e *evi) reconcileDevices() error {
	h := e.d.h
	// Bridge.
	br, err := h.LinkByIndex(e.brIndex)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("looking up bridge %s: %w", e.brName, err)
	}
	brRecreated := false
	if br == nil || br.Attrs().Name != e.brName || br.Type() != "bridge" {
		if !e.ownBridge {
			l, err := h.LinkByName(e.brName)
			if err != nil {
				return fmt.Errorf("linuxbr bridge %s is gone (%w); it is not ours to recreate", e.brName, err)
			}
			e.brIndex = l.Attrs().Index
		} else {
			if l, err := h.LinkByName(e.brName); err == nil && l.Attrs().Alias == e.alias && l.Type() == "bridge" {
				e.brIndex = l.Attrs().Index // recreated under the same name (ours)
			} else {
				if err == nil {
					return fmt.Errorf("bridge %s was replaced by an interface that is not ours (alias %q); remove it", e.brName, l.Attrs().Alias)
				}
				if err := e.createBridge(); err != nil {
					return err
				}
				e.repaired("recreated the bridge", "bridge", e.brName)
				brRecreated = true
			}
		}
	} else if e.ownBridge && br.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("setting bridge %s up: %w", e.brName, err)
		}
		e.repaired("set the bridge up", "bridge", e.brName)
	}

	// VXLAN device.
	vx, err := h.LinkByIndex(e.vxIndex)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("looking up VXLAN device %s: %w", e.vxName, err)
	}
	if vx == nil || vx.Attrs().Name != e.vxName || vx.Type() != "vxlan" {
		if !e.ownVXLAN {
			return fmt.Errorf("reused VXLAN device %s is gone; it is not ours to recreate", e.vxName)
		}
		if l, err := h.LinkByName(e.vxName); err == nil {
			if l.Attrs().Alias != e.alias {
				return fmt.Errorf("VXLAN device %s was replaced by an interface that is not ours (alias %q); remove it", e.vxName, l.Attrs().Alias)
			}
			if err := h.LinkDel(l); err != nil && !isNotFound(err) {
				return fmt.Errorf("deleting %s to recreate it: %w", e.vxName, err)
			}
		}
		if err := e.createVXLAN(); err != nil {
			return err
		}
		e.repaired("recreated the VXLAN device", "vxlan", e.vxName)
	} else {
		if vx.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(vx, e.brIndex); err != nil {
				return fmt.Errorf("putting %s back in bridge %s: %w", e.vxName, e.brName, err)
			}
			e.repaired("put the VXLAN device back in the bridge", "vxlan", e.vxName)
		}
		if e.ownVXLAN && vx.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(vx); err != nil {
				return fmt.Errorf("setting %s up: %w", e.vxName, err)
			}
			e.repaired("set the VXLAN device up", "vxlan", e.vxName)
		}
	}

	// Ports we enslaved, and the gateway port.
	for _, p := range e.ports {
		l, err := h.LinkByName(p.name)
		if err != nil {
			continue // the VM's interface is gone: nothing to put back
		}
		p.index = l.Attrs().Index
		if (p.enslaved || brRecreated && e.ownBridge) && l.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(l, e.brIndex); err != nil {
				return fmt.Errorf("putting port %q back in bridge %s: %w", p.name, e.brName, err)
			}
			p.enslaved = true
			e.repaired("put a port back in the bridge", "port", p.name)
		}
	}
	if e.gateway != "" && e.gatewayEnslaved {
		if l, err := h.LinkByName(e.gateway); err == nil && l.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(l, e.brIndex); err != nil {
				return fmt.Errorf("putting gateway port %q back in bridge %s: %w", e.gateway, e.brName, err)
			}
			e.repaired("put the gateway port back in the bridge", "port", e.gateway)
		}
	}
	return nil
}

// reconcileFDB compares the dumped bridge-family fdb entries of the VXLAN
// device and of the ports with the desired remote and local entries,
// leaving alone what the EVI changed during the dump. The present entries
// are sorted (in snap, in place) only when some desired entry is missing.
func (e *evi) reconcileFDB(snap *snapshot) error {
	h := e.d.h
	ch := &e.changes
	recs := snap.fdb[e.vxIndex]
	keyOf := func(r *fdbRec) (fdbKey, bool) {
		if r.flags&netlink.NTF_SELF == 0 || !r.vtep.IsValid() {
			return fdbKey{}, false
		}
		k := fdbKey{mac: r.mac, dst: dest{vtep: r.vtep, vni: r.vni}}
		if k.dst.vni == 0 { // the kernel omits NDA_VNI when it is the device's
			k.dst.vni = e.cfg.VNI
		}
		return k, true
	}
	var unexpected []fdbKey
	matched := 0
	for i := range recs {
		k, ok := keyOf(&recs[i])
		if !ok {
			continue
		}
		if e.wantFDB(k) {
			matched++
		} else if recs[i].state&netlink.NUD_PERMANENT != 0 && !ch.hasMAC(k.mac) {
			unexpected = append(unexpected, k)
		}
	}
	var errs []error
	if matched != e.fdb.len()+len(e.flood) {
		// The present entries, sorted in place (these records are the
		// EVI's own): a map of them took ~100 MB at 700k entries.
		present := recs[:0]
		for i := range recs {
			if k, ok := keyOf(&recs[i]); ok {
				r := recs[i]
				r.mac, r.vtep, r.vni = k.mac, k.dst.vtep, k.dst.vni
				present = append(present, r)
			}
		}
		slices.SortFunc(present, cmpFDBRec)
		has := func(k fdbKey) bool {
			_, ok := slices.BinarySearchFunc(present, fdbRec{mac: k.mac, vtep: k.dst.vtep, vni: k.dst.vni}, cmpFDBRec)
			return ok
		}
		for m, dst := range e.fdb.all {
			if has(fdbKey{m, dst}) || ch.hasMAC(m) {
				continue
			}
			if err := h.NeighSet(e.remoteFDB(m, dst)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding fdb entry %s %s: %w", m, dst, err))
				continue
			}
			e.repaired("re-added a missing fdb entry", "mac", m.String(), "dst", dst.String())
		}
		for f := range e.flood {
			if has(fdbKey{route.MAC{}, f}) || ch.hasMAC(route.MAC{}) {
				continue
			}
			if err := h.NeighAppend(e.remoteFDB(route.MAC{}, f)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding flood entry %s: %w", f, err))
				continue
			}
			e.repaired("re-added a missing flood entry", "dst", f.String())
		}
	}
	if e.ownVXLAN && !time.Now().Before(e.keepStaleUntil) {
		for _, k := range unexpected {
			if err := ignoreNotFound(h.NeighDel(e.remoteFDB(k.mac, k.dst))); err != nil {
				errs = append(errs, fmt.Errorf("removing unexpected fdb entry %s %s: %w", k.mac, k.dst, err))
				continue
			}
			e.repaired("removed an unexpected fdb entry", "mac", k.mac.String(), "dst", k.dst.String())
		}
	}
	// Local static entries on the ports. Bridge entries come back with
	// NDA_MASTER set, not NTF_MASTER.
	for _, p := range e.ports {
		if len(p.macs) == 0 || ch.hasPort(p.name) {
			continue
		}
		have := map[route.MAC]bool{}
		for _, r := range snap.fdb[p.index] {
			if r.master && r.state&netlink.NUD_NOARP != 0 {
				have[r.mac] = true
			}
		}
		for m := range p.macs {
			if have[m] {
				continue
			}
			if err := h.NeighSet(localFDB(p.index, m)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding the static fdb entry %s on %q: %w", m, p.name, err))
				continue
			}
			e.repaired("re-added a missing static fdb entry", "mac", m.String(), "port", p.name)
		}
	}
	return errors.Join(errs...)
}

// cmpFDBRec orders fdb records by MAC, VTEP and VNI.
func cmpFDBRec(a, b fdbRec) int {
	if c := bytes.Compare(a.mac[:], b.mac[:]); c != 0 {
		return c
	}
	if c := a.vtep.Compare(b.vtep); c != 0 {
		return c
	}
	return cmp.Compare(a.vni, b.vni)
}

func (e *evi) wantFDB(k fdbKey) bool {
	if k.mac == (route.MAC{}) {
		return e.flood[k.dst]
	}
	d, ok := e.fdb.get(k.mac)
	return ok && d == k.dst
}

// reconcileNeigh compares the VXLAN device's dumped neighbours with the
// desired remote IPs, leaving alone the IPs the EVI changed during the
// dump. recs (the EVI's own, from the snapshot) may be reordered.
func (e *evi) reconcileNeigh(recs []neighRec) error {
	h := e.d.h
	ch := &e.changes
	removeStale := e.ownVXLAN && !time.Now().Before(e.keepStaleUntil)
	var errs []error
	matched := 0
	for _, r := range recs {
		if !r.hasMAC {
			continue
		}
		if a, ok := e.neigh.active(r.ip); ok {
			if a == r.mac {
				matched++
			}
			continue
		}
		if r.state&netlink.NUD_PERMANENT == 0 || !removeStale || ch.hasIP(r.ip) {
			continue
		}
		if err := ignoreNotFound(h.NeighDel(e.remoteNeigh(r.ip, r.mac))); err != nil {
			errs = append(errs, fmt.Errorf("removing unexpected neighbour %s: %w", r.ip, err))
			continue
		}
		e.repaired("removed an unexpected neighbour", "ip", r.ip.String(), "mac", r.mac.String())
	}
	if matched == e.neigh.len() {
		return errors.Join(errs...)
	}
	// The present neighbours, sorted in place (these records are the
	// EVI's own) instead of a map.
	present := slices.DeleteFunc(recs, func(r neighRec) bool { return !r.hasMAC })
	slices.SortFunc(present, func(a, b neighRec) int { return a.ip.Compare(b.ip) })
	for ip, want := range e.neigh.all {
		i, ok := slices.BinarySearchFunc(present, ip, func(r neighRec, ip netip.Addr) int { return r.ip.Compare(ip) })
		if (ok && present[i].mac == want) || ch.hasIP(ip) {
			continue
		}
		if err := h.NeighSet(e.remoteNeigh(ip, want)); err != nil {
			errs = append(errs, fmt.Errorf("re-adding neighbour %s %s: %w", ip, want, err))
			continue
		}
		e.repaired("re-added a missing or wrong neighbour", "ip", ip.String(), "mac", want.String())
	}
	return errors.Join(errs...)
}
