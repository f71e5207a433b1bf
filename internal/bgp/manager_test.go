package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/session"
)

var (
	localAddr = netip.MustParseAddr("192.0.2.10")
	peerAddr  = netip.MustParseAddr("192.0.2.1")
	rtX       = route.NewRT(64512, 100)
	rtY       = route.NewRT(64512, 200)
)

// recorder is a local engine worker (a stand-in VPN instance) that keeps
// the routes delivered to it.
type recorder struct {
	name string
	mu   sync.Mutex
	have map[string]*route.Route
}

func newRecorder(name string) *recorder {
	return &recorder{name: name, have: map[string]*route.Route{}}
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) IsPeer() bool { return false }
func (r *recorder) Deliver(evs []engine.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		k := ev.Route.Family.String() + ev.Route.Key
		if ev.Kind == engine.Advertise {
			r.have[k] = ev.Route
		} else {
			delete(r.have, k)
		}
	}
}
func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.have) }

// wire records what a peer worker sends, decoded.
type wire struct {
	mu   sync.Mutex
	dec  *codec.Decoder
	have map[string]*route.Route
	msgs int
	wds  int // withdrawn routes seen
	log  []string
}

func (w *wire) Send(msgs ...[]byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range msgs {
		w.msgs++
		u, err := w.dec.Decode(m, nil)
		if err != nil {
			panic(err)
		}
		for _, r := range u.Withdrawn {
			w.wds++
			delete(w.have, r.Family.String()+r.Key)
		}
		for _, r := range u.Advertised {
			w.have[r.Family.String()+r.Key] = r
			w.log = append(w.log, "+"+r.String())
		}
		for _, f := range u.EndOfRIB {
			w.log = append(w.log, "EoR "+f.String())
		}
	}
}

// keys returns a description of every route on the wire, sorted.
func (w *wire) keys() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, r := range w.have {
		out = append(out, r.String())
	}
	sort.Strings(out)
	return out
}

type fixture struct {
	eng  *engine.Engine
	m    *Manager
	p    *PeerWorker
	wire *wire
	stop func()
}

func newFixture(t *testing.T, rtc bool) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	eng := engine.New(log)
	m := New(Config{LocalAddress: localAddr, AS: 64512, Peers: []netip.Addr{peerAddr}, EnableRTC: rtc}, eng, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { eng.Run(ctx); close(done) }()
	p := m.peers[peerAddr]
	w := &wire{dec: codec.NewDecoder(), have: map[string]*route.Route{}}
	p.out = w
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { p.sendLoop(sctx); close(sdone) }()
	f := &fixture{eng: eng, m: m, p: p, wire: w, stop: func() { scancel(); <-sdone; cancel(); <-done }}
	t.Cleanup(f.stop)
	return f
}

