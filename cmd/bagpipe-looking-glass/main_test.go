package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// startDaemon runs bagpipe-bgp (dummy drivers, no peers) with two E-VPN
// endpoints and one instance attached, and returns the API port and the
// directory of the built binaries.
func startDaemon(t *testing.T) (int, string) {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	port := testenv.FreePort(t)
	conf := testenv.WriteBagpipeConf(t, t.TempDir(), testenv.BagpipeConf{
		LocalAddress: netip.MustParseAddr("127.0.0.1"), APIHost: "127.0.0.1", APIPort: port,
	})
	p := testenv.StartProcess(t, filepath.Join(bin, "bagpipe-bgp"), []string{"--config-file", conf}, nil)
	api := "http://127.0.0.1:" + strconv.Itoa(port)
	testenv.WaitFor(t, 30*time.Second, "bagpipe-bgp API", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("bagpipe-bgp exited:\n%s", p.Log())
		}
		resp, err := http.Get(api + "/ping")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
	for i, mac := range []string{"52:54:00:00:10:01", "52:54:00:00:10:02"} {
		body := fmt.Sprintf(`{"vpn_type": "evpn", "vpn_instance_id": "lgtest", "mac_address": %q, "ip_address": "10.80.0.%d", "local_port": {"linuxif": "tap%d"}, "import_rt": ["64512:80"], "export_rt": ["64512:80"], "description": {"port": "p%d"}}`, mac, i+1, i, i)
		resp, err := http.Post(api+"/attach_localport", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("attach %s: %s", mac, resp.Status)
		}
	}
	return port, bin
}

func run(t *testing.T, name string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cannot run %s: %v", name, err)
	}
	return string(out), 0
}

// TestSameOutputAsUpstream: for the same paths against the same daemon,
// our bagpipe-looking-glass prints exactly what upstream's prints
// (Debian's python3-networking-bagpipe, run as is).
func TestSameOutputAsUpstream(t *testing.T) {
	const py, upstream = "/usr/bin/python3", "/usr/bin/bagpipe-looking-glass"
	for _, f := range []string{py, upstream} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s is needed (apt-get install python3-networking-bagpipe): %v", f, err)
		}
	}
	port, bin := startDaemon(t)
	ours := filepath.Join(bin, "bagpipe-looking-glass")
	p := strconv.Itoa(port)
	paths := [][]string{
		{},
		{"summary"},
		{"vpns", "instances"},
		{"vpns", "instances", "lgtest"},
		{"vpns", "instances", "lgtest", "ports"},
		{"vpns", "instances", "lgtest", "route_targets", "import"},
		{"-r", "vpns"},
		{"bgp", "routes"},
		{"bgp", "--recurse"},
		{"config"},
		{"-r"},
		{"no", "such path"},
	}
	for _, path := range paths {
		args := append([]string{"--port", p}, path...)
		got, status := run(t, ours, args...)
		want, _ := run(t, py, append([]string{upstream}, args...)...)
		if got != want {
			t.Errorf("%q: ours\n%s\nupstream's\n%s", path, got, want)
		}
		wantStatus := 0
		if len(path) > 0 && path[0] == "no" {
			wantStatus = 1
		}
		if status != wantStatus {
			t.Errorf("%q: exit status %d, want %d", path, status, wantStatus)
		}
		if len(got) < 2 {
			t.Errorf("%q: empty output", path)
		}
	}
	// A dead server: same message up to the error text.
	dead := strconv.Itoa(testenv.FreePort(t))
	got, status := run(t, ours, "--port", dead)
	want, _ := run(t, py, upstream, "--port", dead)
	prefix := "No server at http://127.0.0.1:" + dead + " : "
	if status != 1 || !strings.HasPrefix(got, prefix) || !strings.HasPrefix(want, prefix) {
		t.Errorf("no server: ours (status %d) %q, upstream's %q, want both to start with %q", status, got, want, prefix)
	}
}
