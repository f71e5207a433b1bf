package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Handler receives what a Peer learns. Its methods are called on the peer
// goroutine, one at a time, in order; they must not block for long (hand
// work to another loop) and must not call Peer.Run.
type Handler interface {
	// Established is called when the session reaches Established, after
	// Send starts accepting messages (so routes can be sent from here).
	Established(n Negotiated)
	// Update gets one whole UPDATE message (header included); the slice is
	// the handler's to keep. Returning an error that is (or wraps) a
	// *Notification resets the session with that NOTIFICATION (RFC 7606 §2
	// "session reset"); other errors are logged and the session goes on
	// (treat-as-withdraw and attribute discard are the handler's business).
	Update(msg []byte) error
	// RouteRefresh is called when the peer asks for a family again (RFC 2918).
	RouteRefresh(f route.Family)
	// Down is called when an Established session ends; routes learned from
	// the peer should be withdrawn (no graceful restart yet).
	Down(reason error)
}

// DefaultPort is the BGP TCP port (RFC 4271 §8.2.1).
const DefaultPort = 179

// DefaultDialTimeout bounds one outgoing connect.
const DefaultDialTimeout = 10 * time.Second

// PeerConfig configures a Peer.
type PeerConfig struct {
	// LocalAddr is the address outgoing connections are bound to (port 0);
	// it is also the default FSM.RouterID. Unset means any.
	LocalAddr netip.Addr
	// PeerAddr is the peer's address.
	PeerAddr netip.Addr
	// Port is the peer's TCP port (DefaultPort when 0).
	Port int
	// FSM configures the protocol.
	FSM Config
	// DialTimeout bounds one connect (DefaultDialTimeout when 0).
	DialTimeout time.Duration
}

// Info is a snapshot of a Peer for the looking glass. Slices are shared and
// must not be modified.
type Info struct {
	State, PreviousState State
	LastTransition       time.Time
	// HoldTime and KeepaliveInterval are the negotiated values (Established).
	HoldTime, KeepaliveInterval time.Duration
	// Families are the negotiated families; MissingFamilies those we
	// announced and the peer did not.
	Families, MissingFamilies []route.Family
	LocalAddr, PeerAddr       netip.Addr
	LocalAS, PeerAS           uint32
	PeerID                    netip.Addr
	// RTC is set when RT Constraint is active on the session.
	RTC, RouteRefresh, FourOctetAS bool
	// Incoming is set when the current connection was initiated by the peer.
	Incoming bool
	// MsgsIn and MsgsOut count BGP messages received and written, all
	// connections together.
	MsgsIn, MsgsOut uint64
	// Established counts the transitions to Established.
	Established uint64
	// Collisions counts connections closed by collision resolution
	// (RFC 4271 §6.8), both directions.
	Collisions uint64
	// LastError says why the last connection ended.
	LastError string
}

// Peer drives the FSM of one BGP peer: it connects (unless passive),
// accepts connections handed by a listener, applies the collision rules of
// RFC 4271 §6.8, runs the timers and the reader/writer goroutines, and
// calls the Handler.
type Peer struct {
	cfg    PeerConfig
	cfgErr error
	h      Handler
	log    *slog.Logger

	inboxMu sync.Mutex
	inbox   []any
	wake    chan struct{} // cap 1
	rx      chan rxEvent
	stopped chan struct{} // closed when Run is done with its connections

	est     atomic.Pointer[conn] // the Established connection, for Send
	info    atomic.Pointer[Info]
	msgsIn  atomic.Uint64
	msgsOut atomic.Uint64

	// Owned by the Run goroutine.
	ctx        context.Context
	wg         sync.WaitGroup
	main, alt  *sess // alt: a second connection during a collision
	dialGen    uint64
	dialCancel context.CancelFunc
	up         bool // main is Established and Handler.Established was called
	snapshot   Info
}

// sess is one FSM with its connection and timers.
type sess struct {
	fsm    *FSM
	c      *conn
	timers [numTimers]*time.Timer
	gens   [numTimers]uint64
	// fires is when the armed timer fires; due is when the event is due.
	// Restarting a timer to a later time (the hold timer, on every UPDATE)
	// only moves due: the firing timer re-arms itself for the rest, so the
	// hot path costs a clock read, not a timer allocation.
	fires, due [numTimers]time.Time
}

