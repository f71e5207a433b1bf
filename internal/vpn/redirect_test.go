package vpn

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/flowspec"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

var remoteRD = route.NewRDIPv4(netip.MustParseAddr("192.0.2.2"), 1)

// TestReadvertise: routes with a from_rt are readvertised per endpoint
// toward to_rt with the endpoint's RD and label, our next hop and the
// original RTs as RT-Records; not installed unless imported; a route
// whose RT-Records already hold a to_rt is not readvertised (loop).
func TestReadvertise(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	r := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
	r.Direction = dataplane.DirectionToPort
	r.Readvertise = &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}
	ve.attach(r)
	leak := vpnRoute(remoteRD, "30.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt2)
	loop := vpnRoute(remoteRD, "31.0.0.0/24", 101, "192.0.2.2", 100, mpls, rt2)
	loop.Attrs.RTRecords = rts(rt3)
	p.publish(ve.testEnv, adv(leak), adv(loop))
	ve.settle()
	info, _ := ve.m.Instance("v")
	ep := info.Ports["tap"][0]
	var readv []*route.Route
	for _, x := range ribOf(p, route.FamilyVPNv4) {
		if slices.Equal(x.Attrs.RTs, rts(rt3)) {
			readv = append(readv, x)
		}
	}
	if len(readv) != 1 {
		t.Fatalf("readvertised %v", readv)
	}
	x := readv[0]
	pf, _ := x.Prefix()
	rd, _ := x.RD()
	if pf != netip.MustParsePrefix("30.0.0.0/24") || rd != ep.RD || x.Label != ep.Label || x.NextHop() != dpAddr ||
		!slices.Equal(x.Attrs.RTRecords, rts(rt2)) || !slices.Equal(x.Attrs.Encaps, mpls) {
		t.Fatalf("readvertised route %s label %d attrs %+v", x, x.Label, x.Attrs)
	}
	if s := ve.vrfState("v"); len(s.Routes) != 0 {
		t.Fatalf("readvertise-only routes installed: %v", s.Routes)
	}
	if info.Readvertise == nil || len(info.Readvertised) != 1 {
		t.Fatalf("LG readvertise %+v %v", info.Readvertise, info.Readvertised)
	}
	// A second endpoint gets its own readvertisement; withdrawal removes both.
	r2 := ipReq("v", 2, "10.0.0.6", "tap2", rts(rt1), rts(rt1))
	ve.attach(r2)
	ve.settle()
	if n := countRT(p, rt3); n != 2 {
		t.Fatalf("%d readvertisements with two endpoints", n)
	}
	p.publish(ve.testEnv, wd(leak))
	ve.settle()
	if n := countRT(p, rt3); n != 0 {
		t.Fatalf("%d readvertisements after the withdrawal", n)
	}
}

func countRT(p *peer, rt route.RT) int {
	n := 0
	for _, x := range ribOf(p, route.FamilyVPNv4) {
		if x.Attrs.HasRT(rt) {
			n++
		}
	}
	return n
}

