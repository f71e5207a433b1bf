package session

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

const marker = "ffffffffffffffffffffffffffffffff"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckHeader(t *testing.T) {
	tests := []struct {
		name string
		hdr  string
		want *MessageError
	}{
		{"keepalive", marker + "0013" + "04", nil},
		{"open 29", marker + "001d" + "01", nil},
		{"update 4096", marker + "1000" + "02", nil},
		{"route refresh 23", marker + "0017" + "05", nil},
		{"marker not all ones", "7fffffffffffffffffffffffffffffff" + "0013" + "04", &MessageError{Code: 1, Subcode: 1}},
		{"length 18", marker + "0012" + "02", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x12}}},
		{"length 4097", marker + "1001" + "02", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x10, 0x01}}},
		{"open 28", marker + "001c" + "01", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x1c}}},
		{"update 22", marker + "0016" + "02", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x16}}},
		{"notification 20", marker + "0014" + "03", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x14}}},
		{"keepalive 20", marker + "0014" + "04", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x14}}},
		{"route refresh 24", marker + "0018" + "05", &MessageError{Code: 1, Subcode: 2, Data: []byte{0x00, 0x18}}},
		{"type 0", marker + "0013" + "00", &MessageError{Code: 1, Subcode: 3, Data: []byte{0x00}}},
		{"type 6", marker + "0013" + "06", &MessageError{Code: 1, Subcode: 3, Data: []byte{0x06}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := checkHeader(mustHex(t, tc.hdr))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want Event
	}{
		{"keepalive", marker + "0013" + "04", KeepaliveReceived{}},
		{"notification with data", marker + "0017" + "03" + "02" + "01" + "0004", // OPEN error / version, data 4
			NotificationReceived{Code: 2, Subcode: 1, Data: []byte{0x00, 0x04}}},
		{"notification without data", marker + "0015" + "03" + "06" + "02", NotificationReceived{Code: 6, Subcode: 2}},
		{"route refresh evpn", marker + "0017" + "05" + "0019" + "00" + "46", // AFI 25, reserved, SAFI 70
			RouteRefreshReceived{Family: route.FamilyEVPN}},
		{"update kept whole", marker + "0017" + "02" + "0000" + "0000",
			UpdateReceived{Msg: mustHex(t, marker+"0017"+"02"+"0000"+"0000")}},
		{"open with truncated optional parameters", marker + "001e" + "01" + // length 30
			"04" + "fc00" + "00b4" + "c0000202" + "05" + // opt param length 5 but 1 byte follows
			"02", MessageError{Code: 1, Subcode: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeMessage(mustHex(t, tc.msg))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
	t.Run("open", func(t *testing.T) {
		ev := decodeMessage(mustHex(t, marker+"001d"+"01"+"04"+"fc00"+"00b4"+"c0000202"+"00"))
		o, ok := ev.(OpenReceived)
		if !ok || o.Open.MyAS != 64512 || o.Open.HoldTime != 180 || o.Open.ID != netip.MustParseAddr("192.0.2.2") {
			t.Errorf("got %#v", ev)
		}
	})
}

// rawPeer is the test's side of a connection to a passive Peer: it speaks
// BGP byte by byte.
type rawPeer struct {
	t *testing.T
	c net.Conn
}

func (r *rawPeer) read() []byte {
	r.t.Helper()
	h := make([]byte, 19)
	if _, err := io.ReadFull(r.c, h); err != nil {
		r.t.Fatalf("reading a message: %v", err)
	}
	m := make([]byte, int(h[16])<<8|int(h[17]))
	copy(m, h)
	if _, err := io.ReadFull(r.c, m[19:]); err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rawPeer) write(b []byte) {
	r.t.Helper()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// establishRaw starts a passive Peer for 127.0.0.1 and brings a raw session
// with it to Established, offering hold time 3 s.
func establishRaw(t *testing.T) (*running, *rawPeer) {
	ln := listen(t, "127.0.0.1")
	r := start(t, peerConfig("127.0.0.2", "127.0.0.1", 179, true))
	ln.serve(r.p, nil)
	r.run(t)
	c, err := net.Dial("tcp", ln.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	rp := &rawPeer{t: t, c: c}
	if m := rp.read(); m[18] != bgp.BGP_MSG_OPEN {
		t.Fatalf("first message %x, want OPEN", m)
	}
	open := peerOpen(t, openOpts{hold: 3, holdSet: true, id: "127.0.0.1"})
	b, err := (&bgp.BGPMessage{Header: bgp.BGPHeader{Type: bgp.BGP_MSG_OPEN}, Body: open.Open}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	rp.write(b)
	rp.write(keepaliveMsg)
	if m := rp.read(); m[18] != bgp.BGP_MSG_KEEPALIVE {
		t.Fatalf("got %x, want KEEPALIVE", m)
	}
	waitFor(t, "Established", established(r))
	return r, rp
}

// TestPeerHoldTimer: UPDATEs alone keep the session up (RFC 4271 §8.2.2;
// upstream only counted KEEPALIVEs), and silence ends it with 4/0.
func TestPeerHoldTimer(t *testing.T) {
	r, rp := establishRaw(t)
	go func() { // drain our KEEPALIVEs
		for {
			h := make([]byte, 19)
			if _, err := io.ReadFull(rp.c, h); err != nil {
				return
			}
			m := make([]byte, int(h[16])<<8|int(h[17])-19)
			if _, err := io.ReadFull(rp.c, m); err != nil {
				return
			}
			if h[18] == bgp.BGP_MSG_NOTIFICATION {
				rp.c.Close() // the 4/0 is checked through Handler.Down
				return
			}
		}
	}()
	upd := mustHex(t, marker+"0017"+"02"+"0000"+"0000")
	// 15 UPDATEs 300 ms apart: 4.5 s of no KEEPALIVE, hold time 3 s.
	for range 15 {
		rp.write(upd)
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, "15 UPDATEs", func() bool { _, _, n := r.h.counts(); return n == 15 })
	if _, d, _ := r.h.counts(); d != 0 {
		t.Fatalf("session went down while UPDATEs kept arriving (%d downs)", d)
	}
	waitFor(t, "hold timer expiry", func() bool { _, d, _ := r.h.counts(); return d == 1 })
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	var de *DownError
	if !errors.As(r.h.downs[0], &de) || de.Sent == nil || de.Sent.Code != 4 || de.Sent.Subcode != 0 {
		t.Errorf("down reason %v, want sent 4/0", r.h.downs[0])
	}
}

// BenchmarkFSMUpdate measures the FSM's share of receiving an UPDATE.
func BenchmarkFSMUpdate(b *testing.B) {
	f, err := NewFSM(testConfig())
	if err != nil {
		b.Fatal(err)
	}
	f.state, f.neg.HoldTime = Established, 180*time.Second
	ev := UpdateReceived{Msg: make([]byte, 100)}
	b.ReportAllocs()
	for b.Loop() {
		f.Step(ev)
	}
}

// countHandler counts UPDATEs and signals when n arrived.
type countHandler struct {
	recHandler
	n, want int
	done    chan struct{}
}

func (h *countHandler) Update([]byte) error {
	h.n++
	if h.n == h.want {
		close(h.done)
	}
	return nil
}

// BenchmarkSendLoopback measures UPDATE throughput from Send on one Peer to
// Handler.Update on another, over loopback TCP (framing, batching writer).
func BenchmarkSendLoopback(b *testing.B) {
	la, lb := listenB(b, "127.0.0.1"), listenB(b, "127.0.0.2")
	ca := peerConfig("127.0.0.1", "127.0.0.2", lb.Addr().(*net.TCPAddr).Port, false)
	cb := peerConfig("127.0.0.2", "127.0.0.1", la.Addr().(*net.TCPAddr).Port, true)
	ha := &recHandler{}
	hb := &countHandler{want: b.N, done: make(chan struct{})}
	quiet := slog.New(slog.DiscardHandler)
	pa, pb := NewPeer(ca, ha, quiet), NewPeer(cb, hb, quiet)
	go acceptLoop(la, pa)
	go acceptLoop(lb, pb)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { pa.Run(ctx) })
	wg.Go(func() { pb.Run(ctx) })
	for pa.Info().State != Established || pb.Info().State != Established {
		time.Sleep(time.Millisecond)
	}
	// An UPDATE of 100 bytes, a typical EVPN MAC/IP advertisement size.
	upd := make([]byte, 100)
	copy(upd, mustHex(b, marker+"0064"+"02"+"0000"+"004d")) // length 100, UPDATE, no withdrawn, 77 bytes of attributes (zeros: not decoded here)
	batch := make([][]byte, 256)
	for i := range batch {
		batch[i] = upd
	}
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += len(batch) {
		pa.Send(batch[:min(len(batch), b.N-sent)]...)
	}
	<-hb.done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

func listenB(b *testing.B, addr string) net.Listener {
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func acceptLoop(ln net.Listener, p *Peer) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.Accept(c)
	}
}
