package vpn

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

var (
	rt1  = route.NewRT(64512, 1)
	rt2  = route.NewRT(64512, 2)
	rt3  = route.NewRT(64512, 3)
	rt4  = route.NewRT(64512, 4)
	mpls = []route.Encap{route.EncapMPLS}
)

func wantStatus(t *testing.T, err error, status int, what string) {
	t.Helper()
	var ve *Error
	if !errors.As(err, &ve) || ve.Status != status {
		t.Fatalf("%s: error %v, want a %d *Error", what, err, status)
	}
}

// TestVRFEndpointRoutesAndLabels: one VPNv4 route per endpoint (/32,
// instance RD, next hop = dataplane address, MPLS encap, export RTs);
// the IPs of a MAC share its label; a label goes with the MAC's last
// endpoint; advertise_subnet uses the prefix and the endpoint RD.
func TestVRFEndpointRoutesAndLabels(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-peer")
	ve.attach(ipReq("v1", 1, "10.0.0.5", "tap1", rts(rt1), rts(rt1)))
	ve.attach(ipReq("v1", 1, "10.0.0.6", "tap1", rts(rt1), rts(rt1)))
	ve.attach(ipReq("v1", 2, "10.0.0.7", "tap2", rts(rt1), rts(rt1)))
	sub := ipReq("v1", 2, "20.1.0.0/24", "tap2", rts(rt1), rts(rt1))
	sub.AdvertiseSubnet = true
	ve.attach(sub)
	ve.settle()

	info, _ := ve.m.Instance("v1")
	if info.Type != "VRF" || info.Name != "VRF-1" || info.VNI != 16 || info.GatewayIP != netip.MustParseAddr("10.0.0.1") || info.SubnetPrefixLen != 32 {
		t.Fatalf("info %+v", info)
	}
	labels := map[string]uint32{}
	for _, eps := range info.Ports {
		for _, ep := range eps {
			labels[ep.IP.String()] = ep.Label
		}
	}
	// Instance label 16, then one label per MAC in plug order.
	if labels["10.0.0.5/32"] != 17 || labels["10.0.0.6/32"] != 17 || labels["10.0.0.7/32"] != 18 || labels["20.1.0.0/24"] != 18 {
		t.Fatalf("labels %v", labels)
	}
	rib := ribOf(p, route.FamilyVPNv4)
	if len(rib) != 4 {
		t.Fatalf("peer got %d routes: %v", len(rib), rib)
	}
	for _, r := range rib {
		pfx, _ := r.Prefix()
		rd, _ := r.RD()
		wantRD := info.RD
		if pfx.Bits() != 32 {
			wantRD = info.Ports["tap2"][1].RD // the /24 endpoint's own RD
		}
		if rd != wantRD || r.Label != labels[pfx.String()] || r.NextHop() != dpAddr ||
			!slices.Equal(r.Attrs.RTs, rts(rt1)) || !slices.Equal(r.Attrs.Encaps, mpls) || r.Attrs.LocalPref != 100 || r.Attrs.HasLBOrder {
			t.Errorf("route %s label %d attrs %+v", r, r.Label, r.Attrs)
		}
	}
	s := ve.vrfState("v1")
	if len(s.Ports["tap1"]) != 2 || s.Ports["tap2"][1] != (dummy.VRFEndpoint{MAC: testMAC(2), IP: netip.MustParsePrefix("20.1.0.0/24"), Label: 18, Dir: dataplane.DirectionBoth}) {
		t.Fatalf("ports %+v", s.Ports)
	}
	// MAC 1 keeps its label while one IP is left; then it is released
	// and reused only after the allocator wraps (reuse as late as possible).
	if err := ve.ipDetach("v1", 1, "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := ve.ipDetach("v1", 1, "10.0.0.6"); err != nil {
		t.Fatal(err)
	}
	ve.attach(ipReq("v1", 3, "10.0.0.8", "tap3", rts(rt1), rts(rt1)))
	ve.settle()
	info, _ = ve.m.Instance("v1")
	if l := info.Ports["tap3"][0].Label; l != 19 {
		t.Fatalf("new MAC got label %d, want 19", l)
	}
	if n := len(ribOf(p, route.FamilyVPNv4)); n != 3 {
		t.Fatalf("peer has %d routes after detaches, want 3", n)
	}
	// Unknown endpoint: 400, not upstream's 500.
	wantStatus(t, ve.ipDetach("v1", 1, "10.0.0.5"), 400, "detach of a detached endpoint")
}