// TestAttractTrafficAndRedirect: the attracting VRF advertises a default
// route toward T and a FlowSpec route (RTs redirect_rts, redirect to T)
// per readvertised prefix; a VRF importing the redirect RT creates the
// redirect instance (which imports T and so gets the default route) and
// installs the classifier; everything goes when the prefix is withdrawn.
func TestAttractTrafficAndRedirect(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	sf := ipReq("sf", 1, "100.0.0.1", "tap-sf", rts(rt1), rts(rt1))
	sf.Readvertise = &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}
	sf.AttractTraffic = &AttractTraffic{RedirectRTs: rts(rt4),
		Classifier: json.RawMessage(`{"destinationPort": "80", "protocol": "tcp", "sourcePrefix": "11.0.0.1/32"}`)}
	ve.attach(sf)
	// The redirected VRF imports the redirect RT.
	ve.attach(ipReq("src", 2, "11.0.0.1", "tap-src", rts(rt4), rts(rt4)))
	p.publish(ve.testEnv, adv(vpnRoute(remoteRD, "12.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt2)))
	ve.settle()

	sfInfo, _ := ve.m.Instance("sf")
	ep := sfInfo.Ports["tap-sf"][0]
	var def *route.Route
	for _, x := range ribOf(p, route.FamilyVPNv4) {
		if pf, _ := x.Prefix(); pf.Bits() == 0 {
			def = x
		}
	}
	if def == nil || !slices.Equal(def.Attrs.RTs, rts(rt3)) || def.Label != ep.Label || def.NextHop() != dpAddr {
		t.Fatalf("default route %v", def)
	}
	if n := countRT(p, rt3); n != 1 {
		t.Fatalf("in attract mode the prefix itself must not be readvertised: %d routes with T", n)
	}
	flows := ribOf(p, route.FamilyFlowVPN)
	if len(flows) != 1 {
		t.Fatalf("FlowSpec routes %v", flows)
	}
	want := dataplane.Classifier{SourcePrefix: netip.MustParsePrefix("11.0.0.1/32"), DestinationPrefix: netip.MustParsePrefix("12.0.0.0/24"),
		Protocol: 6, DestinationPort: dataplane.PortRange{Min: 80, Max: 80}}
	rules, _ := flowspec.Encode(want)
	f := flows[0]
	if f.Key != string(sfInfo.RD[:])+string(rules) || !slices.Equal(f.Attrs.RTs, rts(rt4)) || !f.Attrs.HasRedirect || f.Attrs.Redirect != rt3 {
		t.Fatalf("FlowSpec route %s attrs %+v", f, f.Attrs)
	}

	redirID := RedirectInstanceID(IPVPN, rt3)
	if redirID != "redirect-to-ipvpn-64512_3" {
		t.Fatalf("redirect id %q", redirID)
	}
	redir, ok := ve.m.Instance(redirID)
	if !ok || redir.RedirectFor != rt3 || !slices.Equal(redir.ImportRTs, rts(rt3)) || len(redir.ExportRTs) != 0 || redir.GatewayIP != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("redirect instance %+v (found %v)", redir, ok)
	}
	if s := ve.vrfState("src"); s.Classifiers[want] != redir.ID {
		t.Fatalf("classifiers of the redirected VRF: %v, want %+v → %d", s.Classifiers, want, redir.ID)
	}
	ve.settle() // the redirect instance subscribed during the first settle: its replay
	if h := hops(ve.vrfState(redirID), "0.0.0.0/0"); len(h) != 1 || h[0].Label != ep.Label {
		t.Fatalf("redirect instance default route %v", h)
	}
	wantStatus(t, ve.m.Attach(context.Background(), ipReq(redirID, 9, "10.9.9.9", "x", rts(rt3), nil)), 400, "attach to a redirect instance")

	// Withdraw: FlowSpec and default routes go, the classifier too, and
	// the redirect instance stops.
	p.publish(ve.testEnv, wd(vpnRoute(remoteRD, "12.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt2)))
	ve.settle()
	if n := len(ribOf(p, route.FamilyFlowVPN)); n != 0 {
		t.Fatalf("%d FlowSpec routes left", n)
	}
	if n := countRT(p, rt3); n != 0 {
		t.Fatalf("default route left")
	}
	if s := ve.vrfState("src"); len(s.Classifiers) != 0 {
		t.Fatalf("classifiers left %v", s.Classifiers)
	}
	if _, ok := ve.m.Instance(redirID); ok {
		t.Fatal("redirect instance still there")
	}
}

// TestAttractStaticPrefixes: with to_rt and static prefixes the default
// and FlowSpec routes exist from the first plug.
func TestAttractStaticPrefixes(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	r := ipReq("sf", 1, "100.0.0.1", "tap", rts(rt1), rts(rt1))
	r.AttractTraffic = &AttractTraffic{RedirectRTs: rts(rt4), ToRTs: rts(rt3), Classifier: json.RawMessage(`{"protocol": "udp"}`),
		StaticDestinationPrefixes: []netip.Prefix{netip.MustParsePrefix("12.0.0.0/24"), netip.MustParsePrefix("13.0.0.0/16")}}
	ve.attach(r)
	ve.settle()
	if n := len(ribOf(p, route.FamilyFlowVPN)); n != 2 {
		t.Fatalf("%d FlowSpec routes, want 2", n)
	}
	if n := countRT(p, rt3); n != 1 {
		t.Fatalf("%d default routes, want 1", n)
	}
}

// TestAttractValidation: the creation-time constraints of reference §2.5.
func TestAttractValidation(t *testing.T) {
	cl := json.RawMessage(`{"protocol": "tcp"}`)
	tests := []struct {
		name string
		rv   *Readvertise
		at   *AttractTraffic
	}{
		{"two to RTs", &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3, rt4)}, &AttractTraffic{RedirectRTs: rts(rt4), Classifier: cl}},
		{"different to_rt lists", &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}, &AttractTraffic{RedirectRTs: rts(rt4), Classifier: cl, ToRTs: rts(rt1)}},
		{"static prefixes without to_rt", &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}, &AttractTraffic{RedirectRTs: rts(rt4), Classifier: cl,
			StaticDestinationPrefixes: []netip.Prefix{netip.MustParsePrefix("12.0.0.0/24")}}},
		{"no classifier", &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}, &AttractTraffic{RedirectRTs: rts(rt4)}},
		{"bad classifier", &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}, &AttractTraffic{RedirectRTs: rts(rt4), Classifier: json.RawMessage(`{"protocol": "nope"}`)}},
	}
	ve := newVRFEnv(t)
	for _, tt := range tests {
		r := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
		r.Readvertise, r.AttractTraffic = tt.rv, tt.at
		wantStatus(t, ve.m.Attach(context.Background(), r), 400, tt.name)
	}
	if len(ve.m.Instances()) != 0 {
		t.Fatal("refused attaches created instances")
	}
}

