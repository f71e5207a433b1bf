package lg

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// peer is a delegate object with local info and a logs subtree.
type peer struct{ ip, state string }

func (p *peer) Local(_ context.Context, ref Ref) (map[string]any, error) {
	return map[string]any{
		"name":     "BGP-" + p.ip,
		"protocol": map[string]any{"state": p.state, "hold_time": 90},
		"families": []any{"ipv4/mpls-vpn", "l2vpn/evpn"},
		// A cross-reference, as upstream get_absolute_path builds them.
		"worker": ref.HrefObject("bgp", "workers", "BGP-"+p.ip),
	}, nil
}

func (p *peer) Entries() map[string]Entry {
	return map[string]Entry{
		"logs": SubtreeEntry(func(context.Context, Ref) (any, error) {
			return []LogRecord{{Level: "WARNING", Name: "bgp", Message: "hold timer expired"}}, nil
		}),
	}
}

type summary struct {
	Count  int            `json:"vpn_instances_count"`
	Routes map[string]int `json:"route_counts"`
}

var errProvider = errors.New("provider exploded")

func testTree() *Tree {
	peers := map[string]*peer{"10.0.0.1": {"10.0.0.1", "Established"}, "10.0.0.2": {"10.0.0.2", "Idle"}}
	bgp := &Object{Map: map[string]Entry{
		"peers": CollectionEntry(Funcs{
			ListFunc: func(context.Context) ([]Item, error) {
				return []Item{
					{ID: "10.0.0.1", Extra: map[string]any{"state": "Established"}},
					{ID: "10.0.0.2", Extra: map[string]any{"state": "Idle"}},
				}, nil
			},
			GetFunc: func(_ context.Context, id string) (Node, bool) {
				p, ok := peers[id]
				return p, ok
			},
		}),
	}}
	vpns := &Object{Map: map[string]Entry{
		"instances": CollectionEntry(Funcs{
			ListFunc: func(context.Context) ([]Item, error) {
				return []Item{{ID: "net 1/a", Extra: map[string]any{"name": "EVI-1"}}}, nil
			},
			GetFunc: func(_ context.Context, id string) (Node, bool) {
				if id != "net 1/a" {
					return nil, false
				}
				return &Object{LocalFunc: func(context.Context, Ref) (map[string]any, error) {
					return map[string]any{"instance_type": "EVI"}, nil
				}}, true
			},
		}),
		"broken": CollectionEntry(Funcs{
			ListFunc: func(context.Context) ([]Item, error) { return nil, errProvider },
			GetFunc:  func(context.Context, string) (Node, bool) { return nil, false },
		}),
	}}
	root := &Object{
		LocalFunc: func(context.Context, Ref) (map[string]any, error) {
			return map[string]any{"local": "x"}, nil
		},
		Map: map[string]Entry{
			"summary": ItemEntry(func(context.Context, Ref) (any, error) {
				return summary{Count: 2, Routes: map[string]int{"local_routes_count": 3}}, nil
			}),
			"version": ValueEntry("1.0"),
			"config": SubtreeEntry(func(context.Context, Ref) (any, error) {
				return map[string]any{"BGP": map[string]any{"peers": []any{"10.0.0.1", "10.0.0.2"}}}, nil
			}),
			"bgp":  DelegateEntry(bgp),
			"vpns": DelegateEntry(vpns),
			"fail": SubtreeEntry(func(context.Context, Ref) (any, error) { return nil, errProvider }),
		},
	}
	tr := NewTree(root)
	tr.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	return tr
}

func get(t *testing.T, h http.Handler, path, host string) (int, string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
}

