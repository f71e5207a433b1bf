package vpn

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

func t2Route(src *route.Source, i uint32, attrs *route.Attrs) *route.Route {
	var mac route.MAC
	mac[0] = 0x02
	binary.BigEndian.PutUint32(mac[2:], i)
	rd := route.NewRDIPv4(netip.MustParseAddr("10.0.0.9"), 1)
	return &route.Route{Family: route.FamilyEVPN, Label: 100, Key: route.EVPNMACIPKey(rd, 0, mac, netip.Addr{}), Attrs: attrs, Source: src}
}

// TestMACSet checks the single-route MAC table against a map through
// insertions, replacements and removals (tombstones, growth, shrinking).
func TestMACSet(t *testing.T) {
	src := &route.Source{Name: "BGP-10.0.0.9", Peer: true}
	var s macSet
	ref := map[uint64]*route.Route{}
	check := func(step string) {
		t.Helper()
		if s.len() != len(ref) {
			t.Fatalf("%s: %d routes, want %d", step, s.len(), len(ref))
		}
		for mk, r := range ref {
			if got := s.get(mk); got != r {
				t.Fatalf("%s: MAC %012x: got %v, want %v", step, mk, got, r)
			}
		}
		n := 0
		for r := range s.all() {
			if ref[routeMACKey(r)] != r {
				t.Fatalf("%s: all() yields %v, not stored", step, r)
			}
			n++
		}
		if n != len(ref) {
			t.Fatalf("%s: all() yields %d routes, want %d", step, n, len(ref))
		}
	}
	const n = 5000
	rs := make([]*route.Route, n)
	for i := range rs {
		rs[i] = t2Route(src, uint32(i), nil)
		mk := routeMACKey(rs[i])
		if mk != macKey(route.MAC([]byte(rs[i].Key[13:19]))) || s.get(mk) != nil {
			t.Fatalf("route %d: MAC key %012x, or found before insertion", i, mk)
		}
		s.put(mk, rs[i])
		ref[mk] = rs[i]
	}
	check("inserted")
	// Replacing a MAC's route keeps one entry.
	for i := 0; i < n; i += 7 {
		r := t2Route(src, uint32(i), &route.Attrs{})
		s.put(routeMACKey(r), r)
		ref[routeMACKey(r)] = r
	}
	check("replaced")
	// Remove all but 100 (the table shrinks), then reinsert some.
	for i := 100; i < n; i++ {
		mk := routeMACKey(rs[i])
		s.remove(mk)
		delete(ref, mk)
	}
	s.remove(0xffff_ffff_ffff) // absent
	check("removed")
	if slots := len(s.groups) * 8; slots > 16*100 {
		t.Fatalf("%d slots for 100 routes: the table did not shrink", slots)
	}
	for i := 100; i < 300; i++ {
		s.put(routeMACKey(rs[i]), rs[i])
		ref[routeMACKey(rs[i])] = rs[i]
	}
	check("reinserted")
	for mk := range ref {
		s.remove(mk)
		delete(ref, mk)
	}
	check("emptied")
	if s.groups != nil || s.dead != 0 {
		t.Fatalf("empty set keeps %d groups, %d tombstones", len(s.groups), s.dead)
	}
}

// TestTrackerShrinksAfterWithdrawal: after most of 20,000 type-2 routes
// are withdrawn the MAC table is small again, and the remaining routes
// still program and withdraw the dataplane as before.
func TestTrackerShrinksAfterWithdrawal(t *testing.T) {
	const n, left = 20000, 100
	src := &route.Source{Name: "BGP-10.0.0.9", Peer: true}
	attrs := &route.Attrs{NextHop: netip.MustParseAddr("10.0.0.9"), RTs: []route.RT{rtA}, Encaps: vxlan}
	routes := make([]*route.Route, n)
	for i := range routes {
		routes[i] = t2Route(src, uint32(i), attrs)
	}
	tr := newTestTracker("h")
	var evs []engine.Event
	for _, r := range routes {
		evs = append(evs, adv(r))
	}
	if ch := tr.handle(evs, nil); len(ch) != n {
		t.Fatalf("%d changes for %d routes", len(ch), n)
	}
	evs = evs[:0]
	for _, r := range routes[left:] {
		evs = append(evs, wd(r))
	}
	if ch := tr.handle(evs, nil); len(ch) != n-left {
		t.Fatalf("%d changes for %d withdrawals", len(ch), n-left)
	}
	if slots := len(tr.macs.groups) * 8; slots > 16*left || tr.macs.len() != left || tr.stats.MACs != left || tr.stats.Type2Routes != left {
		t.Fatalf("after withdrawal: %d slots (not shrunk), %d MACs, stats %+v", slots, tr.macs.len(), tr.stats)
	}
	for _, r := range routes[:left] {
		if ch := tr.handle([]engine.Event{wd(r)}, nil); len(ch) != 1 || ch[0].Kind.String() != "remove-mac" {
			t.Fatalf("withdrawal of a remaining route: changes %v", ch)
		}
	}
	if tr.macs.len() != 0 || tr.stats.MACs != 0 {
		t.Fatalf("state left: %d MACs, stats %+v", tr.macs.len(), tr.stats)
	}
}
