package vpn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

func wantState(t *testing.T, what string, got dummy.EVIState, fdb map[route.MAC]dummy.FDBEntry, flood []dummy.FDBEntry, neigh map[netip.Addr]route.MAC) {
	t.Helper()
	if fdb == nil {
		fdb = map[route.MAC]dummy.FDBEntry{}
	}
	if neigh == nil {
		neigh = map[netip.Addr]route.MAC{}
	}
	fl := map[dummy.FDBEntry]bool{}
	for _, f := range flood {
		fl[f] = true
	}
	if !reflect.DeepEqual(got.FDB, fdb) {
		t.Errorf("%s: fdb %v, want %v", what, got.FDB, fdb)
	}
	if !reflect.DeepEqual(got.Flood, fl) {
		t.Errorf("%s: flood %v, want %v", what, got.Flood, fl)
	}
	if !reflect.DeepEqual(got.Neigh, neigh) {
		t.Errorf("%s: neigh %v, want %v", what, got.Neigh, neigh)
	}
}

func fe(vtep string, vni uint32) dummy.FDBEntry {
	return dummy.FDBEntry{VTEP: netip.MustParseAddr(vtep), VNI: vni}
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// Two EVIs on one engine with the same RT exchange their routes locally
// and program each other's MAC, IP and flood entries (reference §1).
func TestLocalExchangeBetweenTwoEVIs(t *testing.T) {
	te := newTestEnv(t)
	a := evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA))
	a.VNI = 100
	b := evReq("b", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA))
	b.VNI = 200
	te.attach(a)
	te.attach(b)
	te.settle()
	wantState(t, "a", te.state("a"),
		map[route.MAC]dummy.FDBEntry{testMAC(2): fe("192.0.2.101", 200)},
		[]dummy.FDBEntry{fe("192.0.2.101", 200)},
		map[netip.Addr]route.MAC{ip("10.1.0.2"): testMAC(2)})
	wantState(t, "b", te.state("b"),
		map[route.MAC]dummy.FDBEntry{testMAC(1): fe("192.0.2.101", 100)},
		[]dummy.FDBEntry{fe("192.0.2.101", 100)},
		map[netip.Addr]route.MAC{ip("10.1.0.1"): testMAC(1)})
	if got := te.state("a").Ports; !reflect.DeepEqual(got, map[string][]dummy.Endpoint{"tapA": {{MAC: testMAC(1), IP: ip("10.1.0.1")}}}) {
		t.Errorf("a ports %v", got)
	}
	info, _ := te.m.Instance("b")
	if info.Routes.Received != 2 || info.Routes.Best != 2 || info.Routes.Advertised != 2 {
		t.Errorf("b route counts %+v", info.Routes)
	}
	// Detaching a removes everything a gave b.
	if err := te.detach("a", testMAC(1), "10.1.0.1", "tapA"); err != nil {
		t.Fatal(err)
	}
	te.settle()
	wantState(t, "b after a stopped", te.state("b"), nil, nil, nil)
}

// The routes we originate, as a BGP peer receives them (RFC 7432 §7.2,
// §7.3, §11.2; RFC 8365 §5.1.3).
func TestOriginatedRoutes(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	req := evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA, rtB))
	req.VNI = 5000
	req.LBOrder = 7
	lp := uint32(300)
	req.LocalPref = &lp
	te.attach(req)
	te.settle()
	info, _ := te.m.Instance("a")
	wantRD := route.NewRDIPv4(bgpAddr, 0) // first RD of the manager
	if info.RD != wantRD || info.VNI != 5000 || !info.ForcedVNI || info.Name != "EVI-1" || info.Type != "EVI" {
		t.Fatalf("instance info %+v", info)
	}
	got := p.routes()
	mc := got[route.EVPNMulticastKey(wantRD, 0, bgpAddr)]
	wantMC := &route.Attrs{NextHop: bgpAddr, HasLocalPref: true, LocalPref: 100, RTs: rts(rtA, rtB), Encaps: vxlan,
		PMSI: &route.PMSI{TunnelType: 6, Label: 5000, TunnelID: dpAddr}}
	if mc == nil || !mc.Attrs.Equal(wantMC) || mc.Label != 0 {
		t.Fatalf("multicast route %v attrs %+v, want %+v", mc, mc.Attrs, wantMC)
	}
	t2 := got[route.EVPNMACIPKey(wantRD, 0, testMAC(1), ip("10.1.0.1"))]
	wantT2 := &route.Attrs{NextHop: dpAddr, HasLocalPref: true, LocalPref: 300, RTs: rts(rtA, rtB), Encaps: vxlan,
		HasLBOrder: true, LBOrder: 7}
	if t2 == nil || !t2.Attrs.Equal(wantT2) || t2.Label != 5000 || t2.Extra != "" {
		t.Fatalf("MAC/IP route %v attrs %+v, want %+v", t2, t2.Attrs, wantT2)
	}
	if len(got) != 2 {
		t.Fatalf("peer has %d routes, want 2", len(got))
	}
	// The endpoint's own RD (LG) is the next one: 192.0.2.1:1.
	if eps := info.Ports["tapA"]; len(eps) != 1 || eps[0].RD != route.NewRDIPv4(bgpAddr, 1) || eps[0].LocalPref != 300 || eps[0].Label != 5000 {
		t.Fatalf("endpoints %+v", info.Ports)
	}
}