func TestTreeRendering(t *testing.T) {
	const host = "192.0.2.9:8082"
	const root = "http://" + host + "/looking-glass"
	tests := []struct {
		name, path string
		want       string // JSON
	}{
		{"root: local info, inlined items and values, hrefs", "/looking-glass", `{
			"local": "x",
			"summary": {"vpn_instances_count": 2, "route_counts": {"local_routes_count": 3}},
			"version": "1.0",
			"config": {"href": "` + root + `/config"},
			"bgp": {"href": "` + root + `/bgp"},
			"vpns": {"href": "` + root + `/vpns"},
			"fail": {"href": "` + root + `/fail"}}`},
		{"trailing slash", "/looking-glass/", `null`}, // placeholder, compared below to root
		{"item", "/looking-glass/summary", `{"vpn_instances_count": 2, "route_counts": {"local_routes_count": 3}}`},
		{"index into an item (struct)", "/looking-glass/summary/vpn_instances_count", `2`},
		{"two levels into an item", "/looking-glass/summary/route_counts/local_routes_count", `3`},
		{"value", "/looking-glass/version", `"1.0"`},
		{"subtree", "/looking-glass/config", `{"BGP": {"peers": ["10.0.0.1", "10.0.0.2"]}}`},
		{"list index", "/looking-glass/config/BGP/peers/1", `"10.0.0.2"`},
		{"delegate", "/looking-glass/bgp", `{"peers": {"href": "` + root + `/bgp/peers"}}`},
		{"collection listing", "/looking-glass/bgp/peers", `[
			{"id": "10.0.0.1", "state": "Established", "href": "` + root + `/bgp/peers/10.0.0.1"},
			{"id": "10.0.0.2", "state": "Idle", "href": "` + root + `/bgp/peers/10.0.0.2"}]`},
		{"collection element", "/looking-glass/bgp/peers/10.0.0.2", `{
			"name": "BGP-10.0.0.2", "protocol": {"state": "Idle", "hold_time": 90},
			"families": ["ipv4/mpls-vpn", "l2vpn/evpn"],
			"worker": {"href": "` + root + `/bgp/workers/BGP-10.0.0.2"},
			"logs": {"href": "` + root + `/bgp/peers/10.0.0.2/logs"}}`},
		{"index into an element", "/looking-glass/bgp/peers/10.0.0.1/protocol/state", `"Established"`},
		{"element list index", "/looking-glass/bgp/peers/10.0.0.1/families/0", `"ipv4/mpls-vpn"`},
		{"element subtree of structs", "/looking-glass/bgp/peers/10.0.0.1/logs/0/message", `"hold timer expired"`},
		{"ids are quoted in hrefs", "/looking-glass/vpns/instances", `[
			{"id": "net 1/a", "name": "EVI-1", "href": "` + root + `/vpns/instances/net%201/a"}]`},
		{"extension stripped", "/looking-glass/summary/vpn_instances_count.json", `2`},
		{"html extension stripped", "/looking-glass/version.html", `"1.0"`},
		{"dots in ids kept", "/looking-glass/bgp/peers/10.0.0.1/protocol/hold_time", `90`},
	}
	h := testTree()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, ctype, body := get(t, h, tc.path, host)
			if code != 200 || ctype != "application/json" {
				t.Fatalf("got %d %q %s", code, ctype, body)
			}
			want := tc.want
			if tc.path == "/looking-glass/" {
				_, _, want = get(t, h, "/looking-glass", host)
			}
			var g, w any
			if err := json.Unmarshal([]byte(body), &g); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if err := json.Unmarshal([]byte(want), &w); err != nil {
				t.Fatalf("bad want %q: %v", want, err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got  %s\nwant %s", body, want)
			}
		})
	}
}