// sync waits until the engine and the sender have handled everything.
func (f *fixture) sync(t *testing.T) {
	t.Helper()
	f.eng.Sync()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		f.p.outMu.Lock()
		n := len(f.p.outbox)
		f.p.outMu.Unlock()
		if n == 0 {
			time.Sleep(20 * time.Millisecond) // the batch being encoded
			f.p.outMu.Lock()
			n = len(f.p.outbox)
			f.p.outMu.Unlock()
			if n == 0 {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("sender did not drain")
}

func (f *fixture) establish(fams ...route.Family) {
	f.p.Established(session.Negotiated{Families: fams, RTC: slices.Contains(fams, route.FamilyRTC)})
}

func type2(src *route.Source, mac byte, rt route.RT, nh netip.Addr) *route.Route {
	return &route.Route{
		Family: route.FamilyEVPN,
		Key:    route.EVPNMACIPKey(route.NewRDIPv4(nh, 1), 0, route.MAC{2, 0, 0, 0, 0, mac}, netip.Addr{}),
		Label:  100,
		Attrs:  &route.Attrs{NextHop: nh, HasLocalPref: true, LocalPref: 100, RTs: []route.RT{rt}, Encaps: []route.Encap{route.EncapVXLAN}},
		Source: src,
	}
}

func publish(f *fixture, w engine.Worker, routes ...*route.Route) *route.Source {
	src := f.eng.Register(w)
	var evs []engine.Event
	for _, r := range routes {
		r.Source = src
		evs = append(evs, engine.Event{Kind: engine.Advertise, Route: r})
	}
	f.eng.Publish(src, evs)
	return src
}

func TestRTCRouteCountedAcrossFamilies(t *testing.T) {
	f := newFixture(t, true)
	evi, vrf := newRecorder("EVI-1"), newRecorder("VRF-2")
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.eng.Subscribe(vrf, engine.Match{Family: route.FamilyVPNv4, RT: rtX})
	f.eng.Subscribe(vrf, engine.Match{Family: route.FamilyFlowVPN, RT: rtY}) // FlowSpec: no RTC
	f.eng.Sync()
	rtcRoutes := func() []*route.Route { return f.eng.Snapshot(route.FamilyRTC) }
	if got := rtcRoutes(); len(got) != 1 || got[0].Key != route.RTCKey(64512, rtX) || got[0].NextHop() != localAddr {
		t.Fatalf("RTC routes = %v, want one for %s with next hop %s", got, rtX, localAddr)
	}
	f.eng.Unsubscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.eng.Sync()
	if got := rtcRoutes(); len(got) != 1 {
		t.Fatalf("RTC route withdrawn while the VRF still imports %s: %v", rtX, got)
	}
	f.eng.Unsubscribe(vrf, engine.Match{Family: route.FamilyVPNv4, RT: rtX})
	f.eng.Sync()
	if got := rtcRoutes(); len(got) != 0 {
		t.Fatalf("RTC route kept after the last subscriber left: %v", got)
	}
}

func TestNoRTCRoutesWhenDisabled(t *testing.T) {
	f := newFixture(t, false)
	f.eng.Subscribe(newRecorder("EVI-1"), engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.eng.Sync()
	if got := f.eng.Snapshot(route.FamilyRTC); len(got) != 0 {
		t.Fatalf("RTC disabled but routes originated: %v", got)
	}
}

// rtcUpdate builds an UPDATE carrying an RTC route for rt (or the default
// RTC route), as a route reflector would send it.
func rtcUpdate(t *testing.T, rt route.RT, wildcard, withdraw bool) []byte {
	t.Helper()
	key := route.RTCKey(64512, rt)
	if wildcard {
		key = route.RTCWildcardKey
	}
	r := &route.Route{Family: route.FamilyRTC, Key: key, Attrs: &route.Attrs{NextHop: peerAddr, HasLocalPref: true, LocalPref: 100}}
	var msg []byte
	var err error
	if withdraw {
		msg, err = codec.EncodeWithdraw([]*route.Route{r})
	} else {
		msg, err = codec.EncodeUpdate([]*route.Route{r})
	}
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestPeerGetsOnlyRequestedRTs(t *testing.T) {
	f := newFixture(t, true)
	evi := newRecorder("EVI-1")
	publish(f, evi, type2(nil, 1, rtX, localAddr), type2(nil, 2, rtY, localAddr))
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.establish(route.FamilyEVPN, route.FamilyRTC)
	f.sync(t)
	// Before the peer asks for anything it only gets our RTC route.
	if got := f.wire.keys(); len(got) != 1 || got[0] != "RTC<64512>:target:64512:100" {
		t.Fatalf("before any RTC route from the peer, sent %v; want only our RTC route", got)
	}
	if err := f.p.Update(rtcUpdate(t, rtX, false, false)); err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	got := f.wire.keys()
	if len(got) != 2 || !slices.Contains(got, type2(nil, 1, rtX, localAddr).String()) {
		t.Fatalf("after RTC for %s, sent %v; want our RTC route and the %s route only", rtX, got, rtX)
	}
	// The default RTC route asks for everything.
	if err := f.p.Update(rtcUpdate(t, 0, true, false)); err != nil {
		t.Fatal(err)
	}
	f.sync(t)
	if got := f.wire.keys(); len(got) != 3 {
		t.Fatalf("after the default RTC route, sent %v; want every route", got)
	}
	// Withdrawing both: the VPN routes are withdrawn from the peer.
	f.p.Update(rtcUpdate(t, 0, true, true))
	f.p.Update(rtcUpdate(t, rtX, false, true))
	f.sync(t)
	if got := f.wire.keys(); len(got) != 1 {
		t.Fatalf("after RTC withdrawals, peer still has %v; want only our RTC route", got)
	}
}

func TestPeerWithoutRTCGetsNegotiatedFamilies(t *testing.T) {
	f := newFixture(t, true)
	evi := newRecorder("EVI-1")
	vpn4 := &route.Route{Family: route.FamilyVPNv4, Key: route.VPNv4Key(route.NewRDIPv4(localAddr, 3), netip.MustParsePrefix("10.0.0.1/32")),
		Label: 20, Attrs: &route.Attrs{NextHop: localAddr, HasLocalPref: true, LocalPref: 100, RTs: []route.RT{rtX}}}
	publish(f, evi, type2(nil, 1, rtX, localAddr), type2(nil, 2, rtY, localAddr), vpn4)
	f.establish(route.FamilyEVPN) // the peer did not announce RTC nor VPNv4
	f.sync(t)
	got := f.wire.keys()
	if len(got) != 2 {
		t.Fatalf("peer without RTC got %v; want both E-VPN routes and no VPNv4 route", got)
	}
	for _, k := range got {
		if k == vpn4.String() {
			t.Fatalf("a VPNv4 route was sent on a session without VPNv4: %v", got)
		}
	}
}

func TestPeerRoutesWithdrawnOnDown(t *testing.T) {
	f := newFixture(t, false)
	evi := newRecorder("EVI-1")
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.establish(route.FamilyEVPN)
	msg, err := codec.EncodeUpdate([]*route.Route{type2(nil, 7, rtX, peerAddr)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.Update(msg); err != nil {
		t.Fatal(err)
	}
	f.eng.Sync()
	if evi.count() != 1 {
		t.Fatalf("EVI has %d routes from the peer, want 1", evi.count())
	}
	f.p.Down(nil)
	f.eng.Sync()
	if evi.count() != 0 {
		t.Fatalf("EVI kept %d routes of a peer whose session went down", evi.count())
	}
	// Re-established, the peer's new routes come in again.
	f.establish(route.FamilyEVPN)
	f.p.Update(msg)
	f.eng.Sync()
	if evi.count() != 1 {
		t.Fatalf("after re-establishment EVI has %d routes, want 1", evi.count())
	}
}

func TestReflectedOwnRoutesIgnored(t *testing.T) {
	f := newFixture(t, false)
	evi := newRecorder("EVI-1")
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.establish(route.FamilyEVPN)
	r := type2(nil, 1, rtX, localAddr)
	r.Attrs.OriginatorID = localAddr // reflected back to us
	msg, err := codec.EncodeUpdate([]*route.Route{r})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.p.Update(msg); err != nil {
		t.Fatal(err)
	}
	f.eng.Sync()
	if evi.count() != 0 || f.p.Info().Looped != 1 {
		t.Fatalf("route with our ORIGINATOR_ID imported (count %d, looped %d)", evi.count(), f.p.Info().Looped)
	}
}

func TestMalformedUpdateResetsSession(t *testing.T) {
	f := newFixture(t, false)
	f.establish(route.FamilyEVPN)
	msg, _ := codec.EncodeUpdate([]*route.Route{type2(nil, 1, rtX, peerAddr)})
	msg = msg[:len(msg)-3] // truncate the NLRI inside MP_REACH_NLRI
	binary.BigEndian.PutUint16(msg[16:18], uint16(len(msg)))
	err := f.p.Update(msg)
	var n *session.Notification
	if err == nil || !asNotification(err, &n) || n.Code != 3 {
		t.Fatalf("truncated UPDATE: got %v, want a NOTIFICATION 3/x", err)
	}
}

func asNotification(err error, n **session.Notification) bool {
	return errors.As(err, n)
}

// TestRouteRefreshResends: a ROUTE-REFRESH (RFC 2918 §4) makes the peer
// worker send every route it advertises for that family again.
func TestRouteRefreshResends(t *testing.T) {
	f := newFixture(t, false)
	evi := newRecorder("EVI-1")
	publish(f, evi, type2(nil, 1, rtX, localAddr), type2(nil, 2, rtY, localAddr))
	f.establish(route.FamilyEVPN)
	f.sync(t)
	f.wire.mu.Lock()
	before, wdsBefore := f.wire.msgs, f.wire.wds
	f.wire.have = map[string]*route.Route{} // forget what was sent
	f.wire.mu.Unlock()
	if before == 0 {
		t.Fatal("nothing sent at establishment")
	}
	f.p.RouteRefresh(route.FamilyEVPN)
	f.sync(t)
	if got := f.wire.keys(); len(got) != 2 {
		t.Fatalf("after ROUTE-REFRESH the peer got %v; want both routes again", got)
	}
	if f.wire.wds != wdsBefore {
		t.Fatalf("ROUTE-REFRESH withdrew %d routes before re-sending them (a flap at the peer)", f.wire.wds-wdsBefore)
	}
	// A refresh for a family not negotiated is ignored.
	f.wire.mu.Lock()
	n := f.wire.msgs
	f.wire.mu.Unlock()
	f.p.RouteRefresh(route.FamilyVPNv4)
	f.sync(t)
	f.wire.mu.Lock()
	defer f.wire.mu.Unlock()
	if f.wire.msgs != n {
		t.Fatalf("ROUTE-REFRESH for a family not negotiated sent %d messages", f.wire.msgs-n)
	}
}

// TestEndOfRIBAfterInitialTable: after establishment the peer gets the
// initial table, then an End-of-RIB per negotiated family (RFC 4724 §2).
func TestEndOfRIBAfterInitialTable(t *testing.T) {
	f := newFixture(t, true)
	evi := newRecorder("EVI-1")
	publish(f, evi, type2(nil, 1, rtX, localAddr))
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.eng.Sync() // the RTC route is originated
	f.establish(route.FamilyEVPN, route.FamilyRTC)
	f.sync(t)
	f.wire.mu.Lock()
	defer f.wire.mu.Unlock()
	want := []string{"+RTC<64512>:target:64512:100", "EoR l2vpn/evpn", "EoR ipv4/rtc"}
	if !slices.Equal(f.wire.log, want) {
		t.Fatalf("sent %v, want %v", f.wire.log, want)
	}
}