type rxEvent struct {
	c  *conn
	ev Event
}

type acceptItem struct{ nc net.Conn }
type dialItem struct {
	gen uint64
	nc  net.Conn
	err error
}
type timerItem struct {
	s   *sess
	t   Timer
	gen uint64
}
type refreshItem struct{ f route.Family }

// NewPeer prepares a Peer; Run starts it. A configuration error is logged by
// Run, which then returns at once; check it first with PeerConfig.Validate.
func NewPeer(cfg PeerConfig, h Handler, log *slog.Logger) *Peer {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	p := &Peer{
		cfg:     cfg,
		h:       h,
		log:     log.With("component", "session", "peer", cfg.PeerAddr.String()),
		wake:    make(chan struct{}, 1),
		rx:      make(chan rxEvent, 64),
		stopped: make(chan struct{}),
	}
	p.cfgErr = cfg.Validate()
	p.snapshot = Info{
		LocalAddr: cfg.LocalAddr,
		PeerAddr:  cfg.PeerAddr,
		LocalAS:   cfg.FSM.LocalAS,
		PeerAS:    cfg.FSM.PeerAS,
	}
	if p.snapshot.PeerAS == 0 {
		p.snapshot.PeerAS = cfg.FSM.LocalAS
	}
	p.publish()
	return p
}

func (c PeerConfig) withDefaults() PeerConfig {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if !c.FSM.RouterID.IsValid() {
		c.FSM.RouterID = c.LocalAddr
	}
	if c.FSM.Jitter == nil {
		c.FSM.Jitter = func() float64 { return 1 + rand.Float64()/2 }
	}
	return c
}

// Validate reports a configuration error (after defaults are applied).
func (c PeerConfig) Validate() error {
	c = c.withDefaults()
	if !c.PeerAddr.IsValid() {
		return fmt.Errorf("session: peer address is not set; configure the peer's IP address")
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("session: peer %v: TCP port %d is out of 1..65535", c.PeerAddr, c.Port)
	}
	if _, err := NewFSM(c.FSM); err != nil {
		return fmt.Errorf("peer %v: %w", c.PeerAddr, err)
	}
	return nil
}

// Info returns a snapshot of the session; it takes no lock and never blocks.
func (p *Peer) Info() Info {
	i := *p.info.Load()
	i.MsgsIn = p.msgsIn.Load()
	i.MsgsOut = p.msgsOut.Load()
	return i
}

// Send queues whole BGP messages (typically UPDATEs) for the peer. It never
// blocks and never drops while the session is Established (the queue is
// unbounded); when the session is not Established the messages are dropped
// silently (the Handler learns of it through Down, and replays after the
// next Established). The slices must not be modified afterwards.
func (p *Peer) Send(msgs ...[]byte) {
	if c := p.est.Load(); c != nil {
		c.enqueue(msgs...)
	}
}

// RequestRefresh asks the peer to send family f again (RFC 2918); ignored
// unless Established with route refresh and f negotiated.
func (p *Peer) RequestRefresh(f route.Family) { p.post(refreshItem{f: f}) }

// Accept hands over a connection accepted by a listener for this peer.
// The Peer owns it from now on and closes it when it refuses it (while Idle,
// or when it loses a collision).
func (p *Peer) Accept(c net.Conn) { p.post(acceptItem{nc: c}) }

