package session

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// recHandler records what a Peer reports.
type recHandler struct {
	mu          sync.Mutex
	established int
	downs       []error
	updates     [][]byte
	refreshes   []route.Family
	updateErr   error
}

func (h *recHandler) Established(Negotiated) { h.mu.Lock(); h.established++; h.mu.Unlock() }
func (h *recHandler) Down(r error)           { h.mu.Lock(); h.downs = append(h.downs, r); h.mu.Unlock() }
func (h *recHandler) RouteRefresh(f route.Family) {
	h.mu.Lock()
	h.refreshes = append(h.refreshes, f)
	h.mu.Unlock()
}
func (h *recHandler) Update(m []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, m)
	return h.updateErr
}

func (h *recHandler) counts() (est, down, upd int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.established, len(h.downs), len(h.updates)
}

// waitFor polls cond with a generous deadline: it checks behaviour, not speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testListener accepts on addr and hands connections to a Peer; hold, when
// set, is called before each of the first handovers (a barrier).
type testListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func listen(t *testing.T, addr string) *testListener {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatalf("listen on %s (127.0.0.2 must be local, as on Linux): %v", addr, err)
	}
	l := &testListener{ln: ln, done: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); <-l.done })
	return l
}

func (l *testListener) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

func (l *testListener) serve(p *Peer, before func()) {
	go func() {
		defer close(l.done)
		for first := true; ; first = false {
			c, err := l.ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.conns = append(l.conns, c)
			l.mu.Unlock()
			if first && before != nil {
				before()
			}
			p.Accept(c)
		}
	}()
}

func (l *testListener) last() net.Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[len(l.conns)-1]
}

func peerConfig(local, remote string, port int, passive bool) PeerConfig {
	return PeerConfig{
		LocalAddr: netip.MustParseAddr(local),
		PeerAddr:  netip.MustParseAddr(remote),
		Port:      port,
		FSM: Config{
			LocalAS:          64512,
			HoldTime:         3 * time.Second,
			EnableRTC:        true,
			Passive:          passive,
			ConnectRetry:     20 * time.Millisecond,
			ErrorDelay:       50 * time.Millisecond,
			HoldExpiredDelay: 50 * time.Millisecond,
		},
		DialTimeout: 5 * time.Second,
	}
}

type running struct {
	p      *Peer
	h      *recHandler
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, cfg PeerConfig) *running {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r := &running{h: &recHandler{}, done: make(chan struct{})}
	r.p = NewPeer(cfg, r.h, log)
	return r
}

func (r *running) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); r.p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func established(r *running) func() bool {
	return func() bool { return r.p.Info().State == Established }
}

// pair starts A (127.0.0.1, active) and B (127.0.0.2, passive or not).
func pair(t *testing.T, bPassive bool, barrier bool) (a, b *running, la, lb *testListener) {
	la, lb = listen(t, "127.0.0.1"), listen(t, "127.0.0.2")
	a = start(t, peerConfig("127.0.0.1", "127.0.0.2", lb.port(), false))
	b = start(t, peerConfig("127.0.0.2", "127.0.0.1", la.port(), bPassive))
	var hold func()
	if barrier {
		// Hand over the first incoming connection on each side only when
		// both sides have one: both outgoing connections are then in
		// OpenSent, a certain collision.
		// Also wait until both outgoing connections reached OpenSent (an
		// incoming connection handed while still in Connect would simply
		// replace the connect attempt).
		var (
			wg   sync.WaitGroup
			once sync.Once
		)
		wg.Add(2)
		hold = func() {
			wg.Done()
			wg.Wait()
			once.Do(func() { // both wait for the same condition, checked once
				for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if a.p.Info().State == OpenSent && b.p.Info().State == OpenSent {
						return
					}
				}
			})
		}
	}
	la.serve(a.p, hold)
	lb.serve(b.p, hold)
	a.run(t)
	b.run(t)
	return a, b, la, lb
}

func TestPeerActivePassiveUpdateAndStop(t *testing.T) {
	a, b, _, _ := pair(t, true, false)
	waitFor(t, "A Established", established(a))
	waitFor(t, "B Established", established(b))

	ia, ib := a.p.Info(), b.p.Info()
	if ia.Incoming || !ib.Incoming {
		t.Errorf("A incoming=%v B incoming=%v: A connects, passive B accepts", ia.Incoming, ib.Incoming)
	}
	wantFam := []route.Family{route.FamilyVPNv4, route.FamilyEVPN, route.FamilyFlowVPN, route.FamilyRTC}
	if !ia.RTC || ia.HoldTime != 3*time.Second || ia.KeepaliveInterval != time.Second || len(ia.Families) != len(wantFam) ||
		ia.PeerID != netip.MustParseAddr("127.0.0.2") || ia.PeerAS != 64512 || ia.PreviousState != OpenConfirm {
		t.Errorf("A info %+v", ia)
	}

	upd, _ := hex.DecodeString("ffffffffffffffffffffffffffffffff" + "0017" + "02" + // header, UPDATE
		"0000" + "0000") // no withdrawn routes, no attributes (End-of-RIB)
	a.p.Send(upd, upd)
	waitFor(t, "B gets the UPDATEs", func() bool { _, _, n := b.h.counts(); return n == 2 })
	b.h.mu.Lock()
	if !bytes.Equal(b.h.updates[0], upd) {
		t.Errorf("B got %x, want %x", b.h.updates[0], upd)
	}
	b.h.mu.Unlock()

	a.p.RequestRefresh(route.FamilyEVPN)
	waitFor(t, "B gets ROUTE-REFRESH", func() bool {
		b.h.mu.Lock()
		defer b.h.mu.Unlock()
		return len(b.h.refreshes) == 1 && b.h.refreshes[0] == route.FamilyEVPN
	})
	if in := b.p.Info().MsgsIn; in < 5 { // OPEN, KEEPALIVE, 2 UPDATEs, ROUTE-REFRESH
		t.Errorf("B counted %d messages in", in)
	}

	// Stopping B sends Cease/administrative shutdown: A goes down with it.
	b.stop(t)
	waitFor(t, "A down", func() bool { _, d, _ := a.h.counts(); return d == 1 })
	a.h.mu.Lock()
	var de *DownError
	if !errors.As(a.h.downs[0], &de) || de.Received == nil || de.Received.Code != 6 || de.Received.Subcode != 2 {
		t.Errorf("A down reason %v, want a received Cease 6/2", a.h.downs[0])
	}
	a.h.mu.Unlock()
	if _, d, _ := b.h.counts(); d != 1 {
		t.Errorf("B Handler.Down called %d times, want 1", d)
	}
	if s := b.p.Info().State; s != Idle {
		t.Errorf("B state after Run %v", s)
	}
	b.p.Send(upd) // after Run: dropped, must not block or panic
}

