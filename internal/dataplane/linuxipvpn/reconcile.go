package linuxipvpn

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// reconcile repairs the VRF's kernel state against its desired state.
// have holds our rules found by the driver's dump, byTable our routes by
// table (the VRF's table and its label tables); both were dumped before
// the desired state is read here, so an entry that changed meanwhile is
// at worst rewritten, never lost.
// While the adoption grace runs, an adopted VRF keeps routes it has not
// (yet) re-added.
func (v *vrf) reconcile(have map[rule]bool, byTable map[int][]kroute, grace bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.detached {
		return nil
	}
	v.reconciles++
	var errs []error
	repaired := 0

	// Ports: an interface recreated under the same name gets a new index.
	moved := map[string]bool{}
	for name, lp := range v.ports {
		l, err := v.d.h.LinkByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s: %w (is the VM gone without an unplug?)", name, err))
			continue
		}
		if l.Attrs().Index != lp.index {
			lp.index = l.Attrs().Index
			moved[name] = true
			repaired++
		}
		if l.Attrs().Flags&net.FlagUp == 0 { // as Plug does
			if err := v.d.h.LinkSetUp(l); err != nil {
				errs = append(errs, fmt.Errorf("bringing port %s up: %w", name, err))
			}
		}
	}

	// Label tables before the rules that point to them.
	n, lerr := v.reconcileLabels(byTable)
	repaired += n
	errs = append(errs, lerr)

	for r := range v.desiredRules() {
		if have[r] {
			continue
		}
		if err := v.d.raw.ruleAdd(r, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("re-adding the rule %s: %w", r, err))
			continue
		}
		v.rules[r] = true
		repaired++
	}

	kr := byTable[v.table]
	got := make(map[netip.Prefix]kroute, len(kr))
	for _, r := range kr {
		got[r.Dst] = r
	}
	want := map[netip.Prefix]bool{}
	check := func(p netip.Prefix) {
		if want[p] {
			return
		}
		want[p] = true
		k, ok := v.desiredRoute(p)
		g, present := got[p]
		switch {
		case ok && (!present || g.sig() != k.sig()):
			repaired++
			errs = append(errs, v.install(p))
		case !ok && present:
			want[p] = false // removed below
		}
	}
	for _, p := range v.fixedPrefixes() {
		check(p)
	}
	for p := range v.local {
		check(p)
	}
	for p := range v.routes {
		check(p)
	}
	if !(v.adopted && grace) {
		for p, g := range got {
			if !want[p] {
				repaired++
				// An adopted endpoint not plugged again: its neighbour
				// goes too, unless a plugged endpoint uses it.
				if a, idx, ok := v.d.endpointNeigh(g); ok && !v.neighInUse(idx, a) {
					v.d.delPermanentNeigh(idx, a)
				}
				errs = append(errs, v.d.delRoute(g))
			}
		}
	}

	// Neighbours of the local endpoints.
	for name, lp := range v.ports {
		list, err := v.d.h.NeighList(lp.index, netlink.FAMILY_V4)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the neighbours of %s: %w", name, err))
			continue
		}
		cur := map[netip.Addr]netlink.Neigh{}
		for _, n := range list {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				cur[a.Unmap()] = n
			}
		}
		for p, ep := range lp.eps {
			if !ep.toPort() || ep.mac.IsZero() || v.local[p] != name {
				continue
			}
			n, ok := cur[neighAddr(p, ep.mac)]
			if ok && !moved[name] && n.State&netlink.NUD_PERMANENT != 0 && n.HardwareAddr.String() == ep.mac.String() {
				continue
			}
			repaired++
			errs = append(errs, v.setNeigh(lp, p, ep))
		}
	}
	v.repairs += uint64(repaired)
	v.d.repairs.Add(uint64(repaired))
	err := errors.Join(errs...)
	v.lastErr = ""
	if err != nil {
		v.lastErr = err.Error()
		return fmt.Errorf("IP VPN instance %s: reconcile: %w", v.cfg.ExternalID, err)
	}
	if repaired > 0 {
		v.log.Info("reconcile repaired kernel state", "objects", repaired)
	}
	return nil
}

