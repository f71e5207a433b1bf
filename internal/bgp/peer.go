package bgp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/session"
)

// PeerWorker is the engine worker of one BGP peer ("BGP-<ip>"). It is the
// session's Handler: received UPDATEs are decoded and published into the
// engine; engine events for the peer are encoded and sent.
//
// Goroutines: Handler callbacks run on the session goroutine and own the
// decoder and the RTC subscription counts; Deliver (engine goroutine) only
// appends to the outbox; the sender goroutine encodes the outbox and hands
// messages to the session.
type PeerWorker struct {
	m    *Manager
	addr netip.Addr
	name string
	log  *slog.Logger
	sess *session.Peer
	// out receives the encoded messages: the session, or a recorder in
	// tests.
	out interface{ Send(msgs ...[]byte) }

	// Owned by the session goroutine.
	dec       *codec.Decoder
	src       *route.Source
	families  []route.Family // active (negotiated) families
	rtcActive bool
	rtcSubs   map[route.RT]int // RT → number of RTC routes from the peer asking for it
	wildcards int              // RTC default routes received

	// gen is incremented at each Established and Down; the outbox carries
	// the generation its events were queued for, so events from a previous
	// session are never sent on a new one.
	gen   atomic.Uint64
	up    atomic.Bool
	stats peerStats
	// sendFams is the copy of families the sender goroutine reads.
	sendFams atomic.Pointer[[]route.Family]
	rtcOn    atomic.Bool

	outMu   sync.Mutex
	outbox  []outItem
	outWake chan struct{}
}

type outItem struct {
	gen uint64
	ev  engine.Event
	// eor, when set, is an End-of-RIB marker for that family (RFC 4724
	// §2): sent after the routes queued before it.
	eor route.Family
}

type peerStats struct {
	routesIn, routesOut, updateErrors, looped atomic.Uint64
}

func newPeerWorker(m *Manager, addr netip.Addr) *PeerWorker {
	p := &PeerWorker{
		m:       m,
		addr:    addr,
		name:    "BGP-" + addr.String(),
		log:     m.log.With("peer", addr.String()),
		outWake: make(chan struct{}, 1),
	}
	p.sess = session.NewPeer(session.PeerConfig{
		LocalAddr: m.cfg.LocalAddress,
		PeerAddr:  addr,
		Port:      m.cfg.Port,
		FSM: session.Config{
			LocalAS:      m.cfg.AS,
			PeerAS:       m.cfg.AS,
			RouterID:     m.cfg.LocalAddress,
			HoldTime:     m.cfg.HoldTime,
			Families:     m.families(),
			EnableRTC:    m.cfg.EnableRTC,
			ConnectRetry: m.cfg.ConnectRetry,
			ErrorDelay:   m.cfg.ErrorDelay,
		},
	}, p, p.log)
	p.out = p.sess
	return p
}

// Name implements engine.Worker.
func (p *PeerWorker) Name() string { return p.name }

// IsPeer implements engine.Worker.
func (p *PeerWorker) IsPeer() bool { return true }

// Deliver implements engine.Worker: queue events for the sender goroutine.
func (p *PeerWorker) Deliver(events []engine.Event) {
	g := p.gen.Load()
	p.outMu.Lock()
	for _, ev := range events {
		p.outbox = append(p.outbox, outItem{gen: g, ev: ev})
	}
	p.outMu.Unlock()
	select {
	case p.outWake <- struct{}{}:
	default:
	}
}

func (p *PeerWorker) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.sendLoop(ctx)
	}()
	p.sess.Run(ctx)
	wg.Wait()
}

func (p *PeerWorker) accept(c net.Conn) { p.sess.Accept(c) }

func (p *PeerWorker) established() bool { return p.up.Load() }