// A peer publishes type-2/3 routes; its Cleanup (session down) removes
// everything derived from them.
func TestPeerRoutesAndCleanup(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	p := newPeer(te, "BGP-10.0.0.9")
	p.publish(te,
		adv(mkT2(rp{src: p.src, rd: 1, mac: 9, ip: "10.1.0.9", nh: "10.0.0.9", vni: 100})),
		adv(mkT2(rp{src: p.src, rd: 1, mac: 8, nh: "10.0.0.9", vni: 100})),
		adv(mkT3(p.src, 1, "10.0.0.9", "10.0.0.9", 100, route.PMSIIngressReplication)),
		// MPLS-only route: ignored by a VXLAN dataplane.
		adv(mkT2(rp{src: p.src, rd: 1, mac: 7, nh: "10.0.0.9", vni: 100, encaps: []route.Encap{route.EncapMPLS}})),
	)
	te.settle()
	wantState(t, "peer routes", te.state("a"),
		map[route.MAC]dummy.FDBEntry{testMAC(9): fe("10.0.0.9", 100), testMAC(8): fe("10.0.0.9", 100)},
		[]dummy.FDBEntry{fe("10.0.0.9", 100)},
		map[netip.Addr]route.MAC{ip("10.1.0.9"): testMAC(9)})
	info, _ := te.m.Instance("a")
	if info.Routes.IgnoredEncap != 1 || info.Routes.Received != 3 {
		t.Fatalf("counts %+v", info.Routes)
	}
	te.eng.Cleanup(p)
	te.settle()
	wantState(t, "after peer cleanup", te.state("a"), nil, nil, nil)
	if info, _ := te.m.Instance("a"); info.Routes.Received != 0 || info.Routes.MACs != 0 {
		t.Fatalf("counts after cleanup %+v", info.Routes)
	}
}

// Best path between a peer route and a local EVI's route for the same
// MAC, by LOCAL_PREF; withdraw falls back.
func TestBestPathAcrossSources(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	lp := uint32(50)
	b := evReq("b", 9, "10.1.0.9", "tapB", rts(rtA), rts(rtA))
	b.VNI, b.LocalPref = 300, &lp
	te.attach(b)
	p := newPeer(te, "BGP-10.0.0.9")
	r := mkT2(rp{src: p.src, rd: 1, mac: 9, ip: "10.1.0.9", nh: "10.0.0.9", vni: 100})
	p.publish(te, adv(r))
	te.settle()
	mac9 := map[netip.Addr]route.MAC{ip("10.1.0.9"): testMAC(9)}
	flood := []dummy.FDBEntry{fe("192.0.2.101", 300)}
	wantState(t, "peer preferred (100 > 50)", te.state("a"),
		map[route.MAC]dummy.FDBEntry{testMAC(9): fe("10.0.0.9", 100)}, flood, mac9)
	p.publish(te, wd(r))
	te.settle()
	wantState(t, "peer withdrawn", te.state("a"),
		map[route.MAC]dummy.FDBEntry{testMAC(9): fe("192.0.2.101", 300)}, flood, mac9)
}

