package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/session"
)

// RR is bagpipe-scale's BGP side: a passive iBGP speaker, one session per
// daemon under test, that injects routes and can reflect what one daemon
// advertises to the others (a minimal route reflector: UPDATEs are re-sent
// unchanged, RFC 4456 attributes are not added since no loop is possible
// between two clients and one reflector).
type RR struct {
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	lns     []net.Listener
	peers   map[netip.Addr]*RRPeer
	reflect atomic.Bool
}

// RRPeer is the session with one daemon.
type RRPeer struct {
	// Addr is the daemon's address.
	Addr netip.Addr
	rr   *RR
	sess *session.Peer
	// local is our address on the session, port our listening port.
	local netip.Addr
	port  int

	estOnce sync.Once
	est     chan struct{}
	estAt   atomic.Int64 // unix ns of the first Established
	updates atomic.Uint64
	lastUpd atomic.Int64 // unix ns of the last UPDATE received
	downs   atomic.Uint64

	mu     sync.Mutex
	replay [][]byte // what we currently advertise, sent again after a reset
}

// NewRR prepares a reflector for the daemons of namespaces nss: it listens
// on each namespace's Peer address, on a free port (see Port) rather than
// 179, which another BGP speaker of the root namespace may hold on all
// addresses.
func NewRR(nss []*Namespace, log *slog.Logger) (*RR, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &RR{log: log.With("component", "scale-rr"), ctx: ctx, cancel: cancel, peers: map[netip.Addr]*RRPeer{}}
	for _, ns := range nss {
		p := &RRPeer{Addr: ns.Local, rr: r, local: ns.Peer, est: make(chan struct{})}
		p.sess = session.NewPeer(session.PeerConfig{
			LocalAddr: ns.Peer, PeerAddr: ns.Local,
			FSM: session.Config{LocalAS: AS, RouterID: nss[0].Peer, EnableRTC: true, Passive: true,
				Families: []route.Family{route.FamilyEVPN, route.FamilyVPNv4}},
		}, p, r.log.With("peer", ns.Local.String()))
		r.peers[ns.Local] = p
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ns.Peer, 0).String())
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("listening for BGP on %s: %w", ns.Peer, err)
		}
		p.port = ln.Addr().(*net.TCPAddr).Port
		r.lns = append(r.lns, ln)
	}
	for _, p := range r.peers {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); p.sess.Run(ctx) }()
	}
	for _, ln := range r.lns {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.accept(ln) }()
	}
	return r, nil
}

func (r *RR) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		p := r.peers[ap.Addr().Unmap()]
		if p == nil {
			r.log.Warn("BGP connection from an unknown address, closed", "from", c.RemoteAddr())
			c.Close()
			continue
		}
		p.sess.Accept(c)
	}
}

// SetReflect turns reflection between the daemons on or off.
func (r *RR) SetReflect(on bool) { r.reflect.Store(on) }

// Peer returns the session with the daemon at addr.
func (r *RR) Peer(addr netip.Addr) *RRPeer { return r.peers[addr] }

// Close ends the sessions and listeners.
func (r *RR) Close() {
	for _, ln := range r.lns {
		ln.Close()
	}
	r.cancel()
	r.wg.Wait()
}

// WaitEstablished waits for the first Established of the session.
func (p *RRPeer) WaitEstablished(ctx context.Context, timeout time.Duration, alive func() error) (time.Time, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	end := time.After(timeout)
	for {
		select {
		case <-p.est:
			return time.Unix(0, p.estAt.Load()), nil
		case <-t.C:
			if err := alive(); err != nil {
				return time.Time{}, err
			}
		case <-end:
			return time.Time{}, fmt.Errorf("no BGP session established with %s within %s (state %s, last error %q)", p.Addr, timeout, p.sess.Info().State, p.sess.Info().LastError)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// Port is the TCP port we listen on for this daemon (its bgp_port).
func (p *RRPeer) Port() int { return p.port }

// Send queues whole UPDATE messages to the daemon (batched into large TCP
// writes by the session writer).
func (p *RRPeer) Send(msgs ...[]byte) { p.sess.Send(msgs...) }

// Info returns the session snapshot.
func (p *RRPeer) Info() session.Info { return p.sess.Info() }

// Updates returns the number of UPDATEs received and the time of the last.
func (p *RRPeer) Updates() (uint64, time.Time) {
	return p.updates.Load(), time.Unix(0, p.lastUpd.Load())
}

// Established implements session.Handler: it advertises the RTC default
// route (RFC 4684 §4: prefix length 0 matches every route target) so the
// daemon sends us its VPN routes whatever their route targets.
func (p *RRPeer) Established(n session.Negotiated) {
	p.estOnce.Do(func() { p.estAt.Store(time.Now().UnixNano()); close(p.est) })
	if !n.RTC {
		return
	}
	msg, err := codec.EncodeUpdate([]*route.Route{{Family: route.FamilyRTC, Key: route.RTCWildcardKey,
		Attrs: &route.Attrs{NextHop: p.local, HasLocalPref: true, LocalPref: 100}}})
	if err != nil {
		p.rr.log.Error("encoding the RTC default route", "err", err)
		return
	}
	p.sess.Send(msg)
	p.mu.Lock()
	replay := p.replay
	p.mu.Unlock()
	if len(replay) > 0 && p.downs.Load() > 0 {
		p.rr.log.Warn("session re-established: advertising our routes again", "peer", p.Addr, "messages", len(replay))
		p.sess.Send(replay...)
	}
}

// SetReplay records the UPDATEs that make up what we advertise to the
// daemon: like a real reflector, we send them again when the session comes
// back after a reset. Nil after a withdrawal.
func (p *RRPeer) SetReplay(msgs [][]byte) {
	p.mu.Lock()
	p.replay = msgs
	p.mu.Unlock()
}

// Update implements session.Handler: counts, and reflects to the other
// daemons when reflection is on.
func (p *RRPeer) Update(msg []byte) error {
	p.updates.Add(1)
	p.lastUpd.Store(time.Now().UnixNano())
	if p.rr.reflect.Load() {
		for _, o := range p.rr.peers {
			if o != p {
				o.sess.Send(msg)
			}
		}
	}
	return nil
}

// RouteRefresh implements session.Handler (ignored: we keep no RIB).
func (p *RRPeer) RouteRefresh(route.Family) {}

// Down implements session.Handler.
func (p *RRPeer) Down(reason error) {
	p.downs.Add(1)
	if p.rr.ctx.Err() == nil && !errors.Is(reason, context.Canceled) {
		p.rr.log.Warn("BGP session with the daemon went down", "peer", p.Addr, "reason", reason)
	}
}

// Downs counts the ends of Established sessions.
func (p *RRPeer) Downs() uint64 { return p.downs.Load() }