// sendLoop encodes queued engine events into UPDATEs. Consecutive
// advertisements of one family sharing the same attributes go in one UPDATE
// (a single route gives exactly upstream's one-route UPDATE).
func (p *PeerWorker) sendLoop(ctx context.Context) {
	var batch []outItem
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.outWake:
		}
		p.outMu.Lock()
		batch, p.outbox = p.outbox, batch[:0]
		p.outMu.Unlock()
		cur := p.gen.Load()
		var fams []route.Family
		if f := p.sendFams.Load(); f != nil {
			fams = *f
		}
		msgs := make([][]byte, 0, 8)
		var adv, wd []*route.Route
		flush := func() {
			if len(adv) > 0 {
				ms, err := codec.EncodeUpdates(adv)
				if err != nil {
					p.log.Error("cannot encode routes for peer", "err", err, "routes", len(adv))
				}
				msgs = append(msgs, ms...)
				adv = adv[:0]
			}
			if len(wd) > 0 {
				ms, err := codec.EncodeWithdraws(wd)
				if err != nil {
					p.log.Error("cannot encode withdrawals for peer", "err", err, "routes", len(wd))
				}
				msgs = append(msgs, ms...)
				wd = wd[:0]
			}
		}
		for _, it := range batch {
			if it.gen != cur || !p.up.Load() {
				continue
			}
			if it.eor != 0 {
				flush()
				msgs = append(msgs, codec.EncodeEndOfRIB(it.eor))
				continue
			}
			r := it.ev.Route
			if !slices.Contains(fams, r.Family) {
				continue
			}
			switch it.ev.Kind {
			case engine.Advertise:
				if len(wd) > 0 || (len(adv) > 0 && (adv[0].Family != r.Family || adv[0].Attrs != r.Attrs)) {
					flush()
				}
				adv = append(adv, r)
			case engine.Withdraw:
				if len(adv) > 0 || (len(wd) > 0 && wd[0].Family != r.Family) {
					flush()
				}
				wd = append(wd, r)
			}
		}
		flush()
		clear(batch)
		if len(msgs) > 0 && p.gen.Load() == cur {
			p.stats.routesOut.Add(uint64(len(msgs)))
			p.out.Send(msgs...)
		}
	}
}

// Established implements session.Handler.
func (p *PeerWorker) Established(n session.Negotiated) {
	p.dec = codec.NewDecoder()
	p.families = slices.Clone(n.Families)
	p.rtcActive = p.m.cfg.EnableRTC && slices.Contains(n.Families, route.FamilyRTC)
	p.rtcSubs = make(map[route.RT]int)
	p.wildcards = 0
	for _, f := range n.MissingFamilies {
		p.log.Warn("peer did not announce a family we support; it will not be exchanged", "family", f.String())
	}
	if len(n.Families) == 0 {
		p.log.Error("no address family in common with the peer: no route will be exchanged")
	}
	fams := slices.Clone(n.Families)
	p.sendFams.Store(&fams)
	p.rtcOn.Store(p.rtcActive)
	p.gen.Add(1)
	p.src = p.m.eng.Register(p)
	p.up.Store(true)
	p.log.Info("session established", "families", familyNames(n.Families), "rtc", p.rtcActive)
	if p.rtcActive {
		// The peer tells us which RTs it wants with its RTC routes; until
		// then it only gets our RTC routes (RFC 4684 §4).
		p.m.eng.Subscribe(p, engine.Match{Family: route.FamilyRTC, RT: route.RTAny})
	} else {
		for _, f := range n.Families {
			p.m.eng.Subscribe(p, engine.Match{Family: f, RT: route.RTAny})
		}
	}
	// End-of-RIB (RFC 4724 §2) for every family once the initial table
	// has been queued: the engine runs this after replaying the
	// subscriptions above. With RTC, route reflectors such as GoBGP wait
	// for our RTC End-of-RIB before sending VPN routes (RFC 4684 §6):
	// without it they fall back to a timer, and a new node took seconds
	// to learn its first routes.
	gen := p.gen.Load()
	eors := slices.Clone(n.Families)
	p.m.eng.Call(func() {
		p.outMu.Lock()
		for _, f := range eors {
			p.outbox = append(p.outbox, outItem{gen: gen, eor: f})
		}
		p.outMu.Unlock()
		select {
		case p.outWake <- struct{}{}:
		default:
		}
	})
}

// Update implements session.Handler: decode and publish.
func (p *PeerWorker) Update(msg []byte) error {
	u, err := p.dec.Decode(msg, p.active)
	if err != nil {
		var reset *codec.SessionReset
		if errors.As(err, &reset) {
			p.stats.updateErrors.Add(1)
			return &session.Notification{Code: reset.Code, Subcode: reset.Subcode, Data: reset.Data}
		}
		p.stats.updateErrors.Add(1)
		p.log.Warn("UPDATE error handled per RFC 7606", "err", err)
	}
	events := make([]engine.Event, 0, len(u.Advertised)+len(u.Withdrawn))
	for _, r := range u.Withdrawn {
		r.Source = p.src
		if r.Family == route.FamilyRTC {
			p.rtcWithdrawn(r)
		}
		events = append(events, engine.Event{Kind: engine.Withdraw, Route: r})
	}
	for _, r := range u.Advertised {
		if r.Attrs != nil && r.Attrs.OriginatorID == p.m.cfg.LocalAddress {
			// RFC 4456 §8: a route reflector sent us back our own
			// route (FRR does); ignore it.
			p.stats.looped.Add(1)
			continue
		}
		r.Source = p.src
		if r.Family == route.FamilyRTC {
			p.rtcReceived(r)
		}
		events = append(events, engine.Event{Kind: engine.Advertise, Route: r})
	}
	if len(events) > 0 {
		p.stats.routesIn.Add(uint64(len(events)))
		p.m.eng.Publish(p.src, events)
	}
	return nil
}