// TestTwoVRFsExchangeRoutes: two local VRFs with matching RTs program each
// other's endpoints; the instance stops with its last endpoint.
func TestTwoVRFsExchangeRoutes(t *testing.T) {
	ve := newVRFEnv(t)
	ve.attach(ipReq("a", 1, "10.0.0.5", "tapa", rts(rt1), rts(rt1)))
	ve.attach(ipReq("b", 2, "10.0.0.6", "tapb", rts(rt1), rts(rt1)))
	ve.settle()
	a, b := ve.vrfState("a"), ve.vrfState("b")
	ia, _ := ve.m.Instance("a")
	ib, _ := ve.m.Instance("b")
	want := []dummy.NextHop{{NextHop: dpAddr, Label: ib.Ports["tapb"][0].Label, Encap: route.EncapMPLS}}
	if got := hops(a, "10.0.0.6/32"); !slices.Equal(got, want) {
		t.Fatalf("a: 10.0.0.6 via %v, want %v", got, want)
	}
	if got := hops(b, "10.0.0.5/32"); len(got) != 1 || got[0].Label != ia.Ports["tapa"][0].Label {
		t.Fatalf("b: 10.0.0.5 via %v", got)
	}
	if len(a.Routes) != 1 {
		t.Fatalf("a has its own endpoint in its routes: %v", a.Routes)
	}
	if err := ve.ipDetach("b", 2, "10.0.0.6"); err != nil {
		t.Fatal(err)
	}
	ve.settle()
	if _, ok := ve.m.Instance("b"); ok {
		t.Fatal("b still exists after its last detach")
	}
	if got := ve.vrfState("a").Routes; len(got) != 0 {
		t.Fatalf("a still routes %v", got)
	}
}

// TestVRFECMP: with an ECMP driver every route with the best LOCAL_PREF
// is installed; a higher LOCAL_PREF wins alone. Without ECMP one route is.
func TestVRFECMP(t *testing.T) {
	for _, ecmp := range []bool{true, false} {
		t.Run(map[bool]string{true: "ecmp", false: "single"}[ecmp], func(t *testing.T) {
			var drv *dummy.IPVPNDriver
			ve := newVRFEnv(t, func(c *ManagerConfig) {
				drv = c.IPVPNDriver.(*dummy.IPVPNDriver)
				c.IPVPNDriver = limitedDriver{IPVPNDriver: drv, dirs: drv.Directions(), ecmp: ecmp}
			})
			ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
			p1, p2 := vpnPeer(ve.testEnv, "BGP-1"), vpnPeer(ve.testEnv, "BGP-2")
			rd1, rd2 := route.NewRDIPv4(netip.MustParseAddr("192.0.2.2"), 1), route.NewRDIPv4(netip.MustParseAddr("192.0.2.3"), 1)
			r1 := vpnRoute(rd1, "30.0.0.0/24", 100, "192.0.2.2", 100, mpls, rt1)
			r2 := vpnRoute(rd2, "30.0.0.0/24", 200, "192.0.2.3", 100, mpls, rt1)
			r2.Attrs.HasLBOrder, r2.Attrs.LBOrder = true, 7
			p1.publish(ve.testEnv, adv(r1))
			p2.publish(ve.testEnv, adv(r2))
			ve.settle()
			got := hops(ve.vrfState("v"), "30.0.0.0/24")
			if ecmp {
				want := []dummy.NextHop{{NextHop: netip.MustParseAddr("192.0.2.2"), Label: 100, Encap: route.EncapMPLS},
					{NextHop: netip.MustParseAddr("192.0.2.3"), Label: 200, Encap: route.EncapMPLS, LBOrder: 7}}
				if !slices.Equal(got, want) {
					t.Fatalf("ECMP hops %v, want %v", got, want)
				}
			} else if len(got) != 1 {
				t.Fatalf("non-ECMP hops %v, want one", got)
			}
			// p2 now prefers its route: it wins alone.
			r2b := vpnRoute(rd2, "30.0.0.0/24", 200, "192.0.2.3", 300, mpls, rt1)
			p2.publish(ve.testEnv, adv(r2b))
			ve.settle()
			got = hops(ve.vrfState("v"), "30.0.0.0/24")
			if len(got) != 1 || got[0].NextHop != netip.MustParseAddr("192.0.2.3") || got[0].LBOrder != 0 {
				t.Fatalf("after LOCAL_PREF 300: %v", got)
			}
			p2.publish(ve.testEnv, wd(r2b))
			ve.settle()
			got = hops(ve.vrfState("v"), "30.0.0.0/24")
			if len(got) != 1 || got[0].NextHop != netip.MustParseAddr("192.0.2.2") {
				t.Fatalf("after withdraw: %v", got)
			}
		})
	}
}

