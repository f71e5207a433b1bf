package fakerr

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs a relay on a loopback port and returns its address and log.
func start(t *testing.T) (string, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	r := New(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	})
	return ln.Addr().String(), logs
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectClosed reads until EOF or a reset, failing on any data.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	var b [1]byte
	n, err := c.Read(b[:])
	if n != 0 || err == nil {
		t.Fatalf("connection still open: read %d bytes, err %v", n, err)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read error %v, want EOF or reset", err)
	}
}

// connectPair connects two clients and proves they are relayed (so the
// relay has seen both).
func connectPair(t *testing.T, addr string) (net.Conn, net.Conn) {
	t.Helper()
	a := dial(t, addr)
	send(t, a, "hello from a")
	b := dial(t, addr)
	expect(t, b, "hello from a")
	return a, b
}

func TestRelayBothWays(t *testing.T) {
	addr, _ := start(t)
	a, b := connectPair(t, addr)
	send(t, b, "from b")
	expect(t, a, "from b")
	send(t, a, "from a")
	expect(t, b, "from a")
	// A larger transfer in both directions at once.
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	errs := make(chan error, 2)
	go func() { _, err := a.Write(big); errs <- err }()
	go func() { _, err := b.Write(big); errs <- err }()
	for _, c := range []net.Conn{a, b} {
		got := make([]byte, len(big))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, big) {
			t.Fatalf("1 MiB transfer corrupted or short: %v", err)
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestEarlyBytesDelivered(t *testing.T) {
	addr, _ := start(t)
	a := dial(t, addr)
	// Several writes before the second client exists, in order.
	for _, s := range []string{"one,", "two,", "three"} {
		send(t, a, s)
	}
	b := dial(t, addr)
	expect(t, b, "one,two,three")
	send(t, a, "+four")
	expect(t, b, "+four")
}

func TestThirdClientRefused(t *testing.T) {
	addr, logs := start(t)
	a, b := connectPair(t, addr)
	c := dial(t, addr)
	expectClosed(t, c)
	if !strings.Contains(logs.String(), "refusing a third client") ||
		!strings.Contains(logs.String(), "client="+c.LocalAddr().String()) {
		t.Errorf("no log line naming the refused client %s:\n%s", c.LocalAddr(), logs)
	}
	// The pair is unaffected.
	send(t, a, "still")
	expect(t, b, "still")
	send(t, b, "here")
	expect(t, a, "here")
}

func TestCloseOneClosesOther(t *testing.T) {
	for _, closeFirst := range []bool{true, false} {
		addr, _ := start(t)
		a, b := connectPair(t, addr)
		closer, other := a, b
		if !closeFirst {
			closer, other = b, a
		}
		send(t, closer, "last words")
		closer.Close()
		expect(t, other, "last words")
		expectClosed(t, other)
	}
}

func TestNewPairAfterClose(t *testing.T) {
	addr, logs := start(t)
	a, b := connectPair(t, addr)
	a.Close()
	expectClosed(t, b)
	// The relay is idle again: a new pair forms and relays.
	c, d := connectPair(t, addr)
	send(t, d, "second pair")
	expect(t, c, "second pair")

	// A lone first client that leaves also resets the relay.
	d.Close()
	expectClosed(t, c)
	e := dial(t, addr)
	send(t, e, "alone")
	closed := strings.Count(logs.String(), "pair closed")
	e.Close()
	// Nothing a client can observe says the relay saw e leave; wait for
	// its log line (no deadline: the test timeout catches a hang).
	for strings.Count(logs.String(), "pair closed") == closed {
		time.Sleep(time.Millisecond)
	}
	f, g := connectPair(t, addr)
	send(t, g, "third pair")
	expect(t, f, "third pair")
}

func TestServeStopsClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := New(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, ln) }()
	a, b := connectPair(t, ln.Addr().String())
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	expectClosed(t, a)
	expectClosed(t, b)
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
}

// TestEarlyBytesBeyondBuffer sends more than maxPending before the second
// client connects: the relay stops reading, then delivers everything.
func TestEarlyBytesBeyondBuffer(t *testing.T) {
	addr, _ := start(t)
	a := dial(t, addr)
	big := make([]byte, 3*maxPending)
	for i := range big {
		big[i] = byte(i * 7)
	}
	errs := make(chan error, 1)
	go func() { _, err := a.Write(big); errs <- err }()
	b := dial(t, addr)
	got := make([]byte, len(big))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("3 MiB sent before pairing arrived short or corrupted: %v", err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
