package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

// fakeController serves one host's feed (a listing, then the lines the
// test pushes) and records status reports.
type fakeController struct {
	mu      sync.Mutex
	listing ctlclient.HostAttachments
	lines   chan ctlclient.FeedLine
	status  map[string]string
}

func (f *fakeController) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Query().Get("watch") == "true":
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case l := <-f.lines:
				b, _ := json.Marshal(l)
				fmt.Fprintf(w, "%s\n", b)
				w.(http.Flusher).Flush()
			case <-r.Context().Done():
				return
			}
		}
	case r.Method == http.MethodGet:
		f.mu.Lock()
		defer f.mu.Unlock()
		json.NewEncoder(w).Encode(f.listing)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/ports/"):
		var body struct{ Status string }
		json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.status[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/ports/"), "/status")] = body.Status
		f.mu.Unlock()
		io.WriteString(w, "{}")
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeController) statusOf(port string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status[port]
}

// fakeBGP records attach and detach bodies and answers each port (by
// its description.port, or its local port for detaches) with a status.
type fakeBGP struct {
	mu      sync.Mutex
	ping    string
	answer  map[string]int // port → HTTP status (default 200)
	calls   []string       // "attach <port>" / "detach <body>"
	attachN map[string]int
}

func (f *fakeBGP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/ping":
		io.WriteString(w, f.ping)
		return
	case "/looking-glass/vpns/instances":
		io.WriteString(w, `[{"id": "evpn_n", "name": "EVI-1", "href": "x"}]`)
		return
	case "/looking-glass/vpns/instances/evpn_n":
		io.WriteString(w, `{"instance_type": "EVI", "external_instance_id": "evpn_n"}`)
		return
	case "/looking-glass/vpns/instances/evpn_n/ports":
		// A stale endpoint of port z, one of a (desired) and one made by
		// hand.
		io.WriteString(w, `{"tapz": {"endpoints": [{"mac_address": "fa:16:3e:00:00:09", "ip_address": "10.0.0.9/32", "description": {"port": "z"}}]},
			"tapa": {"endpoints": [{"mac_address": "fa:16:3e:00:00:01", "ip_address": null, "description": {"port": "a"}}]},
			"manual": {"endpoints": [{"mac_address": "fa:16:3e:00:00:08", "ip_address": "10.0.0.8/32", "description": null}]}}`)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var m struct {
		Description struct{ Port string }    `json:"description"`
		LocalPort   struct{ Linuxif string } `json:"local_port"`
	}
	json.Unmarshal(b, &m)
	port := m.Description.Port
	if r.URL.Path == "/detach_localport" {
		port = strings.TrimPrefix(m.LocalPort.Linuxif, "tap")
		f.calls = append(f.calls, "detach "+string(b))
	} else {
		f.calls = append(f.calls, "attach "+port)
		f.attachN[port]++
	}
	if st, ok := f.answer[port]; ok && st != 200 {
		http.Error(w, "refused "+port, st)
		return
	}
	io.WriteString(w, "null")
}

func (f *fakeBGP) count(port string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attachN[port]
}

