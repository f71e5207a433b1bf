// Package bgp is the BGP manager of bagpipe-bgp (reference §4.3–4.4): it
// runs one peer worker per configured peer, glues each BGP session
// (internal/session) to the route engine (internal/engine) through the
// codec (internal/codec), originates RT-Constraint routes (RFC 4684) for
// the route targets local VPN instances import, and optionally accepts
// incoming BGP connections (passive mode, a bagpipe-bgp addition).
//
// Semantics kept from upstream: iBGP only (peer AS = local AS), routes are
// never redistributed between peers, every route learned from a peer is
// withdrawn from the instances when its session goes down.
package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Config configures the BGP manager.
type Config struct {
	// LocalAddress is the BGP session source, router id, and RTC next hop.
	LocalAddress netip.Addr
	// AS is the local AS, also the peers' AS (iBGP only) and the RTC
	// origin AS.
	AS uint32
	// Peers are the peers to connect to.
	Peers []netip.Addr
	// Port is the BGP TCP port: the one to connect to, and the one to
	// listen on in passive mode.
	Port int
	// EnableRTC enables RT Constraint (RFC 4684).
	EnableRTC bool
	// Passive also accepts incoming connections from the configured peers.
	Passive bool
	// HoldTime offered in OPEN (0 means the upstream default, 180 s).
	HoldTime time.Duration
	// ConnectRetry is the delay before reconnecting after a failed connect
	// (0 means the upstream default, 5 s).
	ConnectRetry time.Duration
	// ErrorDelay is the base delay before reconnecting after a session
	// error (0 means the upstream default, 20 s; jittered ×[1, 1.5)).
	ErrorDelay time.Duration
}

// Manager owns the peer workers and the RTC routes.
type Manager struct {
	cfg   Config
	eng   *engine.Engine
	log   *slog.Logger
	src   *route.Source
	peers map[netip.Addr]*PeerWorker
	order []netip.Addr

	// rtcRefs counts, per RT, the (family, RT) matches with local
	// subscribers, for the VPN families. Touched only on the engine
	// goroutine (hook calls).
	rtcRefs map[route.RT]int

	lnMu sync.Mutex
	ln   net.Listener
}

// New creates the manager and registers it with the engine (as the source
// of RTC routes and as the engine's local-subscription hook). Call it
// before the engine runs.
func New(cfg Config, eng *engine.Engine, log *slog.Logger) *Manager {
	if cfg.Port == 0 {
		cfg.Port = 179
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = 180 * time.Second
	}
	if cfg.ConnectRetry == 0 {
		cfg.ConnectRetry = 5 * time.Second
	}
	if cfg.ErrorDelay == 0 {
		cfg.ErrorDelay = 20 * time.Second
	}
	m := &Manager{
		cfg:     cfg,
		eng:     eng,
		log:     log.With("component", "bgp"),
		peers:   make(map[netip.Addr]*PeerWorker),
		rtcRefs: make(map[route.RT]int),
	}
	m.src = eng.Register(&managerWorker{})
	eng.SetLocalSubscriptionHook(m)
	for _, p := range cfg.Peers {
		if _, dup := m.peers[p]; dup {
			continue
		}
		m.peers[p] = newPeerWorker(m, p)
		m.order = append(m.order, p)
	}
	return m
}

// managerWorker is the engine identity of the BGP manager: it publishes RTC
// routes and subscribes to nothing.
type managerWorker struct{}

func (*managerWorker) Name() string           { return "BGPManager" }
func (*managerWorker) IsPeer() bool           { return false }
func (*managerWorker) Deliver([]engine.Event) {}