// TestVRFEncapFiltering: a route is installed only if its encapsulations
// (or "default" when it has none) meet the driver's; the first usable
// one in the route's order is programmed.
func TestVRFEncapFiltering(t *testing.T) {
	ve := newVRFEnv(t)
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
	p := vpnPeer(ve.testEnv, "BGP-1")
	rd := route.NewRDIPv4(netip.MustParseAddr("192.0.2.2"), 1)
	p.publish(ve.testEnv,
		adv(vpnRoute(rd, "30.0.1.0/24", 100, "192.0.2.2", 100, []route.Encap{route.EncapVXLAN}, rt1)),
		adv(vpnRoute(rd, "30.0.2.0/24", 101, "192.0.2.2", 100, []route.Encap{route.EncapVXLAN, route.EncapGRE, route.EncapMPLS}, rt1)),
		adv(vpnRoute(rd, "30.0.3.0/24", 102, "192.0.2.2", 100, nil, rt1)),
		adv(vpnRoute(rd, "30.0.4.0/24", 103, "192.0.2.2", 100, nil, rt2)), // not imported
	)
	ve.settle()
	s := ve.vrfState("v")
	if hops(s, "30.0.1.0/24") != nil || hops(s, "30.0.4.0/24") != nil {
		t.Fatalf("VXLAN-only or non-imported route installed: %v", s.Routes)
	}
	if h := hops(s, "30.0.2.0/24"); len(h) != 1 || h[0].Encap != route.EncapMPLS {
		t.Fatalf("30.0.2.0/24: %v", h)
	}
	if h := hops(s, "30.0.3.0/24"); len(h) != 1 || h[0].Encap != route.EncapDefault {
		t.Fatalf("30.0.3.0/24: %v", h)
	}
	info, _ := ve.m.Instance("v")
	// The engine does not deliver the rt2 route at all (no subscription).
	if info.Routes.IgnoredEncap != 1 || info.Routes.IgnoredRT != 0 || info.Routes.Received != 2 {
		t.Fatalf("counters %+v", info.Routes)
	}
}

// TestVRFDirections: directions the driver lacks are refused; from-port
// endpoints advertise nothing and detach cleanly (upstream fails there).
func TestVRFDirections(t *testing.T) {
	t.Run("unsupported", func(t *testing.T) {
		ve := newVRFEnv(t, func(c *ManagerConfig) {
			d := c.IPVPNDriver.(*dummy.IPVPNDriver)
			c.IPVPNDriver = limitedDriver{IPVPNDriver: d, dirs: []dataplane.Direction{dataplane.DirectionBoth}, ecmp: true}
		})
		r := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
		r.Direction = dataplane.DirectionToPort
		err := ve.m.Attach(context.Background(), r)
		wantStatus(t, err, 400, "to-port on a both-only driver")
		if err.Error() != "Unsupported direction: to-port" {
			t.Fatalf("message %q", err)
		}
		if _, ok := ve.m.Instance("v"); ok {
			t.Fatal("instance created by a refused attach")
		}
	})
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	from := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
	from.Direction = dataplane.DirectionFromPort
	ve.attach(from)
	to := ipReq("v", 2, "10.0.0.6", "tap2", rts(rt1), rts(rt1))
	to.Direction = dataplane.DirectionToPort
	ve.attach(to)
	ve.settle()
	rib := ribOf(p, route.FamilyVPNv4)
	if len(rib) != 1 {
		t.Fatalf("want only the to-port route, got %v", rib)
	}
	if pf, _ := rib[0].Prefix(); pf != netip.MustParsePrefix("10.0.0.6/32") {
		t.Fatalf("advertised %s", rib[0])
	}
	s := ve.vrfState("v")
	if s.Ports["tap"][0].Dir != dataplane.DirectionFromPort || s.Ports["tap2"][0].Dir != dataplane.DirectionToPort {
		t.Fatalf("plugged %+v", s.Ports)
	}
	// Same endpoint, other direction: refused.
	from.Direction = dataplane.DirectionBoth
	wantStatus(t, ve.m.Attach(context.Background(), from), 400, "direction change")
	if err := ve.ipDetach("v", 1, "10.0.0.5"); err != nil {
		t.Fatalf("detach of a from-port endpoint: %v", err)
	}
	info, _ := ve.m.Instance("v")
	if info.Ports["tap"] != nil || info.Ports["tap2"][0].Direction != dataplane.DirectionToPort {
		t.Fatalf("ports after detach %+v", info.Ports)
	}
}

