package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// recBackend records what the API hands to the VPN manager.
type recBackend struct {
	mu       sync.Mutex
	drivers  map[vpn.Type]bool
	err      error // returned by Attach and Detach
	attaches []vpn.AttachRequest
	detaches []vpn.DetachRequest
}

func newBackend(types ...vpn.Type) *recBackend {
	if len(types) == 0 {
		types = []vpn.Type{vpn.EVPN, vpn.IPVPN}
	}
	b := &recBackend{drivers: map[vpn.Type]bool{}}
	for _, t := range types {
		b.drivers[t] = true
	}
	return b
}

func (b *recBackend) Attach(_ context.Context, req vpn.AttachRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attaches = append(b.attaches, req)
	return b.err
}

func (b *recBackend) Detach(_ context.Context, req vpn.DetachRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.detaches = append(b.detaches, req)
	return b.err
}

func (b *recBackend) HasDriver(t vpn.Type) bool { return b.drivers[t] }

func (b *recBackend) calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.attaches) + len(b.detaches)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestServer(b Backend) *Server { return New(Config{Backend: b, Log: quietLog()}) }

type response struct {
	status int
	ctype  string
	allow  string
	body   string
}

// call runs one request through the handler; accept "" sends no Accept
// header.
func call(t testing.TB, h http.Handler, method, path, body, accept string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{
		status: rec.Code,
		ctype:  rec.Header().Get("Content-Type"),
		allow:  rec.Header().Get("Allow"),
		body:   rec.Body.String(),
	}
}

// errorBody decodes a JSON error body.
type errorBody struct {
	Code        int    `json:"code"`
	Title       string `json:"title"`
	Description string `json:"description"`
}

func decodeError(t testing.TB, r response) errorBody {
	t.Helper()
	if r.ctype != "application/json" {
		t.Fatalf("error Content-Type = %q, want application/json (body %q)", r.ctype, r.body)
	}
	var e errorBody
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q is not the JSON error object: %v", r.body, err)
	}
	return e
}

// obj is a request body under construction.
type obj map[string]any

// with returns a copy of o with the given key/value pairs set; a value of
// del removes the key.
func (o obj) with(kv ...any) obj {
	n := maps.Clone(o)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == del {
			delete(n, k)
			continue
		}
		n[k] = kv[i+1]
	}
	return n
}

type delMarker struct{}

var del = delMarker{}

func (o obj) json() string {
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// ipvpnBody is what the Neutron OVS agent sends (reference §2.3.3).
var ipvpnBody = obj{
	"vpn_type":        "ipvpn",
	"vpn_instance_id": "ipvpn_net1",
	"mac_address":     "fa:16:3e:12:34:56",
	"ip_address":      "10.0.0.5",
	"gateway_ip":      "10.0.0.1",
	"local_port": map[string]any{"linuxif": "patch2tun:3",
		"ovs": map[string]any{"plugged": true, "port_number": 2, "vlan": 3}},
	"fallback": map[string]any{"dst_mac": "fa:16:3e:aa:bb:cc", "src_mac": "00:00:5e:2a:10:00",
		"ovs_port_number": 4},
	"import_rt":            []any{"64512:1"},
	"export_rt":            []any{"64512:1"},
	"local_pref":           200,
	"description":          map[string]any{"port": "0d3b-port"},
	"instance_description": "BGPVPN ipvpn associations for net1",
}

// evpnBody is an E-VPN attachment (linuxbridge agent form).
var evpnBody = obj{
	"vpn_type":        "evpn",
	"vpn_instance_id": "evpn_net1",
	"mac_address":     "fa:16:3e:12:34:56",
	"ip_address":      "10.0.0.5",
	"local_port":      map[string]any{"linuxif": "tap0d3b1234-56"},
	"linuxbr":         "brq9c1a1234-56",
	"vni":             1001,
	"import_rt":       []any{"64512:1001"},
	"export_rt":       []any{"64512:1001"},
}
