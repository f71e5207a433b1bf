package vpn

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// seqRDs is a trivial rdSource for instance states built without a manager.
type seqRDs struct{ next uint16 }

func (s *seqRDs) allocRD() (uint16, error) { s.next++; return s.next, nil }
func (s *seqRDs) releaseRD(uint16)         {}

// syncEVI runs an EVI state synchronously as an engine worker: Deliver
// processes the events and applies the changes at once (no goroutine).
type syncEVI struct {
	e       *evi
	changes []dataplane.EVIChange
}

func (w *syncEVI) Name() string { return w.e.name }
func (w *syncEVI) IsPeer() bool { return false }
func (w *syncEVI) Deliver(evs []engine.Event) {
	w.changes = w.e.receive(evs, w.changes[:0])
	if len(w.changes) > 0 {
		_ = w.e.dp.Apply(w.changes)
	}
}

func newBenchEVI(tb testing.TB, drv *dummy.Driver) *evi {
	dp, err := drv.NewEVI(dataplane.EVIConfig{InstanceID: 1, VNI: 100, LocalAddress: dpAddr})
	if err != nil {
		tb.Fatal(err)
	}
	e := newEVI(eviParams{id: 1, externalID: "bench", vni: vniLease{vni: 100}, bgpAddr: bgpAddr, dpAddr: dpAddr,
		hostname: "bench", encaps: drv.Encaps(), dp: dp, rds: &seqRDs{}, log: quiet})
	e.importRTs, e.rt.imports = rts(rtA), rts(rtA)
	return e
}

// peerT2 builds the i-th type-2 route of a peer: distinct MAC and IP per
// route, one RD, shared attributes.
func peerT2(src *route.Source, rd route.RD, attrs *route.Attrs, i int) *route.Route {
	var mac route.MAC
	mac[0] = 0x02
	binary.BigEndian.PutUint32(mac[2:], uint32(i))
	var a4 [4]byte
	binary.BigEndian.PutUint32(a4[:], 0x0a000000+uint32(i))
	return &route.Route{Family: route.FamilyEVPN, Label: 100, Key: route.EVPNMACIPKey(rd, 0, mac, netip.AddrFrom4(a4)),
		Attrs: attrs, Source: src}
}

func sharedPeerAttrs() *route.Attrs {
	return &route.Attrs{NextHop: netip.MustParseAddr("10.0.0.9"), HasLocalPref: true, LocalPref: 100,
		RTs: rts(rtA), Encaps: vxlan}
}

// BenchmarkEVIImportType2 measures the EVI's processing of received
// type-2 routes (tracking, best path, dataplane diff, one dummy Apply per
// batch of 256 events); one op = one route event (advertise or withdraw).
func BenchmarkEVIImportType2(b *testing.B) {
	drv := dummy.New(dummy.Options{CountOnly: true, Log: quiet})
	e := newBenchEVI(b, drv)
	w := &syncEVI{e: e}
	src := &route.Source{Name: "BGP-10.0.0.9", Peer: true, ID: 1}
	attrs := sharedPeerAttrs()
	rd := route.NewRDIPv4(netip.MustParseAddr("10.0.0.9"), 1)
	const n, batch = 1 << 16, 256
	advs := make([]engine.Event, n)
	wds := make([]engine.Event, n)
	for i := range n {
		r := peerT2(src, rd, attrs, i)
		advs[i] = engine.Event{Kind: engine.Advertise, Route: r}
		wds[i] = engine.Event{Kind: engine.Withdraw, Route: r}
	}
	b.ReportAllocs()
	b.ResetTimer()
	done := 0
	for pass := 0; done < b.N; pass++ {
		evs := advs
		if pass%2 == 1 {
			evs = wds
		}
		for i := 0; i < n && done < b.N; i += batch {
			k := min(batch, n-i, b.N-done)
			w.Deliver(evs[i : i+k])
			done += k
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(drv.Recorder().Counters().Changes)/float64(b.N), "dpchanges/route")
}

func heapAlloc() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// memPerRoute publishes n type-2 routes of one peer (shared attributes)
// into a synchronous engine Table, with or without one subscribed EVI
// (dummy driver in count-only mode), and returns the heap growth per
// route after GC: routes + engine tables (+ EVI state).
func memPerRoute(tb testing.TB, n int, withEVI bool) float64 {
	drv := dummy.New(dummy.Options{CountOnly: true, Log: quiet})
	tab := engine.NewTable(nil)
	tab.SetLogger(quiet)
	var w *syncEVI
	if withEVI {
		w = &syncEVI{e: newBenchEVI(tb, drv)}
		w.e.src = tab.Register(w)
		tab.Subscribe(w, engine.Match{Family: route.FamilyEVPN, RT: rtA})
	}
	p := &peer{name: "BGP-10.0.0.9", rib: map[string]*route.Route{}}
	src := tab.Register(p)
	attrs := sharedPeerAttrs()
	rd := route.NewRDIPv4(netip.MustParseAddr("10.0.0.9"), 1)
	evs := make([]engine.Event, 0, 1000)
	before := heapAlloc()
	for i := 0; i < n; {
		evs = evs[:0]
		for ; len(evs) < cap(evs) && i < n; i++ {
			evs = append(evs, engine.Event{Kind: engine.Advertise, Route: peerT2(src, rd, attrs, i)})
		}
		tab.Publish(src, evs)
	}
	evs = nil
	after := heapAlloc()
	if withEVI && w.e.rt.stats.Type2Routes != n {
		tb.Fatalf("EVI holds %d routes, want %d", w.e.rt.stats.Type2Routes, n)
	}
	runtime.KeepAlive(tab)
	runtime.KeepAlive(w)
	return float64(int64(after)-int64(before)) / float64(n)
}

// BenchmarkMemory1MType2 reports heap bytes per received type-2 route for
// 1M routes: engine alone, engine + one EVI, and the EVI's share. Run with
// -benchtime=1x (each op is a full 1M-route load).
func BenchmarkMemory1MType2(b *testing.B) {
	const n = 1_000_000
	var engineOnly, total float64
	for range b.N {
		engineOnly = memPerRoute(b, n, false)
		total = memPerRoute(b, n, true)
	}
	b.ReportMetric(engineOnly, "engine-B/route")
	b.ReportMetric(total, "total-B/route")
	b.ReportMetric(total-engineOnly, "evi-B/route")
}

// TestMemoryBudget guards the memory budget (design target ≤ 300 bytes
// per imported route for engine + instance, ≤ ~120 for the EVI) on 2^18
// routes. Heap accounting after GC is not timing-dependent.
func TestMemoryBudget(t *testing.T) {
	const n = 1 << 18
	engineOnly := memPerRoute(t, n, false)
	total := memPerRoute(t, n, true)
	t.Logf("bytes/route: engine %.0f, engine+EVI %.0f, EVI %.0f", engineOnly, total, total-engineOnly)
	if total > 300 || total-engineOnly > 120 {
		t.Fatalf("memory budget exceeded: engine+EVI %.0f B/route (max 300), EVI %.0f B/route (max 120)", total, total-engineOnly)
	}
}