// EndGrace ends the adoption grace now: state of an earlier run that no
// instance claimed is removed, and adopted VRFs drop what they did not
// re-add.
func (d *Driver) EndGrace() error {
	d.mu.Lock()
	d.graceOver = true
	d.mu.Unlock()
	err := d.removeUnclaimed(true)
	return errors.Join(err, d.Reconcile())
}

// inGrace reports whether state found at New is still kept for adoption.
func (d *Driver) inGrace() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.graceOver && d.opts.AdoptGrace > 0 && time.Since(d.start) < d.opts.AdoptGrace
}

// liveVRFs returns the live VRFs (d.mu must not be held).
func (d *Driver) liveVRFs() []*vrf {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := make([]*vrf, 0, len(d.vrfs))
	for _, v := range d.vrfs {
		list = append(list, v)
	}
	return list
}

// removeUnclaimed deletes our rules, routes and VXLAN neighbours no live
// VRF wants; unless all, state of the tables found at New is kept while
// the grace runs.
func (d *Driver) removeUnclaimed(all bool) error {
	keep := !all && d.inGrace()
	// Dump first, then compute what is wanted: anything added meanwhile
	// is absent from the dump and so never removed.
	rules, err := d.raw.rules()
	if err != nil {
		return fmt.Errorf("linux IP VPN driver: listing rules: %w", err)
	}
	routes, err := d.raw.routes(d.ours)
	if err != nil {
		return fmt.Errorf("linux IP VPN driver: listing routes: %w", err)
	}
	wanted := map[rule]bool{}
	live := map[int]bool{}
	for _, v := range d.liveVRFs() {
		v.mu.Lock()
		if !v.closed {
			live[v.table] = true
			for l := range v.desiredLabels() {
				live[d.LabelTable(l)] = true
			}
			for r := range v.desiredRules() {
				wanted[r] = true
			}
		}
		v.mu.Unlock()
	}
	d.mu.Lock()
	inv := maps2set(d.inventory)
	d.mu.Unlock()
	var errs []error
	for _, r := range rules {
		if !d.ownedRule(r) || wanted[r.rule] || (keep && inv[r.Table]) {
			continue
		}
		if err := d.raw.ruleDel(r.rule, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("deleting the rule %s: %w", r.rule, err))
			continue
		}
		d.log.Info("removed an unclaimed rule", "rule", r.rule.String())
	}
	flushed := map[int]int{}
	for _, r := range routes {
		if live[r.Table] || (keep && inv[r.Table]) {
			continue
		}
		// A label table's route shares its neighbour with the endpoint
		// route of the VRF table.
		if a, idx, ok := d.endpointNeigh(r); ok && !d.isLabelTable(r.Table) {
			d.delPermanentNeigh(idx, a)
		}
		if err := d.delRoute(r); err != nil {
			errs = append(errs, err)
			continue
		}
		flushed[r.Table]++
	}
	for t, n := range flushed {
		d.log.Info("removed routes of an unclaimed table", "table", t, "routes", n)
	}
	if !keep || len(inv) == 0 {
		errs = append(errs, d.removeUnusedPENeighbours())
	}
	if all {
		d.mu.Lock()
		clear(d.inventory)
		d.mu.Unlock()
	}
	return errors.Join(errs...)
}

