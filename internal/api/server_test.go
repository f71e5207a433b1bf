package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/api/lg"
)

// TestRoutes: the §2.1 table (GET bodies, 405 with Allow) plus unknown
// paths.
func TestRoutes(t *testing.T) {
	tests := []struct {
		method, path string
		status       int
		body         string // exact, for 200s
		allow        string // for 405s
	}{
		{"GET", "/", 200, "{}", ""},
		{"HEAD", "/", 200, "{}", ""}, // the recorder keeps the body; net/http drops it
		{"POST", "/", 405, "", "GET, HEAD"},
		{"PUT", "/", 405, "", "GET, HEAD"},
		{"DELETE", "/", 405, "", "GET, HEAD"},
		{"POST", "/ping", 405, "", "GET, HEAD"},
		{"PUT", "/ping", 405, "", "GET, HEAD"},
		{"DELETE", "/ping", 405, "", "GET, HEAD"},
		{"GET", "/attach_localport", 200, "{}", ""},
		{"GET", "/detach_localport", 200, "{}", ""},
		{"GET", "/attach_localport/", 200, "{}", ""},
		{"GET", "/detach_localport.json", 200, "{}", ""},
		{"PUT", "/attach_localport", 405, "", "GET, HEAD, POST"},
		{"DELETE", "/attach_localport", 405, "", "GET, HEAD, POST"},
		{"PATCH", "/detach_localport", 405, "", "GET, HEAD, POST"},
		{"DELETE", "/detach_localport", 405, "", "GET, HEAD, POST"},
		{"POST", "/looking-glass", 405, "", "GET, HEAD"},
		{"PUT", "/looking-glass/summary", 405, "", "GET, HEAD"},
		{"DELETE", "/looking-glass/summary", 405, "", "GET, HEAD"},
		{"GET", "/nope", 404, "", ""},
		{"GET", "/pingx", 404, "", ""},
		{"GET", "/looking-glassx", 404, "", ""},
	}
	root := &lg.Object{Map: map[string]lg.Entry{"summary": lg.ItemEntry(
		func(context.Context, lg.Ref) (any, error) { return map[string]any{"n": 1}, nil })}}
	s := New(Config{Backend: newBackend(), LookingGlass: lg.NewTree(root), Log: quietLog()})
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := call(t, s.Handler(), tc.method, tc.path, "", "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			switch tc.status {
			case 200:
				if r.ctype != "application/json" || r.body != tc.body {
					t.Errorf("got %q %q, want application/json %q", r.ctype, r.body, tc.body)
				}
			case 405:
				if r.allow != tc.allow {
					t.Errorf("Allow %q, want %q", r.allow, tc.allow)
				}
				e := decodeError(t, r)
				if e.Code != 405 || e.Title != "Method Not Allowed" {
					t.Errorf("error %+v", e)
				}
			case 404:
				if e := decodeError(t, r); e.Code != 404 || e.Title != "Not Found" {
					t.Errorf("error %+v", e)
				}
			}
		})
	}
}

func TestPing(t *testing.T) {
	get := func(s *Server) int64 {
		t.Helper()
		r := call(t, s.Handler(), "GET", "/ping", "", "")
		if r.status != 200 || r.ctype != "application/json" {
			t.Fatalf("GET /ping: %d %q", r.status, r.ctype)
		}
		// Parse as a JSON number the way a careful client does.
		var n json.Number
		if err := json.Unmarshal([]byte(r.body), &n); err != nil {
			t.Fatalf("GET /ping body %q is not a JSON number: %v", r.body, err)
		}
		v, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			t.Fatalf("GET /ping body %q is not an integer: %v", r.body, err)
		}
		return v
	}
	a, b := newTestServer(newBackend()), newTestServer(newBackend())
	pa := get(a)
	for i := 0; i < 5; i++ {
		if v := get(a); v != pa {
			t.Fatalf("ping changed within a server: %d then %d", pa, v)
		}
	}
	if pa != a.Ping() {
		t.Errorf("Ping() = %d, served %d", a.Ping(), pa)
	}
	if pb := get(b); pb == pa {
		t.Errorf("two servers drew the same ping value %d", pa)
	}
	// Never the agent's sentinels, over many draws.
	seen := map[int64]bool{}
	for i := 0; i < 1000; i++ {
		v := newPing()
		if v <= 0 {
			t.Fatalf("ping value %d is not positive", v)
		}
		seen[v] = true
	}
	if len(seen) < 1000 {
		t.Errorf("only %d distinct values in 1000 draws", len(seen))
	}
}

