package vpn

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

var (
	rtA   = route.NewRT(64512, 1)
	rtB   = route.NewRT(64512, 2)
	vxlan = []route.Encap{route.EncapVXLAN}
)

func testMAC(n byte) route.MAC { return route.MAC{0x52, 0x54, 0x00, 0x00, 0x00, n} }

// rp describes a test route.
type rp struct {
	src    *route.Source
	rd     uint16 // RD <src addr 198.51.100.9>:rd
	mac    byte
	ip     string // "" for MAC-only
	nh     string
	vni    uint32
	lp     uint32 // 0: no LOCAL_PREF
	rts    []route.RT
	encaps []route.Encap
}

func mkT2(p rp) *route.Route {
	if p.rts == nil {
		p.rts = []route.RT{rtA}
	}
	if p.encaps == nil {
		p.encaps = vxlan
	}
	var ip netip.Addr
	if p.ip != "" {
		ip = netip.MustParseAddr(p.ip)
	}
	return &route.Route{
		Family: route.FamilyEVPN, Label: p.vni,
		Key: route.EVPNMACIPKey(route.NewRDIPv4(netip.MustParseAddr("198.51.100.9"), p.rd), 0, testMAC(p.mac), ip),
		Attrs: &route.Attrs{NextHop: netip.MustParseAddr(p.nh), HasLocalPref: p.lp != 0, LocalPref: p.lp,
			RTs: p.rts, Encaps: p.encaps},
		Source: p.src,
	}
}

func mkT3(src *route.Source, rd uint16, orig, tunnel string, vni uint32, tunnelType uint8) *route.Route {
	o := netip.MustParseAddr(orig)
	return &route.Route{
		Family: route.FamilyEVPN,
		Key:    route.EVPNMulticastKey(route.NewRDIPv4(o, rd), 0, o),
		Attrs: &route.Attrs{NextHop: o, RTs: []route.RT{rtA}, Encaps: vxlan,
			PMSI: &route.PMSI{TunnelType: tunnelType, Label: vni, TunnelID: netip.MustParseAddr(tunnel)}},
		Source: src,
	}
}

func adv(r *route.Route) engine.Event { return engine.Event{Kind: engine.Advertise, Route: r} }
func wd(r *route.Route) engine.Event  { return engine.Event{Kind: engine.Withdraw, Route: r} }

// render prints changes as "add-mac 52:54:00:00:00:01 10.0.0.1 100",
// "add-ip 10.1.0.1 52:54:00:00:00:01", "add-flood 10.0.0.1 100".
func render(chs []dataplane.EVIChange) string {
	var parts []string
	for _, c := range chs {
		switch c.Kind {
		case dataplane.AddRemoteMAC, dataplane.RemoveRemoteMAC:
			parts = append(parts, fmt.Sprintf("%s %s %s %d", c.Kind, c.MAC, c.VTEP, c.VNI))
		case dataplane.AddRemoteIP, dataplane.RemoveRemoteIP:
			parts = append(parts, fmt.Sprintf("%s %s %s", c.Kind, c.IP, c.MAC))
		default:
			parts = append(parts, fmt.Sprintf("%s %s %d", c.Kind, c.VTEP, c.VNI))
		}
	}
	return strings.Join(parts, "; ")
}

func newTestTracker(host string) *tracker {
	t := newTracker(host, "EVI-1", vxlan)
	t.imports = []route.RT{rtA}
	return t
}

type step struct {
	name string
	evs  []engine.Event
	want string
}

func runSteps(t *testing.T, tr *tracker, steps []step) {
	t.Helper()
	for _, s := range steps {
		got := render(tr.handle(s.evs, nil))
		if got != s.want {
			t.Fatalf("%s:\n got  %q\n want %q", s.name, got, s.want)
		}
	}
}