// TestVRFRTChanges: import changes follow subscriptions; export changes
// re-advertise; an empty export list withdraws.
func TestVRFRTChanges(t *testing.T) {
	ve := newVRFEnv(t)
	p := vpnPeer(ve.testEnv, "BGP-1")
	rd := route.NewRDIPv4(netip.MustParseAddr("192.0.2.2"), 1)
	p.publish(ve.testEnv,
		adv(vpnRoute(rd, "30.0.1.0/24", 100, "192.0.2.2", 100, mpls, rt1)),
		adv(vpnRoute(rd, "30.0.2.0/24", 101, "192.0.2.2", 100, mpls, rt2)))
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
	ve.settle()
	s := ve.vrfState("v")
	if hops(s, "30.0.1.0/24") == nil || hops(s, "30.0.2.0/24") != nil {
		t.Fatalf("before: %v", s.Routes)
	}
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt2), rts(rt3)))
	ve.settle()
	s = ve.vrfState("v")
	if hops(s, "30.0.1.0/24") != nil || hops(s, "30.0.2.0/24") == nil {
		t.Fatalf("after import change: %v", s.Routes)
	}
	rib := ribOf(p, route.FamilyVPNv4)
	var mine []*route.Route
	for _, r := range rib {
		if r.NextHop() == dpAddr {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 || !slices.Equal(mine[0].Attrs.RTs, rts(rt3)) {
		t.Fatalf("after export change the peer has %v", mine)
	}
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt2), nil))
	ve.settle()
	for _, r := range ribOf(p, route.FamilyVPNv4) {
		if r.NextHop() == dpAddr {
			t.Fatalf("route %s still advertised with no export RT", r)
		}
	}
}

// TestVRFConsistencyAndFallback: the EVI's consistency errors; the
// fallback goes to the dataplane when it changes.
func TestVRFConsistencyAndFallback(t *testing.T) {
	ve := newVRFEnv(t)
	r := ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
	r.Fallback = &Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "fa:16:3e:aa:bb:cc", OVSPortNumber: 4}
	ve.attach(r)
	wantStatus(t, ve.m.Attach(context.Background(), ipReq("v", 1, "10.0.0.6", "other", rts(rt1), rts(rt1))), 400, "MAC on another port")
	wantStatus(t, ve.m.Attach(context.Background(), ipReq("v", 2, "10.0.0.5", "tap", rts(rt1), rts(rt1))), 400, "IP on another MAC")
	noGW := ipReq("w", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))
	noGW.GatewayIP = netip.Addr{}
	wantStatus(t, ve.m.Attach(context.Background(), noGW), 400, "missing gateway_ip")
	if s := ve.vrfState("v"); s.Fallback == nil || s.Fallback.OVSPortNumber != 4 || s.Config.Fallback == nil {
		t.Fatalf("fallback at creation: %+v", s.Fallback)
	}
	r.Fallback = &Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "fa:16:3e:aa:bb:cc", OVSPortNumber: 5}
	ve.attach(r)
	ve.attach(r) // unchanged: no second update
	n := 0
	for _, c := range ve.ipvpn.Calls() {
		if c.Op == "UpdateFallback" {
			n++
		}
	}
	if s := ve.vrfState("v"); n != 1 || s.Fallback.OVSPortNumber != 5 {
		t.Fatalf("%d UpdateFallback calls, fallback %+v", n, s.Fallback)
	}
	info, _ := ve.m.Instance("v")
	if info.Fallback == nil || info.Fallback.OVSPortNumber != 5 {
		t.Fatalf("LG fallback %+v", info.Fallback)
	}
}

// TestVRFAndEVIShareManager: an ipvpn id cannot be reused as evpn.
func TestVRFTypeClash(t *testing.T) {
	ve := newVRFEnv(t)
	ve.attach(ipReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
	wantStatus(t, ve.m.Attach(context.Background(), evReq("v", 1, "10.0.0.5", "tap", rts(rt1), rts(rt1))), 400, "type reuse")
	if !ve.m.HasDriver(IPVPN) || !ve.m.HasDriver(EVPN) {
		t.Fatal("HasDriver")
	}
}
