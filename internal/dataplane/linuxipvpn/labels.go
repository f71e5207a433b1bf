package linuxipvpn

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// This file delivers received traffic by label (see the package comment):
// each local label has a rule "tun_id <label> lookup <label table>" and a
// label table (Driver.LabelTable) whose only route, the default, goes to
// the endpoint the label was allocated for. Upstream's linux driver does
// the same with the MPLS route "<label> via inet <ip> dev <port>"
// (upstream-bagpipe.md §7.3), the ovs driver with its encap-in flows
// (§7.2); the label is the VNI here, as in the ovs driver's vxlan_encap
// mode.

// labelCand is an endpoint a label may deliver to.
type labelCand struct {
	port string
	p    netip.Prefix
	nh   knexthop
}

// before orders the endpoints of one label: a /32 first (its own address
// is the gateway), then the lowest prefix, then the port name, so that the
// choice does not depend on map order.
func (c labelCand) before(o labelCand) bool {
	if (c.p.Bits() == 32) != (o.p.Bits() == 32) {
		return c.p.Bits() == 32
	}
	if x := c.p.Addr().Compare(o.p.Addr()); x != 0 {
		return x < 0
	}
	if c.p.Bits() != o.p.Bits() {
		return c.p.Bits() < o.p.Bits()
	}
	return c.port < o.port
}

// labelNexthop is where traffic for the endpoint p, ep of port lp goes:
// via its address (a /32: its permanent neighbour, or ARP without a MAC),
// via the link-local neighbour of a prefix endpoint with a MAC
// (neighAddr), or straight onto the port (a prefix endpoint without a
// MAC: the kernel resolves each destination, as the VRF route does).
func labelNexthop(lp *lport, p netip.Prefix, ep endpoint) knexthop {
	nh := knexthop{Oif: lp.index}
	switch {
	case p.Bits() == 32:
		nh.Gw = p.Addr()
	case !ep.mac.IsZero():
		nh.Gw = neighAddr(p, ep.mac)
	}
	return nh
}

// desiredLabels is the route each local label's table should hold: one
// per label of a to-port endpoint routed to its port (v.local), the
// default towards the chosen endpoint (labelCand.before). Labels are per
// MAC (reference §5.4): the endpoints sharing a label share a MAC, so any
// of them reaches the same VM.
func (v *vrf) desiredLabels() map[uint32]kroute {
	best := make(map[uint32]labelCand, len(v.labels)+1)
	for name, lp := range v.ports {
		for p, ep := range lp.eps {
			if !ep.toPort() || v.local[p] != name {
				continue
			}
			c := labelCand{port: name, p: p, nh: labelNexthop(lp, p, ep)}
			if o, ok := best[ep.label]; !ok || c.before(o) {
				best[ep.label] = c
			}
		}
	}
	out := make(map[uint32]kroute, len(best))
	for l, c := range best {
		out[l] = kroute{Table: v.d.LabelTable(l), Dst: defaultRoute, Type: unix.RTN_UNICAST, Nexthops: []knexthop{c.nh}}
	}
	return out
}

// syncDelivery makes the kernel follow the endpoints after a plug or
// unplug: label routes that changed are written first, then the rules
// (so that a new tun_id rule finds its table filled, and a removed one
// stops matching), then the routes of labels no longer used are removed.
// A table that is empty meanwhile is harmless: its traffic falls to the
// drop rule.
func (v *vrf) syncDelivery() error {
	want := v.desiredLabels()
	var errs []error
	for l, k := range want {
		if cur, ok := v.labels[l]; ok && sameRoute(cur, k) {
			continue
		}
		if err := v.d.h.RouteReplace(v.kernelRoute(k)); err != nil {
			errs = append(errs, fmt.Errorf("installing the delivery of label %d (%s): %w", l, k.sig(), err))
			continue
		}
		v.labels[l] = k
		v.d.claim(k.Table)
	}
	errs = append(errs, v.syncRulesTo(v.rulesFor(want)))
	for l := range v.labels {
		if _, ok := want[l]; ok {
			continue
		}
		if err := v.delLabelRoute(l); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(v.labels, l)
	}
	return errors.Join(errs...)
}

// sameRoute reports whether two routes are the same (what sig compares,
// without formatting: syncDelivery compares every label on each plug).
func sameRoute(a, b kroute) bool {
	return a.Table == b.Table && a.Dst == b.Dst && a.Type == b.Type && slices.Equal(a.Nexthops, b.Nexthops)
}

// delLabelRoute removes the default route of label l's table.
func (v *vrf) delLabelRoute(l uint32) error {
	t := v.d.LabelTable(l)
	err := v.d.h.RouteDel(&netlink.Route{Dst: ipNet(defaultRoute), Table: t, Scope: netlink.SCOPE_NOWHERE})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing the delivery of label %d (table %d): %w", l, t, err)
	}
	return nil
}

// reconcileLabels repairs the label tables against desiredLabels from the
// dumped routes (byTable); it returns the number of objects repaired.
func (v *vrf) reconcileLabels(byTable map[int][]kroute) (int, error) {
	want := v.desiredLabels()
	repaired := 0
	var errs []error
	for l, k := range want {
		var got *kroute
		for i, r := range byTable[k.Table] {
			if r.Dst == defaultRoute {
				got = &byTable[k.Table][i]
				continue
			}
			repaired++ // a label table holds the default only
			errs = append(errs, v.d.delRoute(r))
		}
		if got != nil && got.sig() == k.sig() {
			v.labels[l] = k
			continue
		}
		repaired++
		if err := v.d.h.RouteReplace(v.kernelRoute(k)); err != nil {
			errs = append(errs, fmt.Errorf("re-installing the delivery of label %d (%s): %w", l, k.sig(), err))
			continue
		}
		v.labels[l] = k
	}
	for l := range v.labels {
		if _, ok := want[l]; !ok {
			repaired++
			if err := v.delLabelRoute(l); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(v.labels, l)
		}
	}
	return repaired, errors.Join(errs...)
}

// closeLabels removes the routes of the VRF's label tables (Close).
func (v *vrf) closeLabels() error {
	var errs []error
	for l := range v.labels {
		errs = append(errs, v.delLabelRoute(l))
	}
	clear(v.labels)
	return errors.Join(errs...)
}

// claim takes table t out of the state awaiting adoption.
func (d *Driver) claim(t int) {
	d.mu.Lock()
	delete(d.inventory, t)
	d.mu.Unlock()
}