// Re-attach with other RTs (reference §5.3): import changes replay and
// withdraw; export changes re-advertise type 2 and type 3.
func TestRTChangesOnReattach(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	p.publish(te, adv(mkT2(rp{src: p.src, rd: 1, mac: 9, nh: "10.0.0.9", vni: 100, rts: rts(rtB)})))
	req := evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA))
	te.attach(req)
	te.settle()
	wantState(t, "rtB not imported", te.state("a"), nil, nil, nil)

	req.ImportRTs = rts(rtA, rtB)
	te.attach(req)
	te.settle()
	wantState(t, "rtB imported", te.state("a"), map[route.MAC]dummy.FDBEntry{testMAC(9): fe("10.0.0.9", 100)}, nil, nil)

	req.ImportRTs = rts(rtA)
	te.attach(req)
	te.settle()
	wantState(t, "rtB removed", te.state("a"), nil, nil, nil)

	req.ExportRTs = rts(rtB)
	te.attach(req)
	te.settle()
	got := p.routes()
	if len(got) != 2 {
		t.Fatalf("peer has %d of our routes, want 2", len(got))
	}
	for k, r := range got {
		if !slices.Equal(r.Attrs.RTs, rts(rtB)) {
			t.Errorf("route %x still carries RTs %v after export change", k, r.Attrs.RTs)
		}
	}
	req.ExportRTs = nil
	te.attach(req)
	te.settle()
	if got := p.routes(); len(got) != 0 {
		t.Fatalf("peer still has %d routes after export RTs emptied", len(got))
	}
	req.ExportRTs = rts(rtA)
	te.attach(req)
	te.settle()
	if got := p.routes(); len(got) != 2 {
		t.Fatalf("peer has %d routes after export RTs restored, want 2", len(got))
	}
}

// Refresh: re-attaching an endpoint re-advertises its route with the new
// parameters but does not call the dataplane again (reference §2.3.4).
func TestRefreshDoesNotCallDataplane(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	req := evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA))
	te.attach(req)
	te.settle()
	before := te.rec.Counters()
	lp := uint32(250)
	req.LocalPref = &lp
	desc := "refreshed"
	req.InstanceDescription = &desc
	te.attach(req)
	te.settle()
	after := te.rec.Counters()
	if after.Plugs != before.Plugs || after.Unplugs != before.Unplugs || after.Instances != before.Instances {
		t.Fatalf("refresh called the dataplane: before %+v after %+v", before, after)
	}
	k := route.EVPNMACIPKey(route.NewRDIPv4(bgpAddr, 0), 0, testMAC(1), ip("10.1.0.1"))
	if r := p.routes()[k]; r == nil || r.Attrs.LocalPref != 250 {
		t.Fatalf("refreshed route %v", r)
	}
	info, _ := te.m.Instance("a")
	if info.Description == nil || *info.Description != "refreshed" || info.Ports["tapA"][0].LocalPref != 250 {
		t.Fatalf("info %+v", info)
	}
	// instance_description is overwritten (cleared) by an attach without it.
	req.InstanceDescription = nil
	te.attach(req)
	if info, _ := te.m.Instance("a"); info.Description != nil {
		t.Fatalf("description not cleared: %q", *info.Description)
	}
}

