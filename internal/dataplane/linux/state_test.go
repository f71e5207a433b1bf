package linux

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

func TestFDBTable(t *testing.T) {
	var tb fdbTable
	d1 := dest{vtep: netip.MustParseAddr("10.0.0.1"), vni: 5}
	d2 := dest{vtep: netip.MustParseAddr("10.0.0.2"), vni: 5}
	m1, m2, m3 := route.MAC{2, 0, 0, 0, 0, 1}, route.MAC{2, 0, 0, 0, 0, 2}, route.MAC{2, 0, 0, 0, 0, 3}
	tb.set(m1, d1)
	tb.set(m2, d1)
	tb.set(m3, d2)
	tb.set(m1, d2) // a move
	if len(tb.dests) != 2 {
		t.Errorf("%d interned destinations, want 2", len(tb.dests))
	}
	for _, c := range []struct {
		m    route.MAC
		want dest
	}{{m1, d2}, {m2, d1}, {m3, d2}} {
		if got, ok := tb.get(c.m); !ok || got != c.want {
			t.Errorf("get(%s) = %v %v, want %v", c.m, got, ok, c.want)
		}
	}
	n := 0
	for range tb.all {
		n++
	}
	if n != 3 || tb.len() != 3 {
		t.Errorf("all yields %d, len %d, want 3", n, tb.len())
	}
	for _, m := range []route.MAC{m1, m2, m3} {
		tb.del(m)
	}
	if tb.macs != nil || tb.dests != nil || tb.ids != nil {
		t.Error("an emptied table keeps its maps")
	}
}

func TestNeighTable(t *testing.T) {
	var tb neighTable
	ip4, ip6 := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("2001:db8::1")
	a, b := route.MAC{2, 0, 0, 0, 0, 0xa}, route.MAC{2, 0, 0, 0, 0, 0xb}
	steps := []struct {
		ip   netip.Addr
		set  []route.MAC
		want []route.MAC
	}{
		{ip4, []route.MAC{a}, []route.MAC{a}},
		{ip4, []route.MAC{a, b}, []route.MAC{a, b}}, // b active
		{ip6, []route.MAC{b}, []route.MAC{b}},
		{ip4, []route.MAC{b}, []route.MAC{b}},
		{ip4, nil, nil},
	}
	for i, s := range steps {
		tb.setList(s.ip, s.set)
		if got := tb.list(s.ip); !slices.Equal(got, s.want) {
			t.Errorf("step %d: list(%s) = %v, want %v", i, s.ip, got, s.want)
		}
		if act, ok := tb.active(s.ip); ok != (len(s.want) > 0) || ok && act != s.want[len(s.want)-1] {
			t.Errorf("step %d: active(%s) = %v %v", i, s.ip, act, ok)
		}
	}
	if tb.len() != 1 || tb.more != nil && len(tb.more) != 0 {
		t.Errorf("len %d, more %v: want only %s", tb.len(), tb.more, ip6)
	}
	tb.setList(ip6, nil)
	if tb.v4 != nil || tb.v6 != nil || tb.more != nil {
		t.Error("an emptied table keeps its maps")
	}
}

// BenchmarkStateTables reports the heap bytes per entry of the desired
// state for 1M remote MACs (200 VTEPs) and 1M remote IPv4 addresses.
func BenchmarkStateTables(b *testing.B) {
	const n = 1 << 20
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var f fdbTable
		var nb neighTable
		for i := range n {
			m := route.MAC{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
			f.set(m, dest{vtep: netip.AddrFrom4([4]byte{10, 99, 1, byte(i % 200)}), vni: 7})
			nb.setList(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), []route.MAC{m})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/mac+ip")
		runtime.KeepAlive(&f)
		runtime.KeepAlive(&nb)
	}
}
