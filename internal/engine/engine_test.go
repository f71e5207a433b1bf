package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// startEngine runs an engine until the test ends.
func startEngine(t *testing.T) *Engine {
	t.Helper()
	e := New(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { e.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return e
}

func macRoute(src *route.Source, i int, label uint32, rts ...route.RT) *route.Route {
	mac := route.MAC{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
	return &route.Route{
		Family: route.FamilyEVPN,
		Label:  label,
		Key:    route.EVPNMACIPKey(rd1, 0, mac, netip.Addr{}),
		Attrs:  &route.Attrs{RTs: rts},
		Source: src,
	}
}

// TestEngineOrdering publishes from several goroutines and checks that
// each publisher's events reach the subscriber in order, all of them,
// and that Stats reflects them after Sync.
func TestEngineOrdering(t *testing.T) {
	e := startEngine(t)
	evi := &recWorker{name: "EVI-1"}
	e.Subscribe(evi, Match{Family: route.FamilyEVPN, RT: rt1})

	const publishers, batches, perBatch = 4, 200, 5
	var wg sync.WaitGroup
	srcs := make([]*route.Source, publishers)
	for p := range publishers {
		srcs[p] = e.Register(&recWorker{name: fmt.Sprintf("BGP-%d", p), peer: true})
		wg.Go(func() {
			for b := range batches {
				evs := make([]Event, 0, perBatch)
				for i := range perBatch {
					// Label counts up: later events replace earlier ones.
					evs = append(evs, adv(macRoute(srcs[p], i, uint32(b*perBatch+i), rt1)))
				}
				e.Publish(srcs[p], evs)
				clear(evs) // the engine must have copied the slice
			}
		})
	}
	wg.Wait()
	e.Sync()

	evs, _ := evi.take()
	if want := publishers * batches * perBatch; len(evs) != want {
		t.Fatalf("got %d events, want %d", len(evs), want)
	}
	next := map[*route.Source]uint32{}
	for _, ev := range evs {
		src := ev.Route.Source
		if ev.Route.Label != next[src] {
			t.Fatalf("source %s: got label %d, want %d (order lost)", src.Name, ev.Route.Label, next[src])
		}
		if (ev.Replaced != nil) != (ev.Route.Label >= perBatch) {
			t.Fatalf("source %s label %d: Replaced = %v", src.Name, ev.Route.Label, ev.Replaced)
		}
		next[src]++
	}
	st := e.Stats()
	if st.ReceivedRoutes != publishers*perBatch || st.Events != publishers*batches*perBatch ||
		st.Families[route.FamilyEVPN] != publishers*perBatch || st.Workers != publishers+1 || st.Subscriptions != 1 {
		t.Errorf("Stats = %+v", st)
	}
}

type publishingHook struct {
	e   *Engine
	src *route.Source
}

func (h *publishingHook) FirstLocalSubscriber(m Match) {
	h.e.Publish(h.src, []Event{adv(&route.Route{Family: route.FamilyRTC, Key: route.RTCKey(64512, m.RT), Attrs: &route.Attrs{}, Source: h.src})})
}

func (h *publishingHook) LastLocalSubscriber(m Match) {
	h.e.Publish(h.src, []Event{wd(&route.Route{Family: route.FamilyRTC, Key: route.RTCKey(64512, m.RT), Source: h.src})})
}

// TestEngineHookPublishes checks the RT-Constraint flow: the hook runs on
// the loop and publishes through the queue without deadlocking.
func TestEngineHookPublishes(t *testing.T) {
	e := startEngine(t)
	mgr := &recWorker{name: "BGPManager"}
	h := &publishingHook{e: e, src: e.Register(mgr)}
	e.SetLocalSubscriptionHook(h)
	peer := &recWorker{name: "BGP-1", peer: true}
	e.Subscribe(peer, Match{Family: route.FamilyRTC, RT: route.RTAny})
	evi := &recWorker{name: "EVI-1"}
	m := Match{Family: route.FamilyEVPN, RT: rt1}

	steps := []struct {
		do   func()
		want []string
	}{
		{func() { e.Subscribe(evi, m) }, []string{"+RTC<64512>:target:64512:1"}},
		{func() { e.Subscribe(evi, m) }, nil},
		{func() { e.Unsubscribe(evi, m) }, []string{"-RTC<64512>:target:64512:1"}},
	}
	for i, s := range steps {
		s.do()
		e.Sync() // the subscription (and the hook's enqueue)
		e.Sync() // the hook's publish
		evs, _ := peer.take()
		var got []string
		for _, ev := range evs {
			got = append(got, map[EventKind]string{Advertise: "+", Withdraw: "-"}[ev.Kind]+ev.Route.String())
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d: peer got %q, want %q", i, got, s.want)
		}
	}
}

func TestEngineQueries(t *testing.T) {
	e := startEngine(t)
	evi := &recWorker{name: "EVI-1"}
	src := e.Register(evi)
	if again := e.Register(evi); again != src {
		t.Errorf("Register twice gave two sources")
	}
	e.Subscribe(evi, Match{Family: route.FamilyEVPN, RT: rt2})
	e.Subscribe(evi, Match{Family: route.FamilyVPNv4, RT: rt1})
	e.Subscribe(evi, Match{Family: route.FamilyEVPN, RT: rt1})
	e.Publish(src, []Event{adv(macRoute(src, 1, 0, rt1)), adv(macRoute(src, 2, 0, rt1))})

	wantSubs := []Match{{route.FamilyVPNv4, rt1}, {route.FamilyEVPN, rt1}, {route.FamilyEVPN, rt2}}
	if got := e.Subscriptions(evi); !slices.Equal(got, wantSubs) {
		t.Errorf("Subscriptions = %v, want %v", got, wantSubs)
	}
	if got := e.Snapshot(route.FamilyEVPN); len(got) != 2 {
		t.Errorf("Snapshot(evpn) has %d routes, want 2", len(got))
	}
	if got := e.Snapshot(route.FamilyVPNv4); len(got) != 0 {
		t.Errorf("Snapshot(vpnv4) has %d routes, want 0", len(got))
	}
	if st := e.Stats(); st.LocalRoutes != 2 || st.Subscriptions != 3 {
		t.Errorf("Stats = %+v", st)
	}

	e.Cleanup(evi)
	e.Publish(src, []Event{adv(macRoute(src, 3, 0, rt1))}) // late: dropped
	e.Sync()
	if st := e.Stats(); st.LocalRoutes != 0 || st.Subscriptions != 0 || st.Workers != 0 {
		t.Errorf("after Cleanup: Stats = %+v", st)
	}
	if src2 := e.Register(evi); src2 == src || src2.ID == src.ID {
		t.Errorf("re-registration after Cleanup reused the source")
	}
}

func TestEngineStopped(t *testing.T) {
	e := New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { e.Run(ctx); close(stopped) }()
	e.Sync()
	cancel()
	<-stopped
	// Must return at once, not hang.
	e.Sync()
	if got := e.Snapshot(route.FamilyEVPN); got != nil {
		t.Errorf("Snapshot after stop = %v, want nil", got)
	}
	if got := e.Subscriptions(&recWorker{name: "x"}); got != nil {
		t.Errorf("Subscriptions after stop = %v, want nil", got)
	}
}
