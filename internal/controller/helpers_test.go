package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bagpipe-go/bagpipe/internal/controller/alloc"
	"github.com/bagpipe-go/bagpipe/internal/controller/store"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openStore starts an embedded etcd on dir (free ports) or connects to
// endpoint when not "".
func openStore(t testing.TB, dir, endpoint string) *store.Store {
	t.Helper()
	ports := freePorts(t, 2)
	cfg := store.Config{DataDir: dir, Log: quietLog(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
	if endpoint != "" {
		cfg.Endpoints = []string{endpoint}
	}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	return st
}

// env is a controller with its HTTP API.
type env struct {
	t   testing.TB
	st  *store.Store
	c   *Controller
	srv *httptest.Server
}

type opts struct {
	vnis, rtnn string
	asn        uint32
	token      string
	dir        string // embedded data dir ("" → a new temporary one)
	endpoint   string // external etcd
}

func newEnv(t testing.TB, o opts) *env {
	t.Helper()
	if o.dir == "" && o.endpoint == "" {
		o.dir = t.TempDir()
	}
	st := openStore(t, o.dir, o.endpoint)
	e := startEnv(t, st, o)
	t.Cleanup(func() { e.close() })
	return e
}

func startEnv(t testing.TB, st *store.Store, o opts) *env {
	t.Helper()
	if o.vnis == "" {
		o.vnis = "1001:2000"
	}
	if o.asn == 0 {
		o.asn = 64512
	}
	vr, err := alloc.ParseRanges(o.vnis, 1, 1<<24-1)
	if err != nil {
		t.Fatal(err)
	}
	var rr alloc.Ranges
	if o.rtnn != "" {
		if rr, err = alloc.ParseRanges(o.rtnn, 0, 1<<32-1); err != nil {
			t.Fatal(err)
		}
	}
	c, err := New(Config{Client: st.Client, ASNumber: o.asn, VNIRanges: vr, RTNNRanges: rr, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, st: st, c: c, srv: httptest.NewServer(Handler(c, o.token))}
}

func (e *env) close() {
	if e.srv != nil {
		e.srv.Close()
		e.srv = nil
	}
	if e.st != nil {
		e.st.Close()
		e.st = nil
	}
}

// obj is a JSON object.
type obj = map[string]any

// resp is an HTTP answer.
type resp struct {
	status int
	body   obj
	raw    string
}

// errType returns the NeutronError type ("" if none).
func (r resp) errType() string {
	ne, _ := r.body["NeutronError"].(obj)
	s, _ := ne["type"].(string)
	return s
}

func (r resp) errMessage() string {
	ne, _ := r.body["NeutronError"].(obj)
	s, _ := ne["message"].(string)
	return s
}

// do sends a request to base (the env's server unless given).
func do(t testing.TB, base, method, path string, body any, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer r.Body.Close()
	raw, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %v: %s", method, path, err, raw)
		}
	}
	return out
}

func (e *env) do(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	return do(e.t, e.srv.URL, method, path, body, hdr...)
}

// must sends a request that must answer want, and returns the object
// under key (or the whole body when key is "").
func (e *env) must(want int, method, path string, body any, key string) obj {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s %v: status %d, want %d: %s", method, path, body, r.status, want, r.raw)
	}
	if key == "" {
		return r.body
	}
	o, _ := r.body[key].(obj)
	return o
}

func (e *env) network(fields obj) obj {
	e.t.Helper()
	return e.must(201, "POST", "/v2.0/networks", obj{"network": fields}, "network")
}

func (e *env) subnet(netID, cidr string, extra obj) obj {
	e.t.Helper()
	f := obj{"network_id": netID, "cidr": cidr}
	for k, v := range extra {
		f[k] = v
	}
	return e.must(201, "POST", "/v2.0/subnets", obj{"subnet": f}, "subnet")
}

func (e *env) port(netID string, extra obj) obj {
	e.t.Helper()
	f := obj{"network_id": netID}
	for k, v := range extra {
		f[k] = v
	}
	return e.must(201, "POST", "/v2.0/ports", obj{"port": f}, "port")
}

// snapshot returns every key of the store with its mod revision, and the
// store revision: equal snapshots mean nothing was written.
func snapshot(t testing.TB, cli *clientv3.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cli.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "revision %d\n", r.Header.Revision)
	for _, kv := range r.Kvs {
		fmt.Fprintf(&b, "%s @%d = %s\n", kv.Key, kv.ModRevision, kv.Value)
	}
	return b.String()
}

func str(o obj, k string) string { s, _ := o[k].(string); return s }

func num(o obj, k string) int64 { f, _ := o[k].(float64); return int64(f) }

// fixedIP returns the first address of a port.
func fixedIP(p obj) string {
	l, _ := p["fixed_ips"].([]any)
	if len(l) == 0 {
		return ""
	}
	return str(l[0].(obj), "ip_address")
}

// httpClient is for polls that must not hang.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// freePorts returns n distinct free TCP ports of 127.0.0.1.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	seen := map[int]bool{}
	var out []int
	for len(out) < n {
		if p := testenv.FreePort(t); !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
