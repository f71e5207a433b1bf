package vpn

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestShrunk: a map is rebuilt (a new map with the same entries) only
// once it holds less than a quarter of its high-water mark, and only for
// marks of at least minShrink entries.
func TestShrunk(t *testing.T) {
	for _, tc := range []struct {
		name       string
		grow, keep int
		rebuilt    bool
	}{
		{"small map never rebuilt", minShrink - 1, 0, false},
		{"a quarter left: kept", 4 * minShrink, minShrink, false},
		{"under a quarter: rebuilt", 4 * minShrink, minShrink - 1, true},
		{"emptied: rebuilt", minShrink, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, peak := map[int]int{}, 0
			for i := range tc.grow {
				m[i] = i
				m = shrunk(m, &peak)
			}
			orig := reflect.ValueOf(m).UnsafePointer()
			rebuilt := false
			for i := tc.grow - 1; i >= tc.keep; i-- {
				delete(m, i)
				m = shrunk(m, &peak)
				if reflect.ValueOf(m).UnsafePointer() != orig {
					rebuilt = true
					orig = reflect.ValueOf(m).UnsafePointer()
				}
			}
			if rebuilt != tc.rebuilt || len(m) != tc.keep {
				t.Fatalf("rebuilt %v with %d entries left, want %v and %d", rebuilt, len(m), tc.rebuilt, tc.keep)
			}
			for i := range tc.keep {
				if m[i] != i {
					t.Fatalf("entry %d lost: %v", i, m[i])
				}
			}
		})
	}
}

// TestTrackerShrinksAfterWithdrawal: after most of 20,000 type-2 routes
// are withdrawn the MAC table is rebuilt small, and the remaining routes
// still program and withdraw the dataplane as before.
func TestTrackerShrinksAfterWithdrawal(t *testing.T) {
	const n, left = 20000, 100
	src := &route.Source{Name: "BGP-10.0.0.9", Peer: true}
	attrs := &route.Attrs{NextHop: netip.MustParseAddr("10.0.0.9"), RTs: []route.RT{rtA}, Encaps: vxlan}
	rd := route.NewRDIPv4(netip.MustParseAddr("10.0.0.9"), 1)
	routes := make([]*route.Route, n)
	for i := range routes {
		var mac route.MAC
		mac[0] = 0x02
		binary.BigEndian.PutUint32(mac[2:], uint32(i))
		routes[i] = &route.Route{Family: route.FamilyEVPN, Label: 100, Key: route.EVPNMACIPKey(rd, 0, mac, netip.Addr{}), Attrs: attrs, Source: src}
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
	if tr.macsPeak >= n || len(tr.macs) != left || tr.stats.MACs != left || tr.stats.Type2Routes != left {
		t.Fatalf("after withdrawal: high-water mark %d (not rebuilt), %d MACs, stats %+v", tr.macsPeak, len(tr.macs), tr.stats)
	}
	for _, r := range routes[:left] {
		if ch := tr.handle([]engine.Event{wd(r)}, nil); len(ch) != 1 || ch[0].Kind.String() != "remove-mac" {
			t.Fatalf("withdrawal of a remaining route: changes %v", ch)
		}
	}
	if len(tr.macs) != 0 || tr.stats.MACs != 0 {
		t.Fatalf("state left: %d MACs, stats %+v", len(tr.macs), tr.stats)
	}
}