// E-VPN wildcard: MAC-only endpoint, then the same MAC with an IP.
func TestWildcardMACOnlyThenIP(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	te.attach(evReq("a", 1, "", "tapA", rts(rtA), rts(rtA)))
	te.settle()
	macOnlyKey := route.EVPNMACIPKey(route.NewRDIPv4(bgpAddr, 1), 0, testMAC(1), netip.Addr{}) // per-endpoint RD
	if p.routes()[macOnlyKey] == nil {
		t.Fatalf("no MAC-only route with the endpoint RD; peer has %v", p.routes())
	}
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	te.settle()
	got := p.routes()
	if got[macOnlyKey] != nil {
		t.Fatal("MAC-only route not withdrawn after the MAC+IP plug")
	}
	if got[route.EVPNMACIPKey(route.NewRDIPv4(bgpAddr, 0), 0, testMAC(1), ip("10.1.0.1"))] == nil {
		t.Fatal("no MAC+IP route with the instance RD")
	}
	info, _ := te.m.Instance("a")
	if eps := info.Ports["tapA"]; len(eps) != 1 || !eps[0].IP.IsValid() {
		t.Fatalf("endpoints %+v", eps)
	}
	if c := te.rec.Counters(); c.Plugs != 2 || c.Unplugs != 1 {
		t.Fatalf("dataplane counters %+v", c)
	}
	// A second IP on the same MAC, then a wildcard detach removes both.
	te.attach(evReq("a", 1, "10.1.0.11", "tapA", rts(rtA), rts(rtA)))
	if err := te.detach("a", testMAC(1), "", "tapA"); err != nil {
		t.Fatal(err)
	}
	if _, ok := te.m.Instance("a"); ok {
		t.Fatal("instance still there after wildcard detach of its only MAC")
	}
	var unplugs []string
	for _, c := range te.rec.Calls() {
		if c.Op == "Unplug" {
			unplugs = append(unplugs, fmt.Sprintf("%s last=%v", c.IP, c.Last))
		}
	}
	if want := []string{"invalid IP last=false", "10.1.0.1 last=false", "10.1.0.11 last=true"}; !slices.Equal(unplugs, want) {
		t.Fatalf("unplugs %v, want %v", unplugs, want)
	}
}

func TestEndpointConsistencyErrors(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	before, _ := te.m.Instance("a")
	tests := []struct {
		name string
		req  AttachRequest
		msg  string
	}{
		{"MAC on another port", evReq("a", 1, "10.1.0.2", "tapB", rts(rtA), rts(rtA)),
			"Port information is not consistent. MAC address cannot be bound to two different ports. Previous plug for port tapA (52:54:00:00:00:01) vs. port tapB (52:54:00:00:00:01)"},
		{"IP on another MAC", evReq("a", 2, "10.1.0.1", "tapA", rts(rtA), rts(rtA)),
			"Inconsistent endpoint info: IP 10.1.0.1/32 already bound to a MAC address different from 52:54:00:00:00:02 (52:54:00:00:00:01)"},
		{"ipvpn without driver", AttachRequest{Type: IPVPN, InstanceID: "v"}, "No dataplane driver for VPN type ipvpn"},
		{"unknown type", AttachRequest{Type: "l3", InstanceID: "v"}, "unknown vpn_type: l3"},
	}
	for _, tc := range tests {
		err := te.m.Attach(context.Background(), tc.req)
		var ve *Error
		if !errors.As(err, &ve) || ve.Status != 400 || ve.Msg != tc.msg {
			t.Errorf("%s: err %v, want 400 %q", tc.name, err, tc.msg)
		}
	}
	if after, _ := te.m.Instance("a"); !reflect.DeepEqual(before.Ports, after.Ports) {
		t.Fatalf("rejected requests changed the endpoints: %+v", after.Ports)
	}
}

func TestDetachErrors(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	tests := []struct {
		name, id string
		mac      byte
		ip       string
		status   int
		msg      string
	}{
		{"unknown instance", "nope", 1, "10.1.0.1", 404, "VPN nope could not be found"},
		{"unknown IP", "a", 1, "10.1.0.9", 400, "Endpoint (52:54:00:00:00:01, 10.1.0.9/32) not plugged yet, can't unplug"},
		{"unknown MAC wildcard", "a", 2, "", 400, "Endpoint (52:54:00:00:00:02, None) not plugged yet, can't unplug"},
	}
	for _, tc := range tests {
		err := te.detach(tc.id, testMAC(tc.mac), tc.ip, "tapA")
		var ve *Error
		if !errors.As(err, &ve) || ve.Status != tc.status || ve.Msg != tc.msg {
			t.Errorf("%s: err %v, want %d %q", tc.name, err, tc.status, tc.msg)
		}
	}
}

