package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
	"github.com/vishvananda/netlink"
)

const waitDaemon = 30 * time.Second

// daemon is a bagpipe-bgp process with dummy dataplane drivers, no peers.
type daemon struct {
	bin     string // directory of the built binaries
	conf    string
	apiPort int
	node    string // network namespace it runs in ("" for the test's)
	proc    *testenv.Process
}

// requireRoot fails (does not skip) when the test cannot create
// namespaces and interfaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and veth pairs: run it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2's ip is needed (apt-get install iproute2): %v", err)
	}
}

// startDaemon runs bagpipe-bgp, inside network namespace node when not
// empty (API on 127.0.0.1 there), and waits for its API.
func startDaemon(t *testing.T, node string) *daemon {
	t.Helper()
	d := &daemon{bin: testenv.BuildBinaries(t), apiPort: testenv.FreePort(t), node: node}
	d.conf = testenv.WriteBagpipeConf(t, t.TempDir(), testenv.BagpipeConf{
		LocalAddress: netip.MustParseAddr("127.0.0.1"),
		APIHost:      "127.0.0.1",
		APIPort:      d.apiPort,
	})
	name, args := d.wrap(filepath.Join(d.bin, "bagpipe-bgp"), "--config-file", d.conf)
	d.proc = testenv.StartProcess(t, name, args, nil)
	testenv.WaitFor(t, waitDaemon, "bagpipe-bgp API", func() (bool, error) {
		if d.proc.Exited() {
			return false, fmt.Errorf("bagpipe-bgp exited:\n%s", d.proc.Log())
		}
		out, status := d.run(t, "bagpipe-looking-glass", "--port", strconv.Itoa(d.apiPort), "summary")
		return status == 0, fmt.Errorf("looking glass: status %d: %s", status, out)
	})
	return d
}

// wrap prefixes a command with "ip netns exec <node>" when needed.
func (d *daemon) wrap(name string, args ...string) (string, []string) {
	if d.node == "" {
		return name, args
	}
	return "ip", append([]string{"netns", "exec", d.node, name}, args...)
}

// run runs one of the built tools (in the daemon's namespace) and returns
// its combined output and exit status.
func (d *daemon) run(t *testing.T, tool string, args ...string) (string, int) {
	t.Helper()
	name, args := d.wrap(filepath.Join(d.bin, tool), args...)
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("cannot run %s %q: %v", name, args, err)
	}
	return string(out), 0
}

// attach runs bagpipe-rest-attach against the daemon.
func (d *daemon) attach(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return d.run(t, "bagpipe-rest-attach", append([]string{"--api-port", strconv.Itoa(d.apiPort)}, args...)...)
}

// lg runs bagpipe-looking-glass against the daemon.
func (d *daemon) lg(t *testing.T, args ...string) string {
	t.Helper()
	out, status := d.run(t, "bagpipe-looking-glass", append([]string{"--port", strconv.Itoa(d.apiPort)}, args...)...)
	if status != 0 {
		t.Fatalf("bagpipe-looking-glass %q: status %d: %s", args, status, out)
	}
	return out
}

// uniqueName is a namespace/instance name unique to this test process.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, os.Getpid())
}

// addNamespace creates a named namespace with lo up and registers its
// deletion.
func addNamespace(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", name, err, out)
	}
}

// cleanupNetnsPort removes what a netns port test may leave behind.
func cleanupNetnsPort(t *testing.T, vmNS, hostIf string) {
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(hostIf); err == nil {
			netlink.LinkDel(l)
		}
		exec.Command("ip", "netns", "del", vmNS).Run()
		os.Remove("/run/bagpipe-rest-attach/netns/" + vmNS)
	})
}

// requestLine returns the "request: " line of the tool's output.
func requestLine(t *testing.T, out string) string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if r, ok := strings.CutPrefix(l, "request: "); ok {
			return r
		}
	}
	t.Fatalf("no request line in:\n%s", out)
	return ""
}