func (p *Peer) post(it any) {
	select {
	case <-p.stopped:
		closeItem(it)
		return
	default:
	}
	p.inboxMu.Lock()
	p.inbox = append(p.inbox, it)
	p.inboxMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// closeItem releases the connection an unprocessed item carries.
func closeItem(it any) {
	switch it := it.(type) {
	case acceptItem:
		it.nc.Close()
	case dialItem:
		if it.nc != nil {
			it.nc.Close()
		}
	}
}

func (p *Peer) takeInbox() []any {
	p.inboxMu.Lock()
	items := p.inbox
	p.inbox = nil
	p.inboxMu.Unlock()
	return items
}

// Run runs the session until ctx ends; it then sends Cease/administrative
// shutdown on a live connection, closes everything and returns once every
// goroutine it started has exited. Run may be called once.
func (p *Peer) Run(ctx context.Context) {
	defer func() {
		for _, it := range p.takeInbox() {
			closeItem(it)
		}
	}()
	if p.cfgErr != nil {
		p.log.Error("peer not started: invalid configuration", "error", p.cfgErr)
		p.snapshot.LastError = p.cfgErr.Error()
		p.publish()
		close(p.stopped)
		return
	}
	p.ctx = ctx
	p.main = p.newSess()
	p.step(p.main, ManualStart{})
	for {
		select {
		case <-ctx.Done():
			p.shutdown()
			return
		case r := <-p.rx:
			p.onRx(r)
		case <-p.wake:
			for _, it := range p.takeInbox() {
				p.onItem(it)
			}
		}
	}
}

func (p *Peer) newSess() *sess {
	f, err := NewFSM(p.cfg.FSM)
	if err != nil {
		panic(fmt.Sprintf("session: config validated but NewFSM failed: %v", err))
	}
	return &sess{fsm: f}
}

func (p *Peer) shutdown() {
	before := p.main.fsm.State()
	for _, s := range []*sess{p.alt, p.main} {
		if s == nil {
			continue
		}
		p.apply(s, s.fsm.Step(ManualStop{}))
		p.stopTimers(s)
		if s.c != nil {
			s.c.close()
			s.c = nil
		}
	}
	p.alt = nil
	p.cancelDial()
	p.noteState(p.main, before)
	close(p.stopped)
	p.wg.Wait()
}

// deliver is the reader's way into the loop; false means stop reading.
func (p *Peer) deliver(c *conn, ev Event) bool {
	select {
	case p.rx <- rxEvent{c: c, ev: ev}:
		return true
	case <-c.stopped:
		return false
	case <-p.stopped:
		return false
	}
}

func (p *Peer) onRx(r rxEvent) {
	var s *sess
	switch {
	case p.main.c == r.c:
		s = p.main
	case p.alt != nil && p.alt.c == r.c:
		s = p.alt
	default:
		return // a connection we already left
	}
	if o, ok := r.ev.(OpenReceived); ok && o.Open != nil && !p.collide(s, o.Open) {
		return
	}
	p.step(s, r.ev)
}

func (p *Peer) onItem(it any) {
	switch it := it.(type) {
	case acceptItem:
		p.onAccept(it.nc)
	case dialItem:
		p.onDial(it)
	case timerItem:
		s := it.s
		if (s != p.main && s != p.alt) || s.gens[it.t] != it.gen {
			return // stale
		}
		if now := time.Now(); now.Before(s.due[it.t]) {
			p.arm(s, it.t, s.due[it.t], s.due[it.t].Sub(now)) // restarted meanwhile
			return
		}
		s.timers[it.t] = nil
		switch it.t {
		case ConnectRetryTimer:
			p.step(s, ConnectRetryExpired{})
		case HoldTimer:
			p.step(s, HoldTimerExpired{})
		case KeepaliveTimer:
			p.step(s, KeepaliveTimerExpired{})
		}
	case refreshItem:
		p.step(p.main, SendRouteRefresh{Family: it.f})
	}
}

func (p *Peer) onAccept(nc net.Conn) {
	m := p.main
	st := m.fsm.State()
	switch {
	case st == Idle:
		// RFC 4271 §8.2.2: Idle refuses connections (we are waiting before
		// reconnecting after an error).
		p.log.Debug("refusing incoming connection while Idle", "remote", nc.RemoteAddr().String())
		nc.Close()
	case m.c == nil && (st == Connect || st == Active):
		p.cancelDial()
		p.attach(m, nc, true)
		p.step(m, TCPConnected{Incoming: true})
	case st == Established || p.alt != nil:
		// RFC 4271 §6.8: a connection colliding with an Established one is
		// closed with Cease/Connection Collision Resolution.
		p.log.Info("closing colliding incoming connection", "remote", nc.RemoteAddr().String(), "state", st)
		c := newConn(nc, true, &p.msgsOut)
		p.wg.Add(1)
		go func() { defer p.wg.Done(); c.writeLoop() }()
		c.enqueue(collisionNotification.Message())
		c.close()
		p.snapshot.Collisions++
		p.publish()
	default:
		// OpenSent/OpenConfirm: track the second connection until its OPEN
		// arrives, then resolve the collision (collide).
		p.alt = p.newSess()
		p.attach(p.alt, nc, true)
		p.step(p.alt, TCPConnected{Incoming: true})
	}
}

var collisionNotification = &Notification{Code: bgp.BGP_ERROR_CEASE, Subcode: bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION}

// collide applies RFC 4271 §6.8 when an OPEN arrives on s while another
// connection exists. It reports whether s goes on.
func (p *Peer) collide(s *sess, open *bgp.BGPOpen) bool {
	other := p.alt
	if s == p.alt {
		other = p.main
	}
	if other == nil || other.c == nil || !other.fsm.connected() {
		return true
	}
	local := p.cfg.FSM.RouterID
	var closeOther bool
	switch {
	case other.fsm.State() == Established:
		closeOther = false
	case !s.c.incoming:
		closeOther = !ResolveCollision(local, open.ID, s.fsm.State())
	case !other.c.incoming:
		closeOther = ResolveCollision(local, open.ID, other.fsm.State())
	default:
		// Both initiated by the peer: the older one is stale, keep the newer.
		closeOther = other == p.main
	}
	loser := s
	if closeOther {
		loser = other
	}
	p.log.Info("connection collision resolved", "local_id", local.String(), "remote_id", open.ID.String(),
		"closed_incoming", loser.c.incoming)
	p.snapshot.Collisions++
	loser.c.enqueue(collisionNotification.Message())
	loser.c.close()
	loser.c = nil
	p.stopTimers(loser)
	p.publish()
	if loser == p.main {
		p.main, p.alt = p.alt, nil
		p.noteState(p.main, p.main.fsm.State())
	} else {
		p.alt = nil
	}
	return closeOther
}

func (p *Peer) attach(s *sess, nc net.Conn, incoming bool) {
	c := newConn(nc, incoming, &p.msgsOut)
	s.c = c
	p.wg.Add(2)
	go func() { defer p.wg.Done(); c.writeLoop() }()
	go func() { defer p.wg.Done(); c.readLoop(p.deliver, &p.msgsIn) }()
}

func (p *Peer) dial() {
	p.cancelDial()
	p.dialGen++
	gen := p.dialGen
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.DialTimeout)
	p.dialCancel = cancel
	d := net.Dialer{}
	if p.cfg.LocalAddr.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.cfg.LocalAddr, 0))
	}
	addr := netip.AddrPortFrom(p.cfg.PeerAddr, uint16(p.cfg.Port)).String()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		nc, err := d.DialContext(ctx, "tcp", addr)
		p.post(dialItem{gen: gen, nc: nc, err: err})
	}()
}