// Run runs every peer worker (and the passive listener) until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if m.cfg.Passive {
		addr := net.JoinHostPort(m.cfg.LocalAddress.String(), strconv.Itoa(m.cfg.Port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("passive BGP: cannot listen on %s: %w (is another BGP speaker using the port? change [BGP] bgp_port or turn passive off)", addr, err)
		}
		m.lnMu.Lock()
		m.ln = ln
		m.lnMu.Unlock()
		m.log.Info("accepting incoming BGP connections", "listen", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.acceptLoop(ctx, ln)
		}()
		go func() {
			<-ctx.Done()
			ln.Close()
		}()
	}
	for _, a := range m.order {
		p := m.peers[a]
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// ListenAddr returns the passive listener address (nil if not listening).
func (m *Manager) ListenAddr() net.Addr {
	m.lnMu.Lock()
	defer m.lnMu.Unlock()
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

func (m *Manager) acceptLoop(ctx context.Context, ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			m.log.Warn("accept failed", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		ra, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		p, ok := m.peers[ra.Addr().Unmap()]
		if !ok {
			m.log.Warn("refusing BGP connection from an address that is not a configured peer", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		p.accept(c)
	}
}

// Peers returns a looking-glass snapshot of every peer, in configuration
// order.
func (m *Manager) Peers() []PeerInfo {
	out := make([]PeerInfo, 0, len(m.order))
	for _, a := range m.order {
		out = append(out, m.peers[a].Info())
	}
	return out
}

// Peer returns one peer's snapshot.
func (m *Manager) Peer(addr netip.Addr) (PeerInfo, bool) {
	p, ok := m.peers[addr]
	if !ok {
		return PeerInfo{}, false
	}
	return p.Info(), true
}

// EstablishedPeers counts peers whose session is Established.
func (m *Manager) EstablishedPeers() int {
	n := 0
	for _, a := range m.order {
		if m.peers[a].established() {
			n++
		}
	}
	return n
}

// Source is the engine source of the manager's own routes (RTC).
func (m *Manager) Source() *route.Source { return m.src }

// rtcFamily reports whether local subscriptions to f generate RTC routes
// (VPN families, reference §4.3; FlowSpec subscriptions do not).
func rtcFamily(f route.Family) bool {
	return f == route.FamilyEVPN || f == route.FamilyVPNv4
}

// FirstLocalSubscriber implements engine.LocalSubscriptionHook: the first
// local subscription to (VPN family, RT) originates the RTC route for RT
// (RFC 4684 §4). The route is counted per RT across families, so an RT
// shared by an EVI and a VRF keeps its RTC route until both are gone (an
// upstream bug, fixed).
func (m *Manager) FirstLocalSubscriber(mt engine.Match) {
	if !m.cfg.EnableRTC || mt.RT == route.RTAny || !rtcFamily(mt.Family) {
		return
	}
	m.rtcRefs[mt.RT]++
	if m.rtcRefs[mt.RT] == 1 {
		m.eng.Publish(m.src, []engine.Event{{Kind: engine.Advertise, Route: m.rtcRoute(mt.RT)}})
	}
}

// LastLocalSubscriber implements engine.LocalSubscriptionHook.
func (m *Manager) LastLocalSubscriber(mt engine.Match) {
	if !m.cfg.EnableRTC || mt.RT == route.RTAny || !rtcFamily(mt.Family) {
		return
	}
	n := m.rtcRefs[mt.RT]
	if n == 0 {
		return
	}
	if n == 1 {
		delete(m.rtcRefs, mt.RT)
		m.eng.Publish(m.src, []engine.Event{{Kind: engine.Withdraw, Route: m.rtcRoute(mt.RT)}})
		return
	}
	m.rtcRefs[mt.RT] = n - 1
}

// rtcRoute builds the RTC route for rt: origin AS = local AS, next hop =
// BGP local address (reference §4.3).
func (m *Manager) rtcRoute(rt route.RT) *route.Route {
	return &route.Route{
		Family: route.FamilyRTC,
		Key:    route.RTCKey(m.cfg.AS, rt),
		Attrs:  RTCAttrs(m.cfg.LocalAddress),
		Source: m.src,
	}
}

// RTCAttrs are the path attributes of locally originated RTC routes.
func RTCAttrs(nextHop netip.Addr) *route.Attrs {
	return &route.Attrs{NextHop: nextHop, Origin: 0, HasLocalPref: true, LocalPref: 100}
}

// families announced in OPEN, upstream order: RTC only when enabled.
func (m *Manager) families() []route.Family {
	var fs []route.Family
	for _, f := range route.Families {
		if f == route.FamilyRTC && !m.cfg.EnableRTC {
			continue
		}
		fs = append(fs, f)
	}
	return slices.Clip(fs)
}