func TestBodyLimit(t *testing.T) {
	// Exactly the limit: accepted (valid JSON padded with spaces).
	body := ipvpnBody.json()
	ok := body + strings.Repeat(" ", MaxBodyBytes-len(body))
	b := newBackend()
	h := newTestServer(b).Handler()
	if r := call(t, h, "POST", "/attach_localport", ok, ""); r.status != 200 {
		t.Fatalf("body of exactly %d bytes: status %d (%s)", MaxBodyBytes, r.status, r.body)
	}
	r := call(t, h, "POST", "/attach_localport", ok+" ", "")
	if r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("body of %d bytes: status %d, want 413", MaxBodyBytes+1, r.status)
	}
	if e := decodeError(t, r); e.Description != "API error: the request body exceeds the limit of 1048576 bytes" {
		t.Errorf("description %q", e.Description)
	}
	if b.calls() != 1 {
		t.Errorf("backend calls %d, want 1", b.calls())
	}
}

// TestConcurrentAttaches: many parallel requests through one server, run
// with -race; every request reaches the backend exactly once, intact.
func TestConcurrentAttaches(t *testing.T) {
	b := newBackend()
	h := newTestServer(b).Handler()
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/attach_localport"
			if i%4 == 3 {
				path = "/detach_localport"
			}
			body := ipvpnBody.with("vpn_instance_id", fmt.Sprintf("vpn-%d", i), "import_rt", fmt.Sprintf("64512:%d", i)).json()
			if r := call(t, h, "POST", path, body, ""); r.status != 200 {
				errs <- fmt.Sprintf("request %d: %d %s", i, r.status, r.body)
			}
			call(t, h, "GET", "/ping", "", "")
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if len(b.attaches) != n*3/4 || len(b.detaches) != n/4 {
		t.Fatalf("backend got %d attaches %d detaches, want %d and %d", len(b.attaches), len(b.detaches), n*3/4, n/4)
	}
	seen := map[string]bool{}
	for _, a := range b.attaches {
		var i int
		if _, err := fmt.Sscanf(a.InstanceID, "vpn-%d", &i); err != nil {
			t.Fatalf("instance id %q", a.InstanceID)
		}
		if len(a.ImportRTs) != 1 || a.ImportRTs[0].Number() != uint32(i) {
			t.Errorf("request %d got import RTs %v", i, a.ImportRTs)
		}
		seen[a.InstanceID] = true
	}
	if len(seen) != n*3/4 {
		t.Errorf("%d distinct attaches, want %d", len(seen), n*3/4)
	}
}

// TestServe: a real listener on loopback, then graceful shutdown through
// the context.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(newBackend())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/ping")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != strconv.FormatInt(s.Ping(), 10) {
		t.Errorf("GET /ping over TCP: %d %q, want %d", resp.StatusCode, body, s.Ping())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("listener still accepting after shutdown")
	}
}

// BenchmarkAttach measures one attach through the handler (decode,
// validate, normalise, backend call) with the Neutron agent's body.
func BenchmarkAttach(b *testing.B) {
	be := newBackend()
	h := newTestServer(be).Handler()
	body := ipvpnBody.json()
	b.ReportAllocs()
	for b.Loop() {
		if r := call(b, h, "POST", "/attach_localport", body, ""); r.status != 200 {
			b.Fatalf("status %d", r.status)
		}
		be.attaches = be.attaches[:0]
	}
}
