package vpn

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Received VPNv4 routes of a VRF (reference §4.6, §5.4) are kept per
// prefix in two tables: inst holds the routes that are imported (an import
// RT) with a usable encapsulation and programs the dataplane; readv holds
// the routes carrying a readvertise from_rt (reference §5.6). A route with
// both kinds of RT is in both. Keeping them apart means a route received
// only for readvertising never displaces an imported one from the
// dataplane.
//
// Best paths: with an ECMP driver every route with the highest LOCAL_PREF
// (missing = 100) is best and installed (one AddRoute per next hop);
// without ECMP the EVI's deterministic salted-hash tie-break picks one.

// prefixTable is one of the two tables.
type prefixTable struct {
	t     *tracker
	ecmp  bool
	dests map[netip.Prefix]*prefixDest
}

type prefixDest struct {
	routes []*route.Route
	best   []*route.Route
}

func newPrefixTable(t *tracker, ecmp bool) *prefixTable {
	return &prefixTable{t: t, ecmp: ecmp, dests: map[netip.Prefix]*prefixDest{}}
}

func (pt *prefixTable) best(p netip.Prefix) []*route.Route {
	if d := pt.dests[p]; d != nil {
		return d.best
	}
	return nil
}

func (pt *prefixTable) recompute(d *prefixDest) {
	d.best = nil
	if !pt.ecmp {
		if b := pt.t.bestOf(d.routes); b != nil {
			d.best = []*route.Route{b}
		}
		return
	}
	top := uint32(0)
	for _, r := range d.routes {
		top = max(top, r.Attrs.LocalPrefOrDefault())
	}
	for _, r := range d.routes {
		if r.Attrs.LocalPrefOrDefault() == top {
			d.best = append(d.best, r)
		}
	}
}

// remove drops the route of r's source with r's key; it reports whether
// one was stored.
func (pt *prefixTable) remove(p netip.Prefix, r *route.Route) bool {
	d := pt.dests[p]
	if d == nil || r == nil {
		return false
	}
	i := slices.IndexFunc(d.routes, func(x *route.Route) bool { return sameRoute(x, r) })
	if i < 0 {
		return false
	}
	d.routes = slices.Delete(d.routes, i, i+1)
	if len(d.routes) == 0 {
		delete(pt.dests, p)
	} else {
		pt.recompute(d)
	}
	return true
}

func (pt *prefixTable) add(p netip.Prefix, r *route.Route) {
	d := pt.dests[p]
	if d == nil {
		d = &prefixDest{}
		pt.dests[p] = d
	}
	d.routes = append(d.routes, r)
	pt.recompute(d)
}

// flowDest is one FlowSpec destination (its rules) with its routes.
type flowDest struct {
	routes []*route.Route
	best   *route.Route
}

// hop is what a best route programs: one ECMP member of a prefix.
type hop struct {
	nh    netip.Addr
	label uint32
	encap route.Encap
	lb    uint32
}

// usableEncap returns the encapsulation to program for a route: the
// first of the driver's encapsulations, in the driver's order of
// preference, that the route advertises (or "default" when it advertises
// none), reference §5.2. The driver's order decides, not the route's: an
// OVS node with vxlan_encap prefers VXLAN whenever the remote offers it,
// as upstream does (§3.1).
func (v *vrf) usableEncap(r *route.Route) (route.Encap, bool) {
	adv := r.Attrs.EncapsOrDefault()
	for _, e := range v.encaps {
		if slices.Contains(adv, e) {
			return e, true
		}
	}
	return 0, false
}

func (v *vrf) hopOf(r *route.Route) hop {
	enc, _ := v.usableEncap(r)
	h := hop{nh: r.NextHop(), label: r.Label, encap: enc}
	if r.Attrs.HasLBOrder {
		h.lb = r.Attrs.LBOrder
	}
	return h
}

func hasAnyRT(a *route.Attrs, rts []route.RT) bool {
	return a != nil && slices.ContainsFunc(a.RTs, func(rt route.RT) bool { return slices.Contains(rts, rt) })
}

