package vpn

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// reflectorUpdates encodes n UPDATE messages, one type-2 route each, as a
// route reflector sends a remote node's routes: distinct MAC and IP per
// route, one RD, identical attributes (next hop, RT, VXLAN encapsulation,
// LOCAL_PREF, ORIGINATOR_ID).
func reflectorUpdates(tb testing.TB, n int) [][]byte {
	nh := netip.MustParseAddr("10.0.0.9")
	attrs := &route.Attrs{NextHop: nh, HasLocalPref: true, LocalPref: 100, RTs: rts(rtA),
		Encaps: vxlan, OriginatorID: nh}
	rd := route.NewRDIPv4(nh, 1)
	msgs := make([][]byte, n)
	for i := range n {
		var mac route.MAC
		mac[0] = 0x02
		binary.BigEndian.PutUint32(mac[2:], uint32(i))
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], 0x0a000000+uint32(i))
		r := &route.Route{Family: route.FamilyEVPN, Label: 100, Key: route.EVPNMACIPKey(rd, 0, mac, netip.AddrFrom4(a4)), Attrs: attrs}
		m, err := codec.EncodeUpdate([]*route.Route{r})
		if err != nil {
			tb.Fatal(err)
		}
		msgs[i] = m
	}
	return msgs
}

// receiver is the receive path of bagpipe-bgp without sockets: the codec
// decodes an UPDATE, the engine table dispatches its routes, the EVI
// tracks them and programs the dummy dataplane — the same code the daemon
// runs, synchronously on one goroutine.
type receiver struct {
	dec *codec.Decoder
	tab *engine.Table
	src *route.Source
	evi *syncEVI
	drv *dummy.Driver
	evs []engine.Event
}

func newReceiver(tb testing.TB) *receiver {
	drv := dummy.New(dummy.Options{CountOnly: true, Log: quiet})
	tab := engine.NewTable(nil)
	tab.SetLogger(quiet)
	w := &syncEVI{e: newBenchEVI(tb, drv)}
	w.e.src = tab.Register(w)
	tab.Subscribe(w, engine.Match{Family: route.FamilyEVPN, RT: rtA})
	p := &peer{name: "BGP-10.0.0.9", rib: map[string]*route.Route{}}
	return &receiver{dec: codec.NewDecoder(), tab: tab, src: tab.Register(p), evi: w, drv: drv}
}

func (r *receiver) receive(tb testing.TB, msg []byte) {
	u, err := r.dec.Decode(msg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	r.evs = r.evs[:0]
	for _, rt := range u.Withdrawn {
		rt.Source = r.src
		r.evs = append(r.evs, engine.Event{Kind: engine.Withdraw, Route: rt})
	}
	for _, rt := range u.Advertised {
		rt.Source = r.src
		r.evs = append(r.evs, engine.Event{Kind: engine.Advertise, Route: rt})
	}
	r.tab.Publish(r.src, r.evs)
}

// BenchmarkReceiveType2 measures received type-2 routes decoded from
// their UPDATE, dispatched by the engine and imported into an EVI (best
// path, dataplane diff, dummy driver) on one core. One op = one route
// (one UPDATE, as GoBGP and upstream send one NLRI per UPDATE).
// routes/s is reported; the target is ≥ 200,000.
func BenchmarkReceiveType2(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	const n = 1 << 17
	msgs := reflectorUpdates(b, n)
	r := newReceiver(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%n == 0 {
			// Start again from an empty table so every op is an import
			// of a new route, not a duplicate.
			b.StopTimer()
			r = newReceiver(b)
			b.StartTimer()
		}
		r.receive(b, msgs[i%n])
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "routes/s")
	if got := r.drv.Recorder().Counters().Changes; got == 0 {
		b.Fatal("no dataplane change: routes were not imported")
	}
}

// TestReceivePathImportsAndMemory runs 2^17 UPDATEs through the receive
// path and checks every route reached the dataplane, and the heap cost per
// imported route (decoded route + engine + EVI) stays within the 300-byte
// budget. Heap accounting after GC does not depend on timing.
func TestReceivePathImportsAndMemory(t *testing.T) {
	const n = 1 << 17
	msgs := reflectorUpdates(t, n)
	r := newReceiver(t)
	before := heapAlloc()
	for _, m := range msgs {
		r.receive(t, m)
	}
	after := heapAlloc()
	perRoute := float64(int64(after)-int64(before)) / n
	st := r.drv.Recorder().Counters()
	// Each route adds one fdb entry and one neighbour entry.
	if st.Changes != 2*n || r.evi.e.rt.stats.Type2Routes != n {
		t.Fatalf("imported %d type-2 routes with %d dataplane changes, want %d and %d", r.evi.e.rt.stats.Type2Routes, st.Changes, n, 2*n)
	}
	t.Logf("heap per imported route via the wire: %.0f bytes", perRoute)
	if perRoute > 300 {
		t.Fatalf("heap per imported route %.0f bytes, budget 300", perRoute)
	}
	runtime.KeepAlive(r)
	runtime.KeepAlive(msgs)
}

// BenchmarkReceiveMemory1M reports heap bytes per imported route for 1M
// routes received from the wire (run with -benchtime=1x).
func BenchmarkReceiveMemory1M(b *testing.B) {
	const n = 1_000_000
	msgs := reflectorUpdates(b, n)
	var perRoute float64
	for range b.N {
		r := newReceiver(b)
		before := heapAlloc()
		for _, m := range msgs {
			r.receive(b, m)
		}
		after := heapAlloc()
		perRoute = float64(int64(after)-int64(before)) / n
		runtime.KeepAlive(r)
	}
	runtime.KeepAlive(msgs)
	b.ReportMetric(perRoute, "heap-B/route")
}
