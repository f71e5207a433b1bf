package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestPprofEndpoint: --pprof-addr serves the heap profile (with the
// runtime's memory statistics) and the index; a port in use is an error
// at start naming the flag.
func TestPprofEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr, err := servePprof(ctx, "127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/debug/pprof/heap?debug=1", "# HeapAlloc = "},
		{"/debug/pprof/", "goroutine"},
		{"/debug/pprof/cmdline", ""},
	} {
		resp, err := http.Get("http://" + addr.String() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), tc.want) {
			t.Fatalf("GET %s: %s, body lacks %q:\n%.300s", tc.path, resp.Status, tc.want, body)
		}
	}
	if _, err := servePprof(ctx, addr.String(), log); err == nil || !strings.Contains(err.Error(), "--pprof-addr") {
		t.Fatalf("second listener on %s: err %v, want an error naming --pprof-addr", addr, err)
	}
}

// TestHelpDocumentsPprof: --help lists --pprof-addr and says it is off
// by default.
func TestHelpDocumentsPprof(t *testing.T) {
	r, w, _ := os.Pipe()
	old := os.Stdout
	os.Stdout = w
	code := run([]string{"--help"}, os.Stderr)
	w.Close()
	os.Stdout = old
	out, _ := io.ReadAll(r)
	if code != 0 || !strings.Contains(string(out), "-pprof-addr HOST:PORT") || !strings.Contains(string(out), "off by default") {
		t.Fatalf("--help (exit code %d) does not document --pprof-addr:\n%s", code, out)
	}
}