// receive processes engine events into effects: dataplane changes, and
// the readvertised / attract-traffic routes they cause.
func (v *vrf) receive(events []engine.Event) effects {
	var fx effects
	readvChanged := false
	for i := range events {
		ev := &events[i]
		if ev.Route == nil {
			v.stats.IgnoredType++
			continue
		}
		switch ev.Route.Family {
		case route.FamilyVPNv4:
			if v.handleVPN(ev, &fx) {
				readvChanged = true
			}
		case route.FamilyFlowVPN:
			v.handleFlow(ev, &fx)
		default:
			v.stats.IgnoredType++
		}
	}
	if readvChanged {
		v.syncDerived(&fx)
	}
	return fx
}

// handleVPN processes one VPNv4 event; it reports whether the readvertise
// table's best routes changed.
func (v *vrf) handleVPN(ev *engine.Event, fx *effects) bool {
	r := ev.Route
	p, ok := r.Prefix()
	if !ok {
		v.stats.IgnoredType++
		return false
	}
	oldInst := slices.Clone(v.inst.best(p))
	oldReadv := slices.Clone(v.readv.best(p))
	for _, x := range []*route.Route{ev.Replaced, r} {
		a, b := v.inst.remove(p, x), v.readv.remove(p, x)
		if a || b {
			v.stats.Received--
		}
	}
	if ev.Kind == engine.Advertise {
		imp, from := hasAnyRT(r.Attrs, v.importRTs), hasAnyRT(r.Attrs, v.fromRTs)
		if !imp && !from {
			v.stats.IgnoredRT++
		}
		stored := false
		if imp {
			if _, ok := v.usableEncap(r); ok {
				v.inst.add(p, r)
				stored = true
			} else {
				v.stats.IgnoredEncap++
				if v.ignore != nil {
					v.ignore("no encapsulation supported by the dataplane driver", r)
				}
			}
		}
		if from {
			v.readv.add(p, r)
			stored = true
		}
		if stored {
			v.stats.Received++
		}
	}
	fx.vrfChanges = v.diffHops(fx.vrfChanges, p, oldInst, v.inst.best(p))
	return !slices.Equal(oldReadv, v.readv.best(p))
}

// diffHops appends the changes from the old best routes of p to the new
// ones: additions first (make-before-break), then removals. Routes with
// the same next hop and label program one entry; an entry whose encap or
// LB order changed is removed before it is added again.
func (v *vrf) diffHops(out []dataplane.VRFChange, p netip.Prefix, old, cur []*route.Route) []dataplane.VRFChange {
	type nl struct {
		nh    netip.Addr
		label uint32
	}
	hops := func(rs []*route.Route) ([]nl, map[nl]hop) {
		var order []nl
		m := map[nl]hop{}
		for _, r := range rs {
			h := v.hopOf(r)
			k := nl{h.nh, h.label}
			if _, dup := m[k]; !dup {
				order = append(order, k)
				m[k] = h
			}
		}
		return order, m
	}
	oldOrder, oldM := hops(old)
	newOrder, newM := hops(cur)
	change := func(kind dataplane.VRFChangeKind, h hop) dataplane.VRFChange {
		return dataplane.VRFChange{Kind: kind, Prefix: p, NextHop: h.nh, Label: h.label, Encap: h.encap, LBOrder: h.lb}
	}
	for _, k := range newOrder {
		o, had := oldM[k]
		switch {
		case !had:
			out = append(out, change(dataplane.AddRoute, newM[k]))
		case o != newM[k]:
			out = append(out, change(dataplane.RemoveRoute, o), change(dataplane.AddRoute, newM[k]))
		}
	}
	for _, k := range oldOrder {
		if _, keep := newM[k]; !keep {
			out = append(out, change(dataplane.RemoveRoute, oldM[k]))
		}
	}
	return out
}

// refilter makes the dataplane table follow an import RT change
// (reference §5.4: removal even when the route is no longer imported):
// routes without an import RT leave it, and routes received through a
// readvertise from_rt that now carry an import RT join it (the engine
// does not replay them: the subscription already existed).
func (v *vrf) refilter(fx *effects) {
	ps := map[netip.Prefix]bool{}
	for p := range v.inst.dests {
		ps[p] = true
	}
	for p := range v.readv.dests {
		ps[p] = true
	}
	for _, p := range sortedPrefixes(ps) {
		old := slices.Clone(v.inst.best(p))
		if d := v.inst.dests[p]; d != nil {
			for _, r := range slices.Clone(d.routes) {
				if !hasAnyRT(r.Attrs, v.importRTs) {
					v.inst.remove(p, r)
				}
			}
		}
		for _, r := range v.readvRoutesOf(p) {
			_, encOK := v.usableEncap(r)
			if hasAnyRT(r.Attrs, v.importRTs) && encOK && (v.inst.dests[p] == nil || !slices.Contains(v.inst.dests[p].routes, r)) {
				v.inst.add(p, r)
			}
		}
		fx.vrfChanges = v.diffHops(fx.vrfChanges, p, old, v.inst.best(p))
	}
	// Recount the distinct stored routes.
	n := 0
	for p := range ps {
		for _, r := range v.readvRoutesOf(p) {
			if d := v.inst.dests[p]; d == nil || !slices.Contains(d.routes, r) {
				n++
			}
		}
		if d := v.inst.dests[p]; d != nil {
			n += len(d.routes)
		}
	}
	v.stats.Received = n
}

