package vpn

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/flowspec"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// This file implements readvertise (route leaking with next-hop rewrite,
// reference §5.6) and attract_traffic (FlowSpec redirect-to-VRF, reference
// §5.7, RFC 5575 §7 / RFC 8955 §7.4), on both sides: the attracting VRF
// that advertises default and FlowSpec routes, and the redirected VRF
// that installs classifiers toward redirect instances.

// newAttract validates attract_traffic against readvertise at instance
// creation (reference §2.5): nil when attract_traffic is absent or has no
// effect (neither readvertise nor to_rt, upstream ignores it silently).
func newAttract(at *AttractTraffic, rv *Readvertise) (*attractCfg, error) {
	if at == nil {
		return nil, nil
	}
	if rv == nil && len(at.ToRTs) == 0 {
		return nil, nil
	}
	if len(at.Classifier) == 0 {
		return nil, clientErr(400, "'attract_traffic' specified with no 'classifier'")
	}
	if len(at.RedirectRTs) == 0 {
		return nil, clientErr(400, "attract_traffic requires at least one RT in 'redirect_rts'")
	}
	var to []route.RT
	switch {
	case rv != nil && len(at.ToRTs) > 0:
		if !sameRTSet(dedupRTs(rv.ToRTs), dedupRTs(at.ToRTs)) {
			return nil, clientErr(400, "attract_traffic/to_rt (%v) and readvertise/to_rt (%v) must be equal when both are given", at.ToRTs, rv.ToRTs)
		}
		to = dedupRTs(at.ToRTs)
	case rv != nil:
		to = dedupRTs(rv.ToRTs)
	default:
		to = dedupRTs(at.ToRTs)
	}
	if len(to) != 1 {
		return nil, clientErr(400, "attract_traffic requires exactly one RT in readvertise/to_rt or attract_traffic/to_rt, got %d", len(to))
	}
	if len(at.StaticDestinationPrefixes) > 0 && len(at.ToRTs) == 0 {
		return nil, clientErr(400, "'attract_traffic/static_destination_prefixes' needs 'attract_traffic/to_rt'")
	}
	c, err := flowspec.ParseJSON(at.Classifier)
	if err != nil {
		return nil, clientErr(400, "attract_traffic: %v", err)
	}
	for _, p := range at.StaticDestinationPrefixes {
		if !p.Addr().Is4() {
			return nil, clientErr(400, "attract_traffic: static destination prefix %s is not IPv4", p)
		}
	}
	raw := *at
	return &attractCfg{redirectRTs: dedupRTs(at.RedirectRTs), classifier: c, toRT: to[0],
		static: slices.Clone(at.StaticDestinationPrefixes), raw: &raw}, nil
}

// loopRTs are the RTs whose presence among a route's RT-Records stops its
// readvertisement (reference §5.6, draft-ietf-bess-service-chaining §2.3).
func (v *vrf) loopRTs() []route.RT {
	if v.attract != nil {
		return v.attract.redirectRTs
	}
	return v.toRTs
}

// readvertisable returns the route that a prefix is readvertised from,
// or nil (no best route, or a loop).
func (v *vrf) readvertisable(p netip.Prefix) *route.Route {
	best := v.readv.best(p)
	if len(best) == 0 {
		return nil
	}
	r := best[0]
	if slices.ContainsFunc(r.Attrs.RTRecords, func(rt route.RT) bool { return slices.Contains(v.loopRTs(), rt) }) {
		return nil
	}
	return r
}

// rtRecords are a readvertised route's RT-Records: the original ones plus
// the original RTs (reference §5.6).
func rtRecords(a *route.Attrs) []route.RT {
	out := slices.Clone(a.RTRecords)
	for _, rt := range a.RTs {
		if !slices.Contains(out, rt) {
			out = append(out, rt)
		}
	}
	return out
}

// advertisingEndpoints are the endpoints traffic may be sent to.
func (v *vrf) advertisingEndpoints() []epKey {
	var out []epKey
	for _, k := range v.sortedEndpoints() {
		if v.eps[k].dir != dataplane.DirectionFromPort {
			out = append(out, k)
		}
	}
	return out
}

// syncDerived recomputes the readvertised and attract-traffic routes from
// the readvertise table and the endpoints, and publishes the differences.
func (v *vrf) syncDerived(fx *effects) {
	if len(v.fromRTs) == 0 && v.attract == nil {
		return
	}
	var prefixes []netip.Prefix
	src := map[netip.Prefix]*route.Route{}
	for _, p := range sortedPrefixes(v.readv.dests) {
		if r := v.readvertisable(p); r != nil {
			prefixes = append(prefixes, p)
			src[p] = r
		}
	}
	eps := v.advertisingEndpoints()
	if v.attract == nil {
		want := map[readvKey]*route.Route{}
		for _, p := range prefixes {
			for _, k := range eps {
				ep := v.endpoints[k]
				a := v.vrfAttrs(100, ep.lbOrder, v.toRTs)
				a.RTRecords = rtRecords(src[p].Attrs)
				want[readvKey{k, p}] = &route.Route{Family: route.FamilyVPNv4, Label: v.macLabel[k.mac],
					Key: route.VPNv4Key(ep.rd, p), Attrs: a, Source: v.src}
			}
		}
		syncRoutes(fx, v.readvRoutes, want)
		return
	}
	at := v.attract
	active := len(eps) > 0 && (len(prefixes) > 0 || len(at.static) > 0)
	wantDef := map[epKey]*route.Route{}
	wantFlow := map[netip.Prefix]*route.Route{}
	if active {
		for _, k := range eps {
			ep := v.endpoints[k]
			wantDef[k] = &route.Route{Family: route.FamilyVPNv4, Label: v.macLabel[k.mac],
				Key:   route.VPNv4Key(ep.rd, netip.PrefixFrom(netip.IPv4Unspecified(), 0)),
				Attrs: v.vrfAttrs(100, ep.lbOrder, []route.RT{at.toRT}), Source: v.src}
		}
		for _, p := range append(slices.Clone(prefixes), at.static...) {
			if wantFlow[p] != nil {
				continue
			}
			c := at.classifier
			c.DestinationPrefix = p
			rules, err := flowspec.Encode(c)
			if err != nil {
				v.log.Warn("cannot build the FlowSpec route of a prefix", "prefix", p.String(), "err", err)
				continue
			}
			wantFlow[p] = v.flowRoute(rules, at.redirectRTs, at.toRT, nil)
		}
	}
	syncRoutes(fx, v.defRoutes, wantDef)
	syncRoutes(fx, v.flowRoutes, wantFlow)
}

