package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lgServer serves a small looking-glass tree; "BASE" in bodies is
// replaced by the server's URL. Unknown paths get upstream's 404.
func lgServer(t *testing.T, tree map[string]string) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := tree[r.URL.EscapedPath()]
		switch {
		case !ok:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code": 404, "title": "Not Found", "description": "No such looking glass object"}`)
		case strings.HasPrefix(body, "500:"):
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, strings.TrimPrefix(body, "500:"))
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, strings.ReplaceAll(body, "BASE", srv.URL))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// lgRun runs the looking glass against srv with args (path elements and
// options) and returns its output and exit status.
func lgRun(t *testing.T, srv *httptest.Server, args ...string) (string, int) {
	t.Helper()
	u, _ := url.Parse(srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	var out, errOut strings.Builder
	o, err := ParseLGArgs(append([]string{"--server", host, "--port", port, "--prefix", "lg"}, args...), &errOut, &errOut)
	if err != nil {
		t.Fatalf("ParseLGArgs: %v: %s", err, errOut.String())
	}
	status := RunLookingGlass(o, NewClient(o.Server, o.Port), &out)
	return out.String(), status
}

// lgTree: "up" points above the starting URL and "ext" elsewhere: -r
// follows neither. "/lg/redir" is a top-level href, followed once.
var lgTree = map[string]string{
	"/lg/t":            `{"a": {"href": "BASE/lg/t/a"}, "ext": {"href": "http://192.0.2.1/x"}, "v": 1}`,
	"/lg/t/a":          `{"items": {"href": "BASE/lg/t/a/items"}, "n": "x", "up": {"id": "root", "href": "BASE/lg/t"}}`,
	"/lg/t/a/items":    `[{"id": "i1", "href": "BASE/lg/t/a/items/i1"}, {"id": "i2", "state": "up", "href": "BASE/lg/t/a/items/i2"}]`,
	"/lg/t/a/items/i1": `{"k": "v1", "l": [1, 2]}`,
	"/lg/t/a/items/i2": `[]`,
	"/lg/redir":        `{"href": "BASE/lg/t/a/items/i1"}`,
	"/lg/broken":       `{"ok": {"href": "BASE/lg/broken/ok"}, "bad": {"id": "b", "href": "BASE/lg/broken/bad"}}`,
	"/lg/broken/ok":    `"fine"`,
	"/lg/broken/bad":   `500:Server error`,
	"/lg/a%20b/c/d":    `{"x": "y"}`,
	"/lg/fail":         `500:Server error`,
}

// TestLookingGlass: output and status for each case. The -r output is
// what upstream's tool printed for the same tree (served by python3 -m
// http.server with the same href structure).
func TestLookingGlass(t *testing.T) {
	srv := lgServer(t, lgTree)
	tests := []struct {
		name   string
		args   []string
		want   string
		status int
	}{
		{"no recursion", []string{"t"}, "a:  (...)\next:  (...)\nv: 1\n", 0},
		{"recursion under the starting URL only", []string{"-r", "t"}, `a: 
    items: 
        * i1
            k: v1
            l: 
              * 1
              * 2
        * i2-
    n: x
    up: root (...)
ext:  (...)
v: 1
`, 0},
		{"options after path elements", []string{"t", "a", "--recurse"}, `items: 
    * i1
        k: v1
        l: 
          * 1
          * 2
    * i2-
n: x
up: root (...)
`, 0},
		{"top-level href followed once", []string{"redir"}, "k: v1\nl: \n  * 1\n  * 2\n", 0},
		{"href that fails under -r", []string{"-r", "broken"}, "ok: fine\nbad: b (ERROR 500)\n", 0},
		{"path elements are quoted", []string{"a b", "c/d"}, "x: y\n", 0},
		{"404", []string{"nope", "x y"}, "No such looking glass path: nope x%20y\n(" + srv.URL + "/lg/nope/x%20y)\n", 1},
		{"other HTTP error", []string{"fail"}, "Error code 500: Server error\n", 1},
		{"-- ends options", []string{"--", "-r"}, "No such looking glass path: -r\n(" + srv.URL + "/lg/-r)\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, status := lgRun(t, srv, tt.args...)
			if got != tt.want || status != tt.status {
				t.Errorf("output (status %d)\n%s\nwant (status %d)\n%s", status, got, tt.status, tt.want)
			}
		})
	}
}

// TestLookingGlassNoServer: a refused connection says so.
func TestLookingGlassNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var out strings.Builder
	o := &LGOptions{Server: "127.0.0.1", Port: port, Prefix: "looking-glass"}
	status := RunLookingGlass(o, NewClient(o.Server, o.Port), &out)
	want := "No server at http://127.0.0.1:" + strconv.Itoa(port) + " : "
	if status != 1 || !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "refused") {
		t.Errorf("status %d output %q, want 1 and %q... connection refused", status, out.String(), want)
	}
}

// TestLGPortFromConfig: --port defaults to [API] port of the config file.
func TestLGPortFromConfig(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bgp.conf")
	if err := os.WriteFile(conf, []byte("[api]\nport = 9999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := ParseLGArgs([]string{"--config-file", conf, "vpns", "-r", "instances"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Port != 9999 || !o.Recurse || strings.Join(o.Path, "/") != "vpns/instances" {
		t.Errorf("options %+v", o)
	}
	if got := o.LGURL(); got != "http://127.0.0.1:9999/looking-glass/vpns/instances" {
		t.Errorf("URL %s", got)
	}
	o.Path = nil
	if got := o.LGURL(); got != "http://127.0.0.1:9999/looking-glass/" {
		t.Errorf("URL without path %s, want upstream's trailing slash", got)
	}
	if _, err := ParseLGArgs([]string{"--config-file", conf + ".missing"}, io.Discard, io.Discard); err == nil {
		t.Error("an explicit --config-file that does not exist was accepted")
	}
}

// TestPyQuote: urllib.parse.quote with its default safe "/".
func TestPyQuote(t *testing.T) {
	for in, want := range map[string]string{
		"vpns": "vpns", "a b": "a%20b", "x/y": "x/y", "~_.-": "~_.-",
		"l2vpn/evpn,*": "l2vpn/evpn%2C%2A", "caf\u00e9": "caf%C3%A9", "%": "%25",
	} {
		if got := pyQuote(in); got != want {
			t.Errorf("pyQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