func (f *fakeBGP) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// body is port p's attachment (its local port is "tap"+p).
func body(p string, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"vpn_type":"evpn","vpn_instance_id":"evpn_n","mac_address":"fa:16:3e:00:00:01",`+
		`"local_port":{"linuxif":"tap%s"},"import_rt":["64512:1"],"export_rt":["64512:1"],"description":{"port":%q}%s}`, p, p, extra))
}

func put(p, extra string) ctlclient.FeedEvent {
	return ctlclient.FeedEvent{Type: "put", PortID: p, NetworkID: "n", Attachments: []json.RawMessage{body(p, extra)}}
}

// eventually polls cond until it holds; the bound is generous (a slow
// machine must not fail the test).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoop drives the agent's loops against fake servers: a failing port
// does not hold others up and is retried, a refused one is not resent
// until it changes, a feed delete detaches with the old body, and a new
// /ping value replays everything.
func TestLoop(t *testing.T) {
	ctl := &fakeController{lines: make(chan ctlclient.FeedLine, 16), status: map[string]string{},
		listing: ctlclient.HostAttachments{Host: "h", Revision: 5, Ports: []ctlclient.PortAttachments{
			{PortID: "a", NetworkID: "n", Attachments: []json.RawMessage{body("a", "")}},
			{PortID: "b", NetworkID: "n", Attachments: []json.RawMessage{body("b", "")}},
			{PortID: "r", NetworkID: "n", Attachments: []json.RawMessage{body("r", "")}},
		}}}
	bgp := &fakeBGP{ping: "18446744073709551617", answer: map[string]int{"a": 500, "r": 400}, attachN: map[string]int{}}
	cs, bs := httptest.NewServer(ctl), httptest.NewServer(bgp)
	defer cs.Close()
	defer bs.Close()
	ag, err := New(Config{Controller: ctlclient.New(cs.URL, ""), Host: "h", BGP: NewBGPClient(bs.URL),
		PingInterval: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	eventually(t, "b ACTIVE", func() bool { return ctl.statusOf("b") == StatusActive })
	// The stale endpoint of z (and only it) was detached.
	eventually(t, "z reported DOWN", func() bool { return ctl.statusOf("z") == StatusDown })
	bgp.set(func() {
		var detaches []string
		for _, c := range bgp.calls {
			if strings.HasPrefix(c, "detach ") {
				detaches = append(detaches, c)
			}
		}
		want := `detach {"ip_address":"10.0.0.9/32","local_port":{"linuxif":"tapz"},"mac_address":"fa:16:3e:00:00:09","vpn_instance_id":"evpn_n","vpn_type":"evpn"}`
		if len(detaches) != 1 || detaches[0] != want {
			t.Errorf("detaches at start: %q, want only %s", detaches, want)
		}
	})
	eventually(t, "a retried after its 500", func() bool { return bgp.count("a") >= 3 })
	if ctl.statusOf("a") != StatusDown || ctl.statusOf("r") != StatusDown {
		t.Errorf("failing ports: a %q, r %q; want DOWN", ctl.statusOf("a"), ctl.statusOf("r"))
	}
	bgp.set(func() { bgp.answer["a"] = 200 })
	eventually(t, "a ACTIVE once bagpipe-bgp accepts it", func() bool { return ctl.statusOf("a") == StatusActive })

	// The refused port is not sent again for unrelated news...
	ctl.lines <- ctlclient.FeedLine{Revision: 6, Events: []ctlclient.FeedEvent{}}
	ctl.lines <- ctlclient.FeedLine{Revision: 7, Events: []ctlclient.FeedEvent{put("c", "")}}
	eventually(t, "c ACTIVE", func() bool { return ctl.statusOf("c") == StatusActive })
	if n := bgp.count("r"); n != 1 {
		t.Errorf("the refused attachment was sent %d times, want 1", n)
	}
	// ...but is when it changes.
	bgp.set(func() { bgp.answer["r"] = 200 })
	ctl.lines <- ctlclient.FeedLine{Revision: 8, Events: []ctlclient.FeedEvent{put("r", `,"ip_address":"10.0.0.9"`)}}
	eventually(t, "r ACTIVE after it changed", func() bool { return ctl.statusOf("r") == StatusActive })

	// A delete detaches with the identifying fields of the old body.
	ctl.lines <- ctlclient.FeedLine{Revision: 9, Events: []ctlclient.FeedEvent{{Type: "delete", PortID: "c"}}}
	want := `detach {"local_port":{"linuxif":"tapc"},"mac_address":"fa:16:3e:00:00:01","vpn_instance_id":"evpn_n","vpn_type":"evpn"}`
	eventually(t, "c detached", func() bool {
		bgp.mu.Lock()
		defer bgp.mu.Unlock()
		return strings.Contains(strings.Join(bgp.calls, "\n"), want)
	})
	eventually(t, "c reported DOWN", func() bool { return ctl.statusOf("c") == StatusDown })

	// A new /ping value (a big number: not a float64) replays everything.
	before := map[string]int{"a": bgp.count("a"), "b": bgp.count("b"), "r": bgp.count("r")}
	bgp.set(func() { bgp.ping = "18446744073709551618" })
	eventually(t, "replay after the /ping change", func() bool {
		return bgp.count("a") == before["a"]+1 && bgp.count("b") == before["b"]+1 && bgp.count("r") == before["r"]+1
	})
	if n := bgp.count("c"); n != 1 {
		t.Errorf("the deleted port was attached %d times, want 1 (not replayed)", n)
	}
}