// flowRoute is a FlowSpec-VPN route of this VRF (RFC 5575 §8): RD =
// instance RD, the rules, RTs and the redirect-to-VRF action
// (RFC 5575 §7).
func (v *vrf) flowRoute(rules []byte, rts []route.RT, redirect route.RT, records []route.RT) *route.Route {
	key := make([]byte, 0, 8+len(rules))
	key = append(append(key, v.rd[:]...), rules...)
	return &route.Route{Family: route.FamilyFlowVPN, Key: string(key), Source: v.src, Attrs: &route.Attrs{
		Origin: 0, HasLocalPref: true, LocalPref: 100, RTs: slices.Clone(rts), RTRecords: records,
		HasRedirect: true, Redirect: redirect,
	}}
}

// syncRoutes publishes want in place of cur (by key), withdrawing what is
// gone, and leaves cur equal to want.
func syncRoutes[K comparable](fx *effects, cur, want map[K]*route.Route) {
	for k, r := range cur {
		if want[k] == nil {
			fx.publish = append(fx.publish, engine.Event{Kind: engine.Withdraw, Route: r})
			delete(cur, k)
		}
	}
	for k, r := range want {
		old := cur[k]
		advertise(fx, &old, r)
		cur[k] = old
	}
}

// reoriginate re-advertises, in attract mode, a received FlowSpec route
// that also carries a readvertise from_rt (reference §5.7): same rules,
// instance RD, RTs [T], action redirect to the first redirect RT.
func (v *vrf) reoriginate(fx *effects, rules string, best *route.Route) {
	var want *route.Route
	if at := v.attract; at != nil && best != nil && hasAnyRT(best.Attrs, v.fromRTs) &&
		!slices.ContainsFunc(best.Attrs.RTRecords, func(rt route.RT) bool { return slices.Contains(at.redirectRTs, rt) }) {
		want = v.flowRoute([]byte(rules), []route.RT{at.toRT}, at.redirectRTs[0], rtRecords(best.Attrs))
	}
	cur := v.reorig[rules]
	advertise(fx, &cur, want)
	if cur == nil {
		delete(v.reorig, rules)
	} else {
		v.reorig[rules] = cur
	}
}

// updateRedirect makes the dataplane redirection of rules follow its new
// best route (nil: none).
func (v *vrf) updateRedirect(rules string, best *route.Route) {
	cur, had := v.redirected[rules]
	if best != nil && !best.Attrs.HasRedirect {
		v.log.Warn("FlowSpec route without a redirect-to-VRF action ignored", "route", best.String())
		best = nil
	}
	if had && best != nil && cur.rt == best.Attrs.Redirect {
		return
	}
	if had {
		if err := v.unredirect(rules); err != nil {
			v.log.Error("removing a FlowSpec redirection", "err", err)
		}
	}
	if best == nil {
		return
	}
	c, err := flowspec.Decode([]byte(rules))
	if err != nil {
		v.log.Warn("FlowSpec route ignored", "route", best.String(), "err", err)
		return
	}
	to, err := v.redirects.acquireRedirect(best.Attrs.Redirect)
	if err != nil {
		v.log.Error("cannot create the redirect instance", "rt", best.Attrs.Redirect.String(), "err", err)
		return
	}
	if err := v.dp.AddClassifier(c, to); err != nil {
		v.stats.DataplaneErrors++
		v.log.Error("dataplane classifier installation failed", "classifier", fmt.Sprintf("%+v", c), "err", err)
		v.redirects.releaseRedirect(best.Attrs.Redirect)
		return
	}
	v.redirected[rules] = redirection{rt: best.Attrs.Redirect, classifier: c, to: to}
}

// unredirect removes the classifier of rules and releases the redirect
// instance.
func (v *vrf) unredirect(rules string) error {
	cur, ok := v.redirected[rules]
	if !ok {
		return nil
	}
	delete(v.redirected, rules)
	err := v.dp.RemoveClassifier(cur.classifier, cur.to)
	v.redirects.releaseRedirect(cur.rt)
	if err != nil {
		return fmt.Errorf("dataplane classifier removal in %s: %w", v.name, err)
	}
	return nil
}

// RedirectInstanceID is the external id of the redirect instance of a
// redirect-to-VRF route target (reference §5.1):
// "redirect-to-<type>-<asn>_<nn>".
func RedirectInstanceID(t Type, rt route.RT) string {
	return fmt.Sprintf("redirect-to-%s-%d_%d", t, rt.ASN(), rt.Number())
}