// readvRoutesOf lists the readvertise-table routes of p.
func (v *vrf) readvRoutesOf(p netip.Prefix) []*route.Route {
	if d := v.readv.dests[p]; d != nil {
		return d.routes
	}
	return nil
}

// handleFlow processes one FlowSpec-VPN event (reference §5.4, §5.7):
// the best route of each rule set with a redirect-to-VRF action installs
// a classifier toward the redirect instance of its RT.
func (v *vrf) handleFlow(ev *engine.Event, fx *effects) {
	r := ev.Route
	if v.redirectFor != 0 || len(r.Key) < 8 {
		v.stats.IgnoredType++
		return
	}
	rules := r.Key[8:]
	d := v.flows[rules]
	var old *route.Route
	if d != nil {
		old = d.best
		for _, x := range []*route.Route{ev.Replaced, r} {
			if x == nil {
				continue
			}
			if j := slices.IndexFunc(d.routes, func(y *route.Route) bool { return sameRoute(x, y) }); j >= 0 {
				d.routes = slices.Delete(d.routes, j, j+1)
				v.stats.Flows--
			}
		}
	}
	if ev.Kind == engine.Advertise {
		if hasAnyRT(r.Attrs, v.importRTs) {
			if d == nil {
				d = &flowDest{}
				v.flows[rules] = d
			}
			d.routes = append(d.routes, r)
			v.stats.Flows++
		} else {
			v.stats.IgnoredRT++
		}
	}
	var best *route.Route
	if d != nil {
		if len(d.routes) == 0 {
			delete(v.flows, rules)
		} else {
			d.best = v.rt.bestOf(d.routes)
			best = d.best
		}
	}
	if best == old {
		return
	}
	v.updateRedirect(rules, best)
	v.reoriginate(fx, rules, best)
}

// routes lists every stored route and every best route (looking glass).
func (v *vrf) routes() (received, best []*route.Route) {
	seen := map[*route.Route]bool{}
	for _, pt := range []*prefixTable{v.inst, v.readv} {
		for _, p := range sortedPrefixes(pt.dests) {
			for _, r := range pt.dests[p].routes {
				if !seen[r] {
					seen[r] = true
					received = append(received, r)
				}
			}
		}
	}
	for _, p := range sortedPrefixes(v.inst.dests) {
		best = append(best, v.inst.dests[p].best...)
	}
	for _, rules := range sortedKeys(v.flows) {
		received = append(received, v.flows[rules].routes...)
		best = append(best, v.flows[rules].best)
	}
	return received, best
}

// reconcile returns the changes that bring the prefixes touched by failed
// changes back to the current state: every current hop is (re)added and
// the failed changes' other hops removed.
func (v *vrf) reconcile(failed []dataplane.VRFChange) []dataplane.VRFChange {
	var out []dataplane.VRFChange
	done := map[netip.Prefix]bool{}
	for _, c := range failed {
		if done[c.Prefix] {
			continue
		}
		done[c.Prefix] = true
		cur := v.inst.best(c.Prefix)
		out = v.diffHops(out, c.Prefix, nil, cur)
		for _, f := range failed {
			if f.Prefix != c.Prefix || slices.ContainsFunc(cur, func(r *route.Route) bool { return r.NextHop() == f.NextHop && r.Label == f.Label }) {
				continue
			}
			out = append(out, dataplane.VRFChange{Kind: dataplane.RemoveRoute, Prefix: f.Prefix, NextHop: f.NextHop, Label: f.Label, Encap: f.Encap, LBOrder: f.LBOrder})
		}
	}
	return out
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	return out
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