func TestTreeErrors(t *testing.T) {
	const host = "lg.example:8082"
	const root = "http://" + host + "/looking-glass"
	tests := []struct {
		path   string
		status int
		desc   string
	}{
		{"/looking-glass/nope", 404, "No such looking glass object: nope at " + root},
		{"/looking-glass/summary/nope", 404, "No such looking glass object: nope at " + root + "/summary"},
		{"/looking-glass/summary/route_counts/x/y", 404, "No such looking glass object: x at " + root + "/summary/route_counts"},
		{"/looking-glass/summary/vpn_instances_count/x", 404, "No such looking glass object: x at " + root + "/summary/vpn_instances_count"},
		{"/looking-glass/config/BGP/peers/2", 404, "No such looking glass object: 2 at " + root + "/config/BGP/peers"},
		{"/looking-glass/config/BGP/peers/-1", 404, "No such looking glass object: -1 at " + root + "/config/BGP/peers"},
		{"/looking-glass/config/BGP/peers/01", 404, "No such looking glass object: 01 at " + root + "/config/BGP/peers"},
		{"/looking-glass/bgp/peers/10.9.9.9", 404, "No such looking glass object: 10.9.9.9 at " + root + "/bgp/peers"},
		{"/looking-glass/bgp/peers/10.0.0.1/nope", 404, "No such looking glass object: nope at " + root + "/bgp/peers/10.0.0.1"},
		{"/looking-glass/fail", 500, "Server error"},
		{"/looking-glass/vpns/broken", 500, "Server error"},
	}
	h := testTree()
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			code, ctype, body := get(t, h, tc.path, host)
			if code != tc.status || ctype != "application/json" {
				t.Fatalf("got %d %q %s, want %d JSON", code, ctype, body, tc.status)
			}
			var e struct {
				Code        int    `json:"code"`
				Title       string `json:"title"`
				Description string `json:"description"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatal(err)
			}
			if e.Code != tc.status || e.Title != http.StatusText(tc.status) || e.Description != tc.desc {
				t.Errorf("got %+v, want %d %q", e, tc.status, tc.desc)
			}
		})
	}
}

func TestTreeMethods(t *testing.T) {
	h := testTree()
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		req := httptest.NewRequest(m, "/looking-glass/summary", strings.NewReader("{}"))
		req.Header.Set("Accept", "text/plain")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
		if want := "405 Method Not Allowed\n\nThe method " + m + " is not allowed for this resource.\n"; rec.Body.String() != want {
			t.Errorf("%s: text body %q, want %q", m, rec.Body.String(), want)
		}
	}
}

// TestHTTPSHref: the scheme follows the request.
func TestHTTPSHref(t *testing.T) {
	srv := httptest.NewTLSServer(testTree())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/looking-glass/bgp")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if got, want := v["peers"]["href"], srv.URL+"/looking-glass/bgp/peers"; got != want {
		t.Errorf("href %q, want %q", got, want)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1"},
		{"a b", "a%20b"},
		{"x/y", "x/y"}, // Python quote keeps "/"
		{"ipv4/mpls-vpn,64512:1", "ipv4/mpls-vpn%2C64512%3A1"},
		{"é~_", "%C3%A9~_"},
	}
	for _, tc := range tests {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestStripExt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/looking-glass/summary.json", "/looking-glass/summary"},
		{"/looking-glass/summary.JSON", "/looking-glass/summary"},
		{"/looking-glass/logs.html", "/looking-glass/logs"},
		{"/looking-glass/summary.json/", "/looking-glass/summary/"},
		{"/looking-glass/bgp/peers/10.0.0.1", "/looking-glass/bgp/peers/10.0.0.1"},
		{"/looking-glass/a.json/b", "/looking-glass/a.json/b"}, // only the last segment
		{"/looking-glass/.json", "/looking-glass/.json"},
		{"/ping.json", "/ping"},
		{"/", "/"},
	}
	for _, tc := range tests {
		if got := StripExt(tc.in); got != tc.want {
			t.Errorf("StripExt(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWantsJSON(t *testing.T) {
	tests := []struct {
		accept []string
		want   bool
	}{
		{nil, true},
		{[]string{""}, true},
		{[]string{"*/*"}, true},
		{[]string{"application/json"}, true},
		{[]string{"text/html"}, false},
		{[]string{"text/plain", "application/json;q=0.9"}, false},
		{[]string{"text/plain;q=0.9", "application/json"}, true},
		{[]string{"garbage"}, true},
		{[]string{"image/*"}, false},
		{[]string{"*/*;q=0.1, text/*;q=0.5"}, false},
		{[]string{"*/*;q=0.5, text/*;q=0.1"}, true},
	}
	for _, tc := range tests {
		if got := WantsJSON(tc.accept); got != tc.want {
			t.Errorf("WantsJSON(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

// BenchmarkResolveIndexed measures a deep looking-glass lookup through a
// struct-valued item (JSON round trip for indexing).
func BenchmarkResolveIndexed(b *testing.B) {
	h := testTree()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/looking-glass/summary/route_counts/local_routes_count", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