// The last detach stops the instance and releases its VNI and RDs; the
// id can be used again for a fresh instance.
func TestLastDetachStopsInstance(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	te.attach(evReq("a", 2, "10.1.0.2", "tapA", rts(rtA), rts(rtA)))
	te.settle()
	if n := len(p.routes()); n != 3 {
		t.Fatalf("peer has %d routes, want 3", n)
	}
	if err := te.detach("a", testMAC(1), "10.1.0.1", "tapA"); err != nil {
		t.Fatal(err)
	}
	if _, ok := te.m.Instance("a"); !ok {
		t.Fatal("instance stopped while an endpoint remains")
	}
	if err := te.detach("a", testMAC(2), "10.1.0.2", "tapA"); err != nil {
		t.Fatal(err)
	}
	te.settle()
	if _, ok := te.m.Instance("a"); ok {
		t.Fatal("instance still there after its last detach")
	}
	if n := len(p.routes()); n != 0 {
		t.Fatalf("peer still has %d routes", n)
	}
	if s, _ := te.rec.State(1); !s.Closed {
		t.Fatal("dataplane not closed")
	}
	te.m.mu.Lock()
	labels, rds, vnis := te.m.ids.labels.count, te.m.ids.rds.count, len(te.m.ids.vnis)
	te.m.mu.Unlock()
	if labels != 0 || rds != 0 || vnis != 0 {
		t.Fatalf("identifiers leaked: %d labels, %d RDs, %d VNIs", labels, rds, vnis)
	}
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	if info, _ := te.m.Instance("a"); info.ID != 2 {
		t.Fatalf("new instance id %d, want 2 (ids are never reused)", info.ID)
	}
}

func TestForcedVNIClash(t *testing.T) {
	te := newTestEnv(t)
	a := evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA))
	a.VNI = 100
	te.attach(a)
	b := evReq("b", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA))
	b.VNI = 100
	err := te.m.Attach(context.Background(), b)
	var ve *Error
	if !errors.As(err, &ve) || ve.Status != 400 || ve.Msg != "A VPN instance using vni 100 already exists." {
		t.Fatalf("err %v", err)
	}
	if _, ok := te.m.Instance("b"); ok {
		t.Fatal("instance b created despite the clash")
	}
}

// A failing dataplane plug rolls the endpoint back; a new instance whose
// first plug fails is not kept.
func TestRollbackOnFailingPlug(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	boom := errors.New("boom")
	te.rec.FailNext("Plug", boom)
	err := te.m.Attach(context.Background(), evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	var ve *Error
	if !errors.Is(err, boom) || errors.As(err, &ve) {
		t.Fatalf("err %v, want the dataplane error (server-side)", err)
	}
	te.settle()
	if _, ok := te.m.Instance("a"); ok {
		t.Fatal("instance kept after its first plug failed")
	}
	if n := len(p.routes()); n != 0 {
		t.Fatalf("peer has %d routes of a failed instance", n)
	}
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	te.settle()
	before, _ := te.m.Instance("a")
	te.rec.FailNext("Plug", boom)
	if err := te.m.Attach(context.Background(), evReq("a", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA))); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	te.settle()
	after, _ := te.m.Instance("a")
	if !reflect.DeepEqual(before.Ports, after.Ports) || after.Routes.Advertised != 2 || len(p.routes()) != 2 {
		t.Fatalf("state changed by a failed plug: %+v, peer %d routes", after, len(p.routes()))
	}
	// The same endpoint plugs fine afterwards (its MAC/IP were not kept bound).
	te.attach(evReq("a", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA)))
}

// Attaches racing with the stop of the same instance always succeed on a
// live instance; nothing leaks.
func TestAttachWhileStopping(t *testing.T) {
	te := newTestEnv(t)
	for i := range 50 {
		te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
		var wg sync.WaitGroup
		var detErr, attErr error
		wg.Add(2)
		go func() { defer wg.Done(); detErr = te.detach("a", testMAC(1), "10.1.0.1", "tapA") }()
		go func() {
			defer wg.Done()
			attErr = te.m.Attach(context.Background(), evReq("a", 2, "10.1.0.2", "tapA", rts(rtA), rts(rtA)))
		}()
		wg.Wait()
		if detErr != nil || attErr != nil {
			t.Fatalf("round %d: detach %v, attach %v", i, detErr, attErr)
		}
		info, ok := te.m.Instance("a")
		if !ok || len(info.Ports["tapA"]) != 1 || info.Ports["tapA"][0].MAC != testMAC(2) {
			t.Fatalf("round %d: instance %v %+v", i, ok, info.Ports)
		}
		if err := te.detach("a", testMAC(2), "10.1.0.2", "tapA"); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	te.m.mu.Lock()
	defer te.m.mu.Unlock()
	if te.m.ids.labels.count != 0 || te.m.ids.rds.count != 0 || len(te.m.instances) != 0 {
		t.Fatalf("leak: %d labels, %d RDs, %d instances", te.m.ids.labels.count, te.m.ids.rds.count, len(te.m.instances))
	}
}

// Stop withdraws everything and closes every dataplane.
func TestManagerStop(t *testing.T) {
	te := newTestEnv(t)
	p := newPeer(te, "BGP-10.0.0.9")
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	te.attach(evReq("b", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA)))
	te.m.Stop(context.Background())
	te.eng.Sync()
	if n := len(p.routes()); n != 0 || len(te.m.Instances()) != 0 {
		t.Fatalf("after Stop: peer %d routes, %d instances", n, len(te.m.Instances()))
	}
	if c := te.rec.Counters(); c.Closed != 2 {
		t.Fatalf("dataplanes closed: %d", c.Closed)
	}
}