// TestEVIToVRFLink: local_port.evpn plugs an EVI into the VRF through a
// veth pair (reference §5.5); the last VRF endpoint on it undoes it.
func TestEVIToVRFLink(t *testing.T) {
	ve := newVRFEnv(t)
	r := ipReq("vrf", 1, "11.0.0.1/24", "", rts(rt1), rts(rt1))
	r.LocalPort = dataplane.LocalPort{EVPN: "evi"}
	wantStatus(t, ve.m.Attach(context.Background(), r), 400, "missing EVI")
	ve.attach(evReq("evi", 1, "11.0.0.1", "tap-vm", rts(rt2), rts(rt2)))
	ve.attach(r)
	ve.settle()
	eviInfo, _ := ve.m.Instance("evi")
	vrfInfo, _ := ve.m.Instance("vrf")
	// Instance ids: evi 1, vrf 2 (the refused attach created nothing).
	eviIf, vrfIf := "evpn1-ipvpn2", "ipvpn2-evpn1"
	if ve.links.Live()[eviIf] != vrfIf {
		t.Fatalf("veths %v, want %s/%s", ve.links.Live(), eviIf, vrfIf)
	}
	if s := ve.state("evi"); s.Gateway != eviIf {
		t.Fatalf("EVI gateway port %q", s.Gateway)
	}
	if vrfInfo.Ports[vrfIf] == nil || vrfInfo.Link == nil || eviInfo.Link == nil || eviInfo.Link.VRF != "vrf" {
		t.Fatalf("VRF ports %v, links %+v %+v", vrfInfo.Ports, vrfInfo.Link, eviInfo.Link)
	}
	// A second EVI cannot be linked to the same VRF.
	ve.attach(evReq("evi2", 2, "11.0.0.2", "tap-vm2", rts(rt2), rts(rt2)))
	r2 := ipReq("vrf", 2, "11.0.0.2/24", "", rts(rt1), rts(rt1))
	r2.LocalPort = dataplane.LocalPort{EVPN: "evi2"}
	wantStatus(t, ve.m.Attach(context.Background(), r2), 400, "second EVI")
	if err := ve.ipDetach("vrf", 1, "11.0.0.1/24"); err != nil {
		t.Fatal(err)
	}
	ve.settle()
	if len(ve.links.Live()) != 0 {
		t.Fatalf("veths left %v", ve.links.Live())
	}
	if s := ve.state("evi"); s.Gateway != "" {
		t.Fatalf("EVI gateway port still %q", s.Gateway)
	}
	if info, _ := ve.m.Instance("evi"); info.Link != nil {
		t.Fatalf("EVI still shows link %+v", info.Link)
	}
}

// TestAttractReoriginatesFlowSpec: in attract mode a received FlowSpec
// route carrying a readvertise from_rt is re-originated with our RD, RTs
// [T], RT-Records and the redirect to the first redirect RT (reference
// §5.7), and withdrawn with it. A route whose RT-Records hold a redirect
// RT is not (loop).
func TestAttractReoriginatesFlowSpec(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	sf := ipReq("sf", 1, "100.0.0.1", "tap", rts(rt1), rts(rt1))
	sf.Readvertise = &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}
	sf.AttractTraffic = &AttractTraffic{RedirectRTs: rts(rt4), Classifier: json.RawMessage(`{}`)}
	ve.attach(sf)
	rules, _ := flowspec.Encode(dataplane.Classifier{DestinationPrefix: netip.MustParsePrefix("12.0.0.0/24"), Protocol: 17})
	other := route.NewRT(64512, 99)
	in := &route.Route{Family: route.FamilyFlowVPN, Key: string(remoteRD[:]) + string(rules),
		Attrs: &route.Attrs{HasLocalPref: true, LocalPref: 100, RTs: rts(rt1, rt2), HasRedirect: true, Redirect: other}}
	looped := &route.Route{Family: route.FamilyFlowVPN, Key: string(remoteRD[:]) + "\x03\x81\x06",
		Attrs: &route.Attrs{RTs: rts(rt1, rt2), RTRecords: rts(rt4), HasRedirect: true, Redirect: other}}
	p.publish(ve.testEnv, adv(in), adv(looped))
	ve.settle()
	info, _ := ve.m.Instance("sf")
	var mine []*route.Route
	for _, f := range ribOf(p, route.FamilyFlowVPN) {
		if rd, _ := f.RD(); rd == info.RD {
			mine = append(mine, f)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("re-originated %v", mine)
	}
	f := mine[0]
	if f.Key[8:] != string(rules) || !slices.Equal(f.Attrs.RTs, rts(rt3)) || f.Attrs.Redirect != rt4 || !slices.Equal(f.Attrs.RTRecords, rts(rt1, rt2)) {
		t.Fatalf("re-originated %s attrs %+v", f, f.Attrs)
	}
	p.publish(ve.testEnv, wd(in), wd(looped))
	ve.settle()
	for _, f := range ribOf(p, route.FamilyFlowVPN) {
		if rd, _ := f.RD(); rd == info.RD {
			t.Fatalf("still re-originated: %s", f)
		}
	}
}

