package engine

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// recWorker records every delivered event.
type recWorker struct {
	name string
	peer bool

	mu     sync.Mutex
	events []Event
	calls  int
}

func (w *recWorker) Name() string { return w.name }
func (w *recWorker) IsPeer() bool { return w.peer }
func (w *recWorker) Deliver(evs []Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	w.events = append(w.events, evs...)
}

// take returns and forgets the recorded events and the Deliver call count.
func (w *recWorker) take() ([]Event, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	evs, calls := w.events, w.calls
	w.events, w.calls = nil, 0
	return evs, calls
}

func (w *recWorker) callCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// recHook records hook calls as "first <match>" / "last <match>".
type recHook struct {
	mu    sync.Mutex
	calls []string
}

func (h *recHook) FirstLocalSubscriber(m Match) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "first "+m.String())
}

func (h *recHook) LastLocalSubscriber(m Match) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, "last "+m.String())
}

func (h *recHook) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.calls
	h.calls = nil
	return c
}

var (
	rt1 = route.NewRT(64512, 1)
	rt2 = route.NewRT(64512, 2)
	rt3 = route.NewRT(64512, 3)
	rd1 = route.NewRDIPv4(netip.MustParseAddr("192.0.2.1"), 1)
)

// fixture drives a Table with named workers and named routes.
type fixture struct {
	t       *testing.T
	tab     *Table
	hook    *recHook
	workers map[string]*recWorker
	order   []string
	names   map[*route.Route]string
}

func newFixture(t *testing.T) *fixture {
	h := &recHook{}
	return &fixture{
		t: t, tab: NewTable(h), hook: h,
		workers: map[string]*recWorker{},
		names:   map[*route.Route]string{},
	}
}

// w returns the worker of that name; names starting with "BGP-" are peers.
func (f *fixture) w(name string) *recWorker {
	if w := f.workers[name]; w != nil {
		return w
	}
	w := &recWorker{name: name, peer: strings.HasPrefix(name, "BGP-")}
	f.workers[name] = w
	f.order = append(f.order, name)
	f.tab.Register(w)
	return w
}

// route returns the route made with that name.
func (f *fixture) route(name string) *route.Route {
	for r, n := range f.names {
		if n == name {
			return r
		}
	}
	f.t.Fatalf("no route named %s", name)
	return nil
}

func (f *fixture) src(name string) *route.Source { return f.tab.Register(f.w(name)) }

// mk builds a route named name from worker srcName: family fam, key from
// n (MAC ..:n for E-VPN type 2, 10.0.0.n/32 for VPNv4, RT n for RTC),
// label, RTs.
func (f *fixture) mk(name, srcName string, fam route.Family, n byte, label uint32, rts ...route.RT) *route.Route {
	r := &route.Route{
		Family: fam,
		Label:  label,
		Key:    key(fam, n),
		Attrs:  &route.Attrs{NextHop: netip.MustParseAddr("192.0.2.9"), RTs: rts},
		Source: f.src(srcName),
	}
	f.names[r] = name
	return r
}

func key(fam route.Family, n byte) string {
	switch fam {
	case route.FamilyVPNv4:
		return route.VPNv4Key(rd1, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, n}), 32))
	case route.FamilyRTC:
		return route.RTCKey(64512, route.NewRT(64512, uint32(n)))
	}
	return route.EVPNMACIPKey(rd1, 0, route.MAC{0, 0, 0, 0, 0, n}, netip.Addr{})
}

// wdKey is a withdraw as decoded from the wire: key only, no attributes.
func (f *fixture) wdKey(srcName string, fam route.Family, n byte) Event {
	return Event{Kind: Withdraw, Route: &route.Route{Family: fam, Key: key(fam, n), Source: f.src(srcName)}}
}

func adv(r *route.Route) Event { return Event{Kind: Advertise, Route: r} }
func wd(r *route.Route) Event  { return Event{Kind: Withdraw, Route: r} }

func (f *fixture) pub(srcName string, evs ...Event) { f.tab.Publish(f.src(srcName), evs) }
func (f *fixture) sub(w string, fam route.Family, rt route.RT) {
	f.tab.Subscribe(f.w(w), Match{Family: fam, RT: rt})
}
func (f *fixture) unsub(w string, fam route.Family, rt route.RT) {
	f.tab.Unsubscribe(f.w(w), Match{Family: fam, RT: rt})
}

// render shows an event as "+name", "+name~old" (Replaced) or "-name".
func (f *fixture) render(ev Event) string {
	name := func(r *route.Route) string {
		if n, ok := f.names[r]; ok {
			return n
		}
		return "?" + r.String()
	}
	s := "-"
	if ev.Kind == Advertise {
		s = "+"
	}
	s += name(ev.Route)
	if ev.Replaced != nil {
		s += "~" + name(ev.Replaced)
	}
	return s
}

// check compares what each worker received since the last check (sorted
// if unordered) and the hook calls with want/hooks; workers absent from
// want must have received nothing.
func (f *fixture) check(step string, want map[string][]string, hooks []string, unordered bool) {
	f.t.Helper()
	for name := range want {
		f.w(name)
	}
	for _, name := range f.order {
		evs, _ := f.workers[name].take()
		var got []string
		for _, ev := range evs {
			got = append(got, f.render(ev))
		}
		w := slices.Clone(want[name])
		if unordered {
			slices.Sort(got)
			slices.Sort(w)
		}
		if !slices.Equal(got, w) {
			f.t.Errorf("%s: worker %s got %q, want %q", step, name, got, w)
		}
	}
	if got := f.hook.take(); !slices.Equal(got, hooks) {
		f.t.Errorf("%s: hook calls %q, want %q", step, got, hooks)
	}
}