func TestTrackerBestPathByLocalPref(t *testing.T) {
	s1, s2 := &route.Source{Name: "BGP-10.0.0.1", Peer: true}, &route.Source{Name: "BGP-10.0.0.2", Peer: true}
	low := mkT2(rp{src: s1, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.1", vni: 100})           // LOCAL_PREF missing = 100
	high := mkT2(rp{src: s2, rd: 2, mac: 1, ip: "10.1.0.1", nh: "10.0.0.2", vni: 100, lp: 200}) // wins
	tr := newTestTracker("host")
	runSteps(t, tr, []step{
		{"first route", []engine.Event{adv(low)}, "add-mac 52:54:00:00:00:01 10.0.0.1 100; add-ip 10.1.0.1 52:54:00:00:00:01"},
		// make-before-break: new VTEP first, then the old one removed.
		{"better route", []engine.Event{adv(high)}, "add-mac 52:54:00:00:00:01 10.0.0.2 100; remove-mac 52:54:00:00:00:01 10.0.0.1 100"},
		{"worse route withdrawn", []engine.Event{wd(low)}, ""},
		{"re-add worse", []engine.Event{adv(low)}, ""},
		{"best withdrawn", []engine.Event{wd(high)}, "add-mac 52:54:00:00:00:01 10.0.0.1 100; remove-mac 52:54:00:00:00:01 10.0.0.2 100"},
		{"last withdrawn", []engine.Event{wd(low)}, "remove-ip 10.1.0.1 52:54:00:00:00:01; remove-mac 52:54:00:00:00:01 10.0.0.1 100"},
		{"unknown withdraw", []engine.Event{wd(low)}, ""},
	})
	if tr.macs.len()+len(tr.multi) != 0 || tr.stats.Type2Routes != 0 || tr.stats.MACs != 0 || tr.stats.Type2Dests != 0 {
		t.Fatalf("state left: %d+%d MACs, stats %+v", tr.macs.len(), len(tr.multi), tr.stats)
	}
}

func TestTrackerTieBreakDeterministic(t *testing.T) {
	s1, s2 := &route.Source{Name: "BGP-10.0.0.1", Peer: true}, &route.Source{Name: "BGP-10.0.0.2", Peer: true}
	a := mkT2(rp{src: s1, rd: 1, mac: 1, nh: "10.0.0.1", vni: 100})
	b := mkT2(rp{src: s2, rd: 2, mac: 1, nh: "10.0.0.2", vni: 100})
	winners := map[string]int{}
	for h := range 16 {
		host := fmt.Sprintf("host-%d", h)
		var first string
		for _, order := range [][]*route.Route{{a, b}, {b, a}} {
			tr := newTestTracker(host)
			tr.handle([]engine.Event{adv(order[0]), adv(order[1])}, nil)
			e := tr.entry(macKey(testMAC(1)))
			w := tr.macBest(&e).NextHop().String()
			if first == "" {
				first = w
			} else if w != first {
				t.Fatalf("%s: winner depends on arrival order (%s vs %s)", host, first, w)
			}
			if tr.better(a, b) == tr.better(b, a) {
				t.Fatalf("%s: better(a,b) == better(b,a)", host)
			}
		}
		winners[first]++
	}
	// The hash is salted by hostname: over 16 hosts both routes win
	// somewhere (fixed inputs, so this is deterministic).
	if len(winners) != 2 {
		t.Fatalf("tie-break not salted by hostname: winners %v", winners)
	}
}

func TestTrackerEquivalentRoutesNoDataplaneCall(t *testing.T) {
	s1, s2 := &route.Source{Name: "EVI-7"}, &route.Source{Name: "BGP-10.0.0.2", Peer: true}
	a := mkT2(rp{src: s1, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.1", vni: 100})
	b := mkT2(rp{src: s2, rd: 2, mac: 1, ip: "10.1.0.1", nh: "10.0.0.1", vni: 100, lp: 300})
	runSteps(t, newTestTracker("h"), []step{
		{"a", []engine.Event{adv(a)}, "add-mac 52:54:00:00:00:01 10.0.0.1 100; add-ip 10.1.0.1 52:54:00:00:00:01"},
		{"b better, same VTEP/VNI", []engine.Event{adv(b)}, ""},
		{"b gone", []engine.Event{wd(b)}, ""},
		{"a gone", []engine.Event{wd(a)}, "remove-ip 10.1.0.1 52:54:00:00:00:01; remove-mac 52:54:00:00:00:01 10.0.0.1 100"},
	})
}

func TestTrackerReplacement(t *testing.T) {
	s := &route.Source{Name: "BGP-10.0.0.1", Peer: true}
	old := mkT2(rp{src: s, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.1", vni: 100})
	moved := mkT2(rp{src: s, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.3", vni: 101})
	noRT := mkT2(rp{src: s, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.3", vni: 101, rts: []route.RT{rtB}})
	tr := newTestTracker("h")
	runSteps(t, tr, []step{
		{"old", []engine.Event{adv(old)}, "add-mac 52:54:00:00:00:01 10.0.0.1 100; add-ip 10.1.0.1 52:54:00:00:00:01"},
		{"replaced", []engine.Event{{Kind: engine.Advertise, Route: moved, Replaced: old}}, "add-mac 52:54:00:00:00:01 10.0.0.3 101; remove-mac 52:54:00:00:00:01 10.0.0.1 100"},
	})
	if tr.stats.Type2Routes != 1 {
		t.Fatalf("Type2Routes = %d after a replacement, want 1", tr.stats.Type2Routes)
	}
	// A replacement no longer imported (RT changed) removes the route.
	runSteps(t, tr, []step{
		{"replaced by non-imported", []engine.Event{{Kind: engine.Advertise, Route: noRT, Replaced: moved}},
			"remove-ip 10.1.0.1 52:54:00:00:00:01; remove-mac 52:54:00:00:00:01 10.0.0.3 101"},
	})
	if tr.stats.Type2Routes != 0 || tr.stats.IgnoredRT != 1 {
		t.Fatalf("stats %+v", tr.stats)
	}
}

func TestTrackerFiltering(t *testing.T) {
	s := &route.Source{Name: "BGP-10.0.0.1", Peer: true}
	mplsOnly := mkT2(rp{src: s, rd: 1, mac: 1, nh: "10.0.0.1", vni: 100, encaps: []route.Encap{route.EncapMPLS}})
	noEncap := mkT2(rp{src: s, rd: 2, mac: 2, nh: "10.0.0.1", vni: 100, encaps: []route.Encap{}})
	otherRT := mkT2(rp{src: s, rd: 3, mac: 3, nh: "10.0.0.1", vni: 100, rts: []route.RT{rtB}})
	both := mkT2(rp{src: s, rd: 4, mac: 4, nh: "10.0.0.1", vni: 100, encaps: []route.Encap{route.EncapMPLS, route.EncapVXLAN}, rts: []route.RT{rtB, rtA}})
	type1 := &route.Route{Family: route.FamilyEVPN, Key: "\x01" + strings.Repeat("\x00", 24), Attrs: both.Attrs, Source: s}
	vpnv4 := &route.Route{Family: route.FamilyVPNv4, Key: route.VPNv4Key(route.RD{}, netip.MustParsePrefix("10.0.0.0/24")), Attrs: both.Attrs, Source: s}
	var warned []string
	tr := newTestTracker("h")
	tr.onIgnore = func(reason string, r *route.Route) { warned = append(warned, r.String()) }
	runSteps(t, tr, []step{
		{"MPLS only", []engine.Event{adv(mplsOnly)}, ""},
		{"no encapsulation community = default", []engine.Event{adv(noEncap)}, ""},
		{"RT not imported", []engine.Event{adv(otherRT)}, ""},
		{"type 1 and VPNv4 ignored", []engine.Event{adv(type1), adv(vpnv4)}, ""},
		{"MPLS+VXLAN, one imported RT", []engine.Event{adv(both)}, "add-mac 52:54:00:00:00:04 10.0.0.1 100"},
	})
	want := trackerStats{Type2Routes: 1, MACs: 1, Type2Dests: 1, IgnoredType: 2, IgnoredRT: 1, IgnoredEncap: 2}
	if tr.stats != want {
		t.Fatalf("stats %+v, want %+v", tr.stats, want)
	}
	if len(warned) != 2 {
		t.Fatalf("encapsulation warnings %v, want 2", warned)
	}
}

func TestTrackerMACWithSeveralIPs(t *testing.T) {
	s := &route.Source{Name: "BGP-10.0.0.1", Peer: true}
	macOnly := mkT2(rp{src: s, rd: 1, mac: 1, nh: "10.0.0.1", vni: 100})
	ip1 := mkT2(rp{src: s, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.1", vni: 100})
	ip6 := mkT2(rp{src: s, rd: 1, mac: 1, ip: "2001:db8::1", nh: "10.0.0.1", vni: 100})
	tr := newTestTracker("h")
	runSteps(t, tr, []step{
		{"mac+ip", []engine.Event{adv(ip1)}, "add-mac 52:54:00:00:00:01 10.0.0.1 100; add-ip 10.1.0.1 52:54:00:00:00:01"},
		{"mac only, same VTEP", []engine.Event{adv(macOnly)}, ""},
		{"ipv6", []engine.Event{adv(ip6)}, "add-ip 2001:db8::1 52:54:00:00:00:01"},
		{"ip1 gone", []engine.Event{wd(ip1)}, "remove-ip 10.1.0.1 52:54:00:00:00:01"},
		{"mac-only gone", []engine.Event{wd(macOnly)}, ""},
	})
	e := tr.entry(macKey(testMAC(1)))
	if e.one != ip6 || e.many != nil {
		t.Fatalf("MAC entry did not return to the compact form: %+v", e)
	}
	runSteps(t, tr, []step{
		{"ipv6 gone", []engine.Event{wd(ip6)}, "remove-ip 2001:db8::1 52:54:00:00:00:01; remove-mac 52:54:00:00:00:01 10.0.0.1 100"},
	})
}

func TestTrackerFloodRefcount(t *testing.T) {
	s1, s2 := &route.Source{Name: "BGP-10.0.0.1", Peer: true}, &route.Source{Name: "EVI-2"}
	a := mkT3(s1, 1, "10.0.0.1", "10.0.0.11", 100, route.PMSIIngressReplication)
	b := mkT3(s2, 2, "10.0.0.2", "10.0.0.11", 100, route.PMSIIngressReplication) // same flood target
	c := mkT3(s1, 3, "10.0.0.3", "10.0.0.13", 100, 3)                            // PIM-SSM tree: ignored
	aMoved := mkT3(s1, 1, "10.0.0.1", "10.0.0.12", 100, route.PMSIIngressReplication)
	tr := newTestTracker("h")
	runSteps(t, tr, []step{
		{"a", []engine.Event{adv(a)}, "add-flood 10.0.0.11 100"},
		{"b same target", []engine.Event{adv(b)}, ""},
		{"c other PMSI type", []engine.Event{adv(c)}, ""},
		{"a moves", []engine.Event{{Kind: engine.Advertise, Route: aMoved, Replaced: a}}, "add-flood 10.0.0.12 100"},
		{"b gone", []engine.Event{wd(b)}, "remove-flood 10.0.0.11 100"},
		{"a gone, c gone", []engine.Event{wd(aMoved), wd(c)}, "remove-flood 10.0.0.12 100"},
	})
	if len(tr.mcast) != 0 || len(tr.flood) != 0 || tr.stats.Type3Routes != 0 {
		t.Fatalf("state left: %d dests, %d flood, stats %+v", len(tr.mcast), len(tr.flood), tr.stats)
	}
}

func TestTrackerRoutesListing(t *testing.T) {
	s1, s2 := &route.Source{Name: "BGP-10.0.0.1", Peer: true}, &route.Source{Name: "BGP-10.0.0.2", Peer: true}
	a := mkT2(rp{src: s1, rd: 1, mac: 1, nh: "10.0.0.1", vni: 100})
	b := mkT2(rp{src: s2, rd: 2, mac: 1, nh: "10.0.0.2", vni: 100, lp: 200})
	c := mkT3(s1, 1, "10.0.0.1", "10.0.0.1", 100, route.PMSIIngressReplication)
	tr := newTestTracker("h")
	tr.handle([]engine.Event{adv(a), adv(b), adv(c)}, nil)
	recv, best := tr.routes()
	if len(recv) != 3 || len(best) != 2 || !slices.Contains(best, b) || !slices.Contains(best, c) {
		t.Fatalf("received %v best %v", recv, best)
	}
}

// The tie-break hash is part of the behaviour (which VTEP wins must not
// change across restarts or versions): pin it.
func TestTieBreakHashGolden(t *testing.T) {
	tr := newTracker("compute-1", "EVI-1", vxlan)
	r := &route.Route{Key: "\x02abc", Source: &route.Source{Name: "BGP-10.0.0.1"}}
	// FNV-1a 64 of "compute-1\x00EVI-1\x00BGP-10.0.0.1\x00\x02abc".
	const want = 0x200dc9ea5381e66e
	if got := tr.hash(r); got != want {
		t.Fatalf("hash = %#x, want %#x", got, want)
	}
}

func TestTrackerReconcileFailedChanges(t *testing.T) {
	s := &route.Source{Name: "BGP-10.0.0.1", Peer: true}
	tr := newTestTracker("h")
	moved := mkT2(rp{src: s, rd: 1, mac: 1, ip: "10.1.0.1", nh: "10.0.0.2", vni: 100})
	tr.handle([]engine.Event{adv(moved), adv(mkT3(s, 1, "10.0.0.1", "10.0.0.1", 100, route.PMSIIngressReplication))}, nil)
	failed := []dataplane.EVIChange{
		{Kind: dataplane.AddRemoteMAC, MAC: testMAC(1), VTEP: ip("10.0.0.1"), VNI: 100}, // stale now
		{Kind: dataplane.AddRemoteIP, MAC: testMAC(1), IP: ip("10.1.0.1")},
		{Kind: dataplane.AddRemoteMAC, MAC: testMAC(2), VTEP: ip("10.0.0.1"), VNI: 100}, // gone now
		{Kind: dataplane.AddFlood, VTEP: ip("10.0.0.1"), VNI: 100},
		{Kind: dataplane.AddFlood, VTEP: ip("10.0.0.5"), VNI: 100}, // gone now
	}
	want := "add-mac 52:54:00:00:00:01 10.0.0.2 100; remove-mac 52:54:00:00:00:01 10.0.0.1 100; " +
		"add-ip 10.1.0.1 52:54:00:00:00:01; remove-mac 52:54:00:00:00:02 10.0.0.1 100; " +
		"add-flood 10.0.0.1 100; remove-flood 10.0.0.5 100"
	if got := render(tr.reconcile(failed)); got != want {
		t.Fatalf("reconcile:\n got  %q\n want %q", got, want)
	}
}