func TestPeerSurvivesSocketClose(t *testing.T) {
	a, b, _, lb := pair(t, true, false)
	waitFor(t, "B Established", established(b))
	waitFor(t, "A Established", established(a))
	lb.last().Close() // B's socket, closed under its feet
	waitFor(t, "both down", func() bool {
		_, da, _ := a.h.counts()
		_, db, _ := b.h.counts()
		return da == 1 && db == 1
	})
	waitFor(t, "A re-established", func() bool { e, _, _ := a.h.counts(); return e == 2 && a.p.Info().State == Established })
	waitFor(t, "B re-established", func() bool { e, _, _ := b.h.counts(); return e == 2 && b.p.Info().State == Established })
	if n := b.p.Info().Established; n != 2 {
		t.Errorf("B Info.Established %d", n)
	}
}

func TestPeerCollisionLeavesOneSession(t *testing.T) {
	a, b, _, _ := pair(t, false, true)
	waitFor(t, "A Established", established(a))
	waitFor(t, "B Established", established(b))
	// RFC 4271 §6.8: the connection initiated by the higher identifier
	// (127.0.0.2, B) is kept.
	if ia, ib := a.p.Info(), b.p.Info(); !ia.Incoming || ib.Incoming {
		t.Errorf("A incoming=%v B incoming=%v, want the B-initiated connection", ia.Incoming, ib.Incoming)
	}
	if ca, cb := a.p.Info().Collisions, b.p.Info().Collisions; ca != 1 || cb != 1 {
		t.Errorf("collisions resolved: A %d, B %d; want 1 each", ca, cb)
	}
	// Let keepalives flow for a while; nothing must flap.
	time.Sleep(1500 * time.Millisecond)
	ea, da, _ := a.h.counts()
	eb, db, _ := b.h.counts()
	if ea != 1 || eb != 1 || da != 0 || db != 0 {
		t.Errorf("A established %d down %d, B established %d down %d: want exactly one session", ea, da, eb, db)
	}
	if a.p.Info().State != Established || b.p.Info().State != Established {
		t.Error("session lost")
	}
}

func TestPeerUpdateErrorResetsSession(t *testing.T) {
	a, b, _, _ := pair(t, true, false)
	b.h.mu.Lock()
	b.h.updateErr = &Notification{Code: 3, Subcode: 1}
	b.h.mu.Unlock()
	waitFor(t, "A Established", established(a))
	waitFor(t, "B Established", established(b))
	upd, _ := hex.DecodeString("ffffffffffffffffffffffffffffffff" + "0017" + "02" + "0000" + "0000")
	a.p.Send(upd)
	waitFor(t, "A down", func() bool { _, d, _ := a.h.counts(); return d >= 1 })
	a.h.mu.Lock()
	var de *DownError
	if !errors.As(a.h.downs[0], &de) || de.Received == nil || de.Received.Code != 3 || de.Received.Subcode != 1 {
		t.Errorf("A down reason %v, want received 3/1", a.h.downs[0])
	}
	a.h.mu.Unlock()
}

// TestPeerFraming talks raw bytes to a passive Peer: a bad marker gets
// NOTIFICATION 1/1 back (RFC 4271 §6.1).
func TestPeerFraming(t *testing.T) {
	tests := []struct {
		name string
		send string
		want string
	}{
		{"bad marker", "fffffffffffffffffffffffffffffffe" + "0013" + "04",
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "01" + "01"},
		{"length 18", "ffffffffffffffffffffffffffffffff" + "0012" + "04",
			"ffffffffffffffffffffffffffffffff" + "0017" + "03" + "01" + "02" + "0012"},
		{"type 7", "ffffffffffffffffffffffffffffffff" + "0013" + "07",
			"ffffffffffffffffffffffffffffffff" + "0016" + "03" + "01" + "03" + "07"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln := listen(t, "127.0.0.1")
			r := start(t, peerConfig("127.0.0.2", "127.0.0.1", 179, true))
			ln.serve(r.p, nil)
			r.run(t)
			c, err := net.Dial("tcp", ln.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			open := make([]byte, 19)
			if _, err := io.ReadFull(c, open); err != nil || open[18] != 1 {
				t.Fatalf("no OPEN header from the peer: %x %v", open, err)
			}
			rest := make([]byte, int(open[16])<<8|int(open[17])-19)
			if _, err := io.ReadFull(c, rest); err != nil {
				t.Fatal(err)
			}
			b, _ := hex.DecodeString(tc.send)
			if _, err := c.Write(b); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(c) // NOTIFICATION then close
			if hex.EncodeToString(got) != tc.want {
				t.Errorf("got %x\nwant %s", got, tc.want)
			}
		})
	}
}