func (p *Peer) cancelDial() {
	if p.dialCancel != nil {
		p.dialCancel()
		p.dialCancel = nil
	}
	p.dialGen++
}

func (p *Peer) onDial(d dialItem) {
	if d.gen != p.dialGen || p.main.fsm.State() != Connect || p.main.c != nil {
		closeItem(d)
		return
	}
	p.dialCancel = nil
	if d.err != nil {
		p.log.Debug("connect failed", "error", d.err)
		p.snapshot.LastError = fmt.Sprintf("connect to %v port %d: %v", p.cfg.PeerAddr, p.cfg.Port, d.err)
		p.step(p.main, TCPFailed{Err: d.err})
		return
	}
	p.attach(p.main, d.nc, false)
	p.step(p.main, TCPConnected{})
}

// step feeds ev to s, performs the actions, and tidies up the sessions.
func (p *Peer) step(s *sess, ev Event) {
	before := s.fsm.State()
	p.apply(s, s.fsm.Step(ev))
	after := s.fsm.State()
	if s == p.main && after != before {
		p.noteState(s, before)
	}
	switch {
	case s == p.alt && after == Idle:
		p.stopTimers(s)
		p.alt = nil
	case s == p.main && !s.fsm.connected() && p.alt != nil:
		// The main connection died while a second one is opening: that one
		// becomes the session.
		p.stopTimers(s)
		p.cancelDial()
		p.main, p.alt = p.alt, nil
		p.noteState(p.main, after)
	}
}

