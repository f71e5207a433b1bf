package engine

import (
	"log/slog"
	"net/netip"
	"runtime"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// countWorker counts delivered events (a worker that costs nothing).
type countWorker struct {
	name string
	peer bool
	n    int
}

func (w *countWorker) Name() string        { return w.name }
func (w *countWorker) IsPeer() bool        { return w.peer }
func (w *countWorker) Deliver(evs []Event) { w.n += len(evs) }

// genType2 builds n E-VPN MAC/IP routes (RFC 7432 §7.2, with an IPv4
// address: a 24-byte key) from src, all sharing attrs.
func genType2(src *route.Source, n int, attrs *route.Attrs) []*route.Route {
	rs := make([]*route.Route, n)
	for i := range rs {
		mac := route.MAC{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rs[i] = &route.Route{
			Family: route.FamilyEVPN,
			Label:  5000,
			Key:    route.EVPNMACIPKey(rd1, 0, mac, ip),
			Attrs:  attrs,
			Source: src,
		}
	}
	return rs
}

func benchAttrs() *route.Attrs {
	return &route.Attrs{
		NextHop: netip.MustParseAddr("192.0.2.7"), HasLocalPref: true, LocalPref: 100,
		RTs: []route.RT{rt1}, Encaps: []route.Encap{route.EncapVXLAN},
	}
}

// benchTable is a table with one peer source and one EVI-like worker
// subscribed to (evpn, rt1).
func benchTable() (*Table, *route.Source, *countWorker) {
	tab := NewTable(nil)
	tab.SetLogger(slog.New(slog.DiscardHandler))
	src := tab.Register(&countWorker{name: "BGP-192.0.2.2", peer: true})
	evi := &countWorker{name: "EVI-1"}
	tab.Subscribe(evi, Match{Family: route.FamilyEVPN, RT: rt1})
	return tab, src, evi
}

// publishAll publishes events for rs in batches of batch.
func publishAll(tab *Table, src *route.Source, rs []*route.Route, kind EventKind, batch int, buf []Event) {
	for i := 0; i < len(rs); i += batch {
		buf = buf[:0]
		for _, r := range rs[i:min(i+batch, len(rs))] {
			buf = append(buf, Event{Kind: kind, Route: r})
		}
		tab.Publish(src, buf)
	}
}

// BenchmarkPublishType2 measures the hot path: type-2 routes from a peer
// delivered to one EVI subscribed to their RT. One op is one route event.
//   - advertise: new routes into a table growing up to 1M routes;
//   - replace: re-advertisement with a new label (Replaced path) of a
//     100k-route table.
func BenchmarkPublishType2(b *testing.B) {
	const batch = 64
	b.Run("advertise", func(b *testing.B) {
		tab, src, evi := benchTable()
		rs := genType2(src, 1<<20, benchAttrs())
		buf := make([]Event, 0, batch)
		pos := 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += batch {
			n := min(batch, b.N-i)
			if pos+n > len(rs) {
				b.StopTimer()
				publishAll(tab, src, rs, Withdraw, batch, buf)
				pos = 0
				b.StartTimer()
			}
			publishAll(tab, src, rs[pos:pos+n], Advertise, batch, buf)
			pos += n
		}
		b.StopTimer()
		if evi.n < b.N {
			b.Fatalf("EVI got %d events, want at least %d", evi.n, b.N)
		}
	})
	b.Run("replace", func(b *testing.B) {
		tab, src, evi := benchTable()
		const size = 100_000
		attrs := benchAttrs()
		gens := [2][]*route.Route{genType2(src, size, attrs), genType2(src, size, attrs)}
		for _, r := range gens[1] {
			r.Label = 5001
		}
		buf := make([]Event, 0, batch)
		publishAll(tab, src, gens[0], Advertise, batch, buf)
		evi.n = 0
		pos, g, n := 0, 1, 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += n {
			n = min(batch, b.N-i, size-pos)
			publishAll(tab, src, gens[g][pos:pos+n], Advertise, batch, buf)
			pos += n
			if pos == size {
				pos, g = 0, 1-g
			}
		}
		b.StopTimer()
		if evi.n < b.N {
			b.Fatalf("EVI got %d events, want at least %d", evi.n, b.N)
		}
	})
}

// BenchmarkReplay measures a subscription replaying 100k routes and the
// unsubscription withdrawing them. One op is subscribe + unsubscribe;
// ns/route is per replayed route (both directions).
func BenchmarkReplay(b *testing.B) {
	const size = 100_000
	tab, src, _ := benchTable()
	publishAll(tab, src, genType2(src, size, benchAttrs()), Advertise, 64, nil)
	w := &countWorker{name: "EVI-2"}
	m := Match{Family: route.FamilyEVPN, RT: rt1}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tab.Subscribe(w, m)
		tab.Unsubscribe(w, m)
	}
	b.StopTimer()
	if w.n != 2*size*b.N {
		b.Fatalf("worker got %d events, want %d", w.n, 2*size*b.N)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*size*b.N), "ns/route")
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// measureMemory publishes n synthetic type-2 routes (one RT, shared attrs)
// from one peer to a table with one subscribed EVI and returns the heap
// bytes per route of the Route values themselves (what the codec
// allocates) and of the engine's structures.
func measureMemory(n int) (routeBytes, engineBytes float64) {
	base := heapInUse()
	tab, src, _ := benchTable()
	rs := genType2(src, n, benchAttrs())
	withRoutes := heapInUse()
	publishAll(tab, src, rs, Advertise, 64, nil)
	rs = nil // the table holds them now
	after := heapInUse()
	runtime.KeepAlive(tab)
	sliceBytes := float64(n * 8) // the rs slice, released above
	routeBytes = (float64(withRoutes-base) - sliceBytes) / float64(n)
	engineBytes = (float64(after) - float64(withRoutes) + sliceBytes) / float64(n)
	return routeBytes, engineBytes
}

// BenchmarkMemory1M reports heap bytes per route for 1M received type-2
// routes: "route-B/route" for the Route values and their keys, and
// "engine-B/route" for the engine's tables and indexes. Run with
// -benchtime=1x.
func BenchmarkMemory1M(b *testing.B) {
	var rb, eb float64
	for range b.N {
		rb, eb = measureMemory(1_000_000)
	}
	b.ReportMetric(rb, "route-B/route")
	b.ReportMetric(eb, "engine-B/route")
	b.ReportMetric(rb+eb, "total-B/route")
}

// TestMemoryPerRoute guards the engine's memory budget (≤ 150 bytes per
// received route, design target; see BenchmarkMemory1M for 1M routes).
func TestMemoryPerRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 200k routes")
	}
	_, eb := measureMemory(200_000)
	t.Logf("engine: %.1f bytes/route", eb)
	if eb > 150 {
		t.Errorf("engine uses %.1f heap bytes per route, budget is 150", eb)
	}
}