// TestStopRemovesLinksAndRedirects: Manager.Stop stops redirect instances
// and deletes the veths it created (reference §5.1).
func TestStopRemovesLinksAndRedirects(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	ve.attach(evReq("evi", 1, "11.0.0.1", "tap-vm", rts(rt2), rts(rt2)))
	r := ipReq("vrf", 1, "11.0.0.1/24", "", rts(rt4), rts(rt1))
	r.LocalPort = dataplane.LocalPort{EVPN: "evi"}
	ve.attach(r)
	rules, _ := flowspec.Encode(dataplane.Classifier{Protocol: 6})
	p.publish(ve.testEnv, adv(&route.Route{Family: route.FamilyFlowVPN, Key: string(remoteRD[:]) + string(rules),
		Attrs: &route.Attrs{RTs: rts(rt4), HasRedirect: true, Redirect: rt3}}))
	ve.settle()
	ve.settle()
	if _, ok := ve.m.Instance(RedirectInstanceID(IPVPN, rt3)); !ok || len(ve.links.Live()) != 1 {
		t.Fatalf("setup: redirect instance %v, veths %v", ok, ve.links.Live())
	}
	ve.m.Stop(context.Background())
	if n := len(ve.m.Instances()); n != 0 {
		t.Fatalf("%d instances after Stop", n)
	}
	if len(ve.links.Live()) != 0 {
		t.Fatalf("veths after Stop: %v", ve.links.Live())
	}
	for _, c := range ve.ipvpn.Calls() {
		if c.Op == "NewVRF" {
			if s, _ := ve.ipvpn.State(c.Instance); !s.Closed {
				t.Fatalf("VRF %d not closed", c.Instance)
			}
		}
	}
}

// TestVRFDataplaneRetry: a failed Apply is retried as the current state
// before the next batch.
func TestVRFDataplaneRetry(t *testing.T) {
	ve := newVRFEnv(t)
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
	p := vpnPeer(ve.testEnv, "BGP-1")
	ve.ipvpn.FailNext("Apply", errors.New("injected"))
	p.publish(ve.testEnv, adv(vpnRoute(remoteRD, "30.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt1)))
	ve.settle()
	if s := ve.vrfState("v"); len(s.Routes) != 0 {
		t.Fatalf("failed batch applied? %v", s.Routes)
	}
	p.publish(ve.testEnv, adv(vpnRoute(remoteRD, "30.0.1.0/24", 101, "192.0.2.2", 100, mpls, rt1)))
	ve.settle()
	s := ve.vrfState("v")
	if len(hops(s, "30.0.0.0/24")) != 1 || len(hops(s, "30.0.1.0/24")) != 1 {
		t.Fatalf("after retry %v", s.Routes)
	}
	if info, _ := ve.m.Instance("v"); info.Routes.DataplaneErrors != 1 {
		t.Fatalf("dataplane errors %d", info.Routes.DataplaneErrors)
	}
}

// TestImportOfReadvertisedRT: adding a readvertise from_rt to the import
// list installs the routes already received through it.
func TestImportOfReadvertisedRT(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	r := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
	r.Readvertise = &Readvertise{FromRTs: rts(rt2), ToRTs: rts(rt3)}
	ve.attach(r)
	p.publish(ve.testEnv, adv(vpnRoute(remoteRD, "30.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt2)))
	ve.settle()
	if s := ve.vrfState("v"); len(s.Routes) != 0 {
		t.Fatalf("installed before import: %v", s.Routes)
	}
	r.ImportRTs = rts(rt1, rt2)
	ve.attach(r)
	ve.settle()
	if h := hops(ve.vrfState("v"), "30.0.0.0/24"); len(h) != 1 {
		t.Fatalf("not installed after import: %v", h)
	}
	r.ImportRTs = rts(rt1)
	ve.attach(r)
	ve.settle()
	if s := ve.vrfState("v"); len(s.Routes) != 0 {
		t.Fatalf("still installed after un-import: %v", s.Routes)
	}
	if info, _ := ve.m.Instance("v"); info.Routes.Received != 1 || len(info.Readvertised) != 1 {
		t.Fatalf("received %d, readvertised %v", info.Routes.Received, info.Readvertised)
	}
}