func maps2set(m map[int]bool) map[int]bool {
	out := make(map[int]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// delRoute deletes a dumped route.
func (d *Driver) delRoute(r kroute) error {
	nr := &netlink.Route{Dst: ipNet(r.Dst), Table: r.Table, Type: int(r.Type), Protocol: netlink.RouteProtocol(r.Protocol), Scope: netlink.SCOPE_NOWHERE}
	if err := d.h.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) && !isNotFound(err) {
		return fmt.Errorf("deleting the route %s in table %d: %w", r.Dst, r.Table, err)
	}
	return nil
}

// endpointNeigh returns the permanent neighbour (address, port index) a
// dumped VRF-table route of a local endpoint uses: the address of a /32
// routed onto a port, or the link-local next hop of a prefix endpoint
// (neighAddr).
func (d *Driver) endpointNeigh(r kroute) (netip.Addr, int, bool) {
	if r.Type != unix.RTN_UNICAST || len(r.Nexthops) != 1 {
		return netip.Addr{}, 0, false
	}
	nh := r.Nexthops[0]
	switch {
	case nh.Oif == 0 || nh.Oif == d.vx() || nh.Encap.Dst.IsValid():
	case r.Dst.Bits() == 32 && !nh.Gw.IsValid():
		return r.Dst.Addr(), nh.Oif, true
	case r.Dst.Bits() < 32 && nh.Gw.IsLinkLocalUnicast():
		return nh.Gw, nh.Oif, true
	}
	return netip.Addr{}, 0, false
}

// neighInUse reports whether a plugged to-port endpoint of the VRF uses
// the neighbour a on the port of index idx.
func (v *vrf) neighInUse(idx int, a netip.Addr) bool {
	for name, lp := range v.ports {
		if lp.index != idx {
			continue
		}
		for p, ep := range lp.eps {
			if v.local[p] == name && !ep.mac.IsZero() && neighAddr(p, ep.mac) == a {
				return true
			}
		}
	}
	return false
}

// delPermanentNeigh deletes the permanent neighbour ip on link index, if
// there is one.
func (d *Driver) delPermanentNeigh(index int, ip netip.Addr) {
	list, err := d.h.NeighList(index, netlink.FAMILY_V4)
	if err != nil {
		return
	}
	for _, n := range list {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip && n.State&netlink.NUD_PERMANENT != 0 {
			_ = d.h.NeighDel(&n)
		}
	}
}

// removeUnusedPENeighbours deletes the permanent neighbours of our VXLAN
// device that no route uses, and re-adds the missing ones.
func (d *Driver) removeUnusedPENeighbours() error {
	d.mu.Lock()
	vx := d.vxIndex
	want := make(map[netip.Addr]bool, len(d.peRefs))
	for pe := range d.peRefs {
		want[pe] = true
	}
	d.mu.Unlock()
	if vx == 0 {
		return nil // no device (Cleanup): its neighbours go with it
	}
	list, err := d.h.NeighList(vx, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("listing the neighbours of %s: %w", TXDeviceName, err)
	}
	var errs []error
	for _, n := range list {
		a, _ := netip.AddrFromSlice(n.IP)
		a = a.Unmap()
		if want[a] && n.HardwareAddr.String() == GatewayMAC.String() && n.State&netlink.NUD_PERMANENT != 0 {
			delete(want, a)
			continue
		}
		if !want[a] && n.State&netlink.NUD_PERMANENT != 0 {
			if err := d.h.NeighDel(&n); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("removing the neighbour %s on %s: %w", a, TXDeviceName, err))
			}
		}
	}
	for pe := range want {
		d.repairs.Add(1)
		errs = append(errs, d.setPENeigh(vx, pe))
	}
	return errors.Join(errs...)
}

// Reconcile repairs the kernel state now: the VXLAN device, the moved
// local rule, the drop rule, every live VRF's rules, routes (label tables
// included) and neighbours, and removes unclaimed state (respecting the
// adoption grace).
func (d *Driver) Reconcile() error {
	var errs []error
	if err := d.ensureDevice(); err != nil {
		errs = append(errs, err)
	}
	if err := d.moveLocalRule(); err != nil {
		errs = append(errs, err)
	}
	if err := d.ensureDropRule(); err != nil {
		errs = append(errs, err)
	}
	rules, err := d.raw.rules()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing rules: %w", err))...)
	}
	routes, err := d.raw.routes(d.ours)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing routes: %w", err))...)
	}
	have := map[rule]bool{}
	for _, r := range rules {
		if d.ownedRule(r) {
			have[r.rule] = true
		}
	}
	byTable := map[int][]kroute{}
	for _, r := range routes {
		byTable[r.Table] = append(byTable[r.Table], r)
	}
	grace := d.inGrace()
	for _, v := range d.liveVRFs() {
		errs = append(errs, v.reconcile(have, byTable, grace))
	}
	errs = append(errs, d.removeUnclaimed(false))
	return errors.Join(errs...)
}