// Reusing an instance id with another VPN type is a client error (400;
// upstream answers 500). No IP VPN driver exists yet, so the manager's
// lookup is exercised directly.
func TestInstanceTypeReuse(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	_, err := te.m.getOrCreate(AttachRequest{Type: IPVPN, InstanceID: "a"})
	var ve *Error
	if !errors.As(err, &ve) || ve.Status != 400 {
		t.Fatalf("err %v, want 400", err)
	}
}

// The driver's ResetState runs once, before its first instance.
func TestDriverResetOnce(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	te.attach(evReq("b", 2, "10.1.0.2", "tapB", rts(rtA), rts(rtA)))
	var ops []string
	for _, c := range te.rec.Calls() {
		if c.Op == "ResetState" || c.Op == "NewEVI" {
			ops = append(ops, c.Op)
		}
	}
	if want := []string{"ResetState", "NewEVI", "NewEVI"}; !slices.Equal(ops, want) {
		t.Fatalf("driver calls %v, want %v", ops, want)
	}
}

// InstanceRoutes lists received and best routes through the loop.
func TestInstanceRoutes(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	p := newPeer(te, "BGP-10.0.0.9")
	lo := mkT2(rp{src: p.src, rd: 1, mac: 9, nh: "10.0.0.9", vni: 100})
	hi := mkT2(rp{src: p.src, rd: 2, mac: 9, nh: "10.0.0.8", vni: 100, lp: 120})
	p.publish(te, adv(lo), adv(hi))
	te.settle()
	recv, best, err := te.m.InstanceRoutes(context.Background(), "a")
	if err != nil || len(recv) != 2 || len(best) != 1 || best[0] != hi {
		t.Fatalf("received %v best %v err %v", recv, best, err)
	}
	if _, _, err := te.m.InstanceRoutes(context.Background(), "zz"); err == nil {
		t.Fatal("routes of an unknown instance")
	}
}

// A failed dataplane batch is retried, as the current state, before the
// next batch.
func TestDataplaneRetryAfterFailure(t *testing.T) {
	te := newTestEnv(t)
	te.attach(evReq("a", 1, "10.1.0.1", "tapA", rts(rtA), rts(rtA)))
	p := newPeer(te, "BGP-10.0.0.9")
	te.settle()
	te.rec.FailNext("Apply", errors.New("netlink: no buffer space"))
	r1 := mkT2(rp{src: p.src, rd: 1, mac: 9, nh: "10.0.0.9", vni: 100})
	p.publish(te, adv(r1))
	te.settle()
	wantState(t, "failed batch", te.state("a"), nil, nil, nil)
	if info, _ := te.m.Instance("a"); info.Routes.DataplaneErrors != 1 {
		t.Fatalf("dataplane errors %d", info.Routes.DataplaneErrors)
	}
	r1b := mkT2(rp{src: p.src, rd: 1, mac: 9, nh: "10.0.0.8", vni: 100})
	p.publish(te, adv(r1b), adv(mkT2(rp{src: p.src, rd: 1, mac: 8, nh: "10.0.0.9", vni: 100})))
	te.settle()
	wantState(t, "after retry", te.state("a"),
		map[route.MAC]dummy.FDBEntry{testMAC(9): fe("10.0.0.8", 100), testMAC(8): fe("10.0.0.9", 100)}, nil, nil)
}
