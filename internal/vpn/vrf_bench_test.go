package vpn

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// nopVRF is a VRF dataplane that does nothing (benchmarks).
type nopVRF struct{ changes int }

func (n *nopVRF) Plug(dataplane.LocalPort, route.MAC, netip.Prefix, uint32, dataplane.Direction) error {
	return nil
}
func (n *nopVRF) Unplug(dataplane.LocalPort, route.MAC, netip.Prefix, uint32, dataplane.Direction, bool) error {
	return nil
}
func (n *nopVRF) Apply(c []dataplane.VRFChange) error                 { n.changes += len(c); return nil }
func (n *nopVRF) AddClassifier(dataplane.Classifier, uint32) error    { return nil }
func (n *nopVRF) RemoveClassifier(dataplane.Classifier, uint32) error { return nil }
func (n *nopVRF) UpdateFallback(*dataplane.Fallback) error            { return nil }
func (n *nopVRF) Info() map[string]any                                { return nil }
func (n *nopVRF) Close() error                                        { return nil }

// BenchmarkVRFReceive: one imported VPNv4 route advertised by each of two
// PEs (an ECMP pair), then both withdrawn, per iteration: the cost of the
// VRF's per-prefix tracking and change computation.
func BenchmarkVRFReceive(b *testing.B) {
	const prefixes = 1000
	v := newVRF(vrfParams{id: 1, externalID: "bench", rdNum: 1, bgpAddr: bgpAddr, dpAddr: dpAddr, hostname: "h",
		drv: dummy.NewIPVPN(dummy.Options{Log: quiet}), dp: &nopVRF{}, gateway: netip.MustParseAddr("10.0.0.1"), prefixLen: 24, log: quiet})
	v.start(rts(rt1), rts(rt1))
	pe1, pe2 := &route.Source{Name: "BGP-1", Peer: true}, &route.Source{Name: "BGP-2", Peer: true}
	attrs1 := &route.Attrs{NextHop: netip.MustParseAddr("192.0.2.2"), RTs: rts(rt1), Encaps: mpls}
	attrs2 := &route.Attrs{NextHop: netip.MustParseAddr("192.0.2.3"), RTs: rts(rt1), Encaps: mpls}
	var adv1, adv2, wd1, wd2 []engine.Event
	for i := range prefixes {
		p := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
		r1 := &route.Route{Family: route.FamilyVPNv4, Label: 100, Key: route.VPNv4Key(remoteRD, p), Attrs: attrs1, Source: pe1}
		r2 := &route.Route{Family: route.FamilyVPNv4, Label: 200, Key: route.VPNv4Key(remoteRD, p), Attrs: attrs2, Source: pe2}
		adv1, adv2 = append(adv1, engine.Event{Kind: engine.Advertise, Route: r1}), append(adv2, engine.Event{Kind: engine.Advertise, Route: r2})
		wd1, wd2 = append(wd1, engine.Event{Kind: engine.Withdraw, Route: r1}), append(wd2, engine.Event{Kind: engine.Withdraw, Route: r2})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		changes := 0
		for _, evs := range [][]engine.Event{adv1, adv2, wd1, wd2} {
			changes += len(v.receive(evs).vrfChanges)
		}
		if changes != 4*prefixes {
			b.Fatalf("%d changes, want %d", changes, 4*prefixes)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(4*prefixes), "ns/event")
}