func (p *Peer) apply(s *sess, acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case ConnectAction:
			if s == p.main {
				p.dial()
			}
		case CloseConnection:
			if s == p.main {
				p.cancelDial()
			}
			if s.c != nil {
				p.est.CompareAndSwap(s.c, nil)
				s.c.close()
				s.c = nil
			}
		case Send:
			if s.c != nil {
				s.c.enqueue(a.Msg)
			}
		case StartTimer:
			p.startTimer(s, a.Timer, a.Duration)
		case StopTimer:
			s.gens[a.Timer]++
			if t := s.timers[a.Timer]; t != nil {
				t.Stop()
				s.timers[a.Timer] = nil
			}
		case SessionEstablished:
			if s != p.main {
				continue // cannot happen: collisions are resolved at OPEN
			}
			n := a.Negotiated
			p.up = true
			p.est.Store(s.c)
			p.snapshot.Established++
			p.log.Info("session established", "hold_time", n.HoldTime, "families", fmt.Sprint(n.Families),
				"peer_id", n.PeerID.String(), "rtc", n.RTC, "incoming", s.c.incoming)
			for _, f := range n.MissingFamilies {
				p.log.Warn("peer did not announce a family: its routes will not be exchanged", "family", f.String())
			}
			if len(n.Families) == 0 {
				p.log.Error("no family in common with the peer: the session carries nothing")
			}
			p.h.Established(n)
		case SessionDown:
			p.snapshot.LastError = a.Reason.Error()
			if s == p.main && p.up {
				p.up = false
				p.est.Store(nil)
				p.log.Warn("session down", "reason", a.Reason)
				p.h.Down(a.Reason)
			} else {
				p.log.Info("connection ended before Established", "reason", a.Reason)
			}
		case DeliverUpdate:
			err := p.h.Update(a.Msg)
			if err == nil {
				continue
			}
			var n *Notification
			if errors.As(err, &n) {
				p.log.Warn("UPDATE rejected, resetting the session (RFC 7606)", "error", err)
				p.step(s, UpdateError{Notification: n})
				return
			}
			p.log.Warn("UPDATE partly ignored", "error", err)
		case DeliverRouteRefresh:
			p.h.RouteRefresh(a.Family)
		}
	}
}

func (p *Peer) startTimer(s *sess, t Timer, d time.Duration) {
	due := time.Now().Add(d)
	if s.timers[t] != nil && !due.Before(s.fires[t]) {
		s.due[t] = due
		return
	}
	p.arm(s, t, due, d)
}

func (p *Peer) arm(s *sess, t Timer, due time.Time, d time.Duration) {
	s.gens[t]++
	gen := s.gens[t]
	if s.timers[t] != nil {
		s.timers[t].Stop()
	}
	s.fires[t], s.due[t] = due, due
	s.timers[t] = time.AfterFunc(d, func() { p.post(timerItem{s: s, t: t, gen: gen}) })
}

func (p *Peer) stopTimers(s *sess) {
	for i, t := range s.timers {
		s.gens[i]++
		if t != nil {
			t.Stop()
			s.timers[i] = nil
		}
	}
}

// noteState records a transition of the main session in the snapshot.
func (p *Peer) noteState(s *sess, previous State) {
	i := &p.snapshot
	i.PreviousState = previous
	i.State = s.fsm.State()
	i.LastTransition = time.Now()
	i.Incoming = s.c != nil && s.c.incoming
	if i.State == Established {
		n := s.fsm.Negotiated()
		i.HoldTime, i.KeepaliveInterval = n.HoldTime, n.KeepaliveInterval
		i.Families, i.MissingFamilies = n.Families, n.MissingFamilies
		i.PeerAS, i.PeerID = n.PeerAS, n.PeerID
		i.RTC, i.RouteRefresh, i.FourOctetAS = n.RTC, n.RouteRefresh, n.FourOctetAS
	} else {
		i.HoldTime, i.KeepaliveInterval = 0, 0
		i.Families, i.MissingFamilies = nil, nil
		i.RTC, i.RouteRefresh, i.FourOctetAS = false, false, false
	}
	p.publish()
}

func (p *Peer) publish() {
	i := p.snapshot
	p.info.Store(&i)
}