func (p *PeerWorker) active(f route.Family) bool { return slices.Contains(p.families, f) }

// rtcReceived subscribes the peer to the RT its RTC route asks for, in every
// active VPN family (RFC 4684 §4); the default RTC route subscribes to all.
// The engine then replays the matching local routes to the peer.
func (p *PeerWorker) rtcReceived(r *route.Route) { p.rtcCount(r, true) }

// rtcWithdrawn undoes rtcReceived. A withdrawal of an RTC route that was
// never received is ignored (the engine also ignores it).
func (p *PeerWorker) rtcWithdrawn(r *route.Route) { p.rtcCount(r, false) }

// rtcCount counts the RTC routes of the peer asking for r's RT (or, for
// the default RTC route, for every RT: RTAny) up or down, and subscribes
// the peer when the first arrives or unsubscribes it when the last goes.
func (p *PeerWorker) rtcCount(r *route.Route, add bool) {
	if !p.rtcActive {
		return
	}
	_, rt, wild, ok := r.RTCTarget()
	if !ok {
		return
	}
	n := p.wildcards
	if wild {
		rt = route.RTAny
	} else {
		n = p.rtcSubs[rt]
	}
	switch {
	case add:
		n++
	case n == 0:
		return // never received
	default:
		n--
	}
	switch {
	case wild:
		p.wildcards = n
	case n == 0:
		delete(p.rtcSubs, rt)
	default:
		p.rtcSubs[rt] = n
	}
	if add && n == 1 || !add && n == 0 {
		p.subscribeVPN(rt, add)
	}
}

func (p *PeerWorker) subscribeVPN(rt route.RT, on bool) {
	for _, f := range p.families {
		if f == route.FamilyRTC {
			continue
		}
		m := engine.Match{Family: f, RT: rt}
		if on {
			p.m.eng.Subscribe(p, m)
		} else {
			p.m.eng.Unsubscribe(p, m)
		}
	}
}

// RouteRefresh implements session.Handler: re-send everything we advertise
// for the family (RFC 2918 §4), replayed by the engine, with no withdrawal.
func (p *PeerWorker) RouteRefresh(f route.Family) {
	if !p.active(f) || f == route.FamilyRTC && !p.rtcActive {
		return
	}
	p.log.Info("route refresh requested", "family", f.String())
	var matches []engine.Match
	if f == route.FamilyRTC || !p.rtcActive {
		matches = []engine.Match{{Family: f, RT: route.RTAny}}
	} else {
		if p.wildcards > 0 {
			matches = append(matches, engine.Match{Family: f, RT: route.RTAny})
		}
		for rt := range p.rtcSubs {
			matches = append(matches, engine.Match{Family: f, RT: rt})
		}
	}
	for _, m := range matches {
		p.m.eng.Resend(p, m)
	}
}

// Down implements session.Handler: every route learned from the peer is
// withdrawn from the instances (engine cleanup), subscriptions dropped.
func (p *PeerWorker) Down(reason error) {
	if !p.up.Load() {
		return
	}
	p.up.Store(false)
	p.gen.Add(1)
	p.log.Warn("session down: withdrawing every route learned from the peer", "reason", reason)
	p.m.eng.Cleanup(p)
	p.src = nil
	p.dec = nil
}

// PeerInfo is the looking-glass view of a peer.
type PeerInfo struct {
	Address   netip.Addr
	Session   session.Info
	RTCActive bool
	RoutesIn  uint64
	Updates   uint64
	Errors    uint64
	// Looped counts routes ignored because they carried our own router id
	// as ORIGINATOR_ID (RFC 4456 §8).
	Looped uint64
}

// Info returns a lock-free snapshot.
func (p *PeerWorker) Info() PeerInfo {
	return PeerInfo{
		Address:   p.addr,
		Session:   p.sess.Info(),
		RTCActive: p.rtcOn.Load() && p.up.Load(),
		RoutesIn:  p.stats.routesIn.Load(),
		Updates:   p.stats.routesOut.Load(),
		Errors:    p.stats.updateErrors.Load(),
		Looped:    p.stats.looped.Load(),
	}
}

func familyNames(fs []route.Family) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.String()
	}
	return out
}
