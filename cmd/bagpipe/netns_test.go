//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// ipCmd runs ip with args and returns its output, failing the test on error.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPortCreateNetns runs, as the lab does, the controller and the CLI in
// a "compute node" network namespace, and checks that port create --netns
// makes the VM namespace with the port's MAC and address behind a veth
// named as the port's tap, binds the port, and that port delete --netns
// removes it all.
func TestPortCreateNetns(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test needs iproute2's ip (apt-get install iproute2): %v", err)
	}
	bin := testenv.BuildBinaries(t)
	sfx := fmt.Sprintf("%d", rand.N(1_000_000))
	node, vm := "bpcli-node-"+sfx, "bpcli-vm-"+sfx
	ipCmd(t, "netns", "add", node)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", vm).Run()
		exec.Command("ip", "netns", "del", node).Run()
	})
	ipCmd(t, "-n", node, "link", "set", "lo", "up")

	dir := t.TempDir()
	ctl := "http://127.0.0.1:9696"
	testenv.StartProcess(t, "ip", []string{"netns", "exec", node, filepath.Join(bin, "bagpipe-controller"),
		"--data-dir", filepath.Join(dir, "etcd")}, nil)
	// cli runs the bagpipe binary in the node's namespace.
	cli := func(args ...string) (string, error) {
		out, err := exec.Command("ip", append([]string{"netns", "exec", node, filepath.Join(bin, "bagpipe"), "--controller", ctl}, args...)...).CombinedOutput()
		return string(out), err
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("bagpipe %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return out
	}
	testenv.WaitFor(t, 90*time.Second, "the controller in "+node, func() (bool, error) {
		out, err := cli("network", "list")
		return err == nil, fmt.Errorf("%v: %s", err, out)
	})
	mustCLI("network", "create", "n1")
	mustCLI("subnet", "create", "--network", "n1", "--cidr", "10.0.0.0/24")
	var port map[string]any
	out := mustCLI("--json", "port", "create", "--network", "n1", "--host", "node1", "--netns", vm)
	if err := json.Unmarshal([]byte(out), &port); err != nil {
		t.Fatalf("port create --json: %v: %s", err, out)
	}
	id, mac := port["id"].(string), port["mac_address"].(string)
	ip := port["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	tap := "tap" + id[:11]
	if port["binding:host_id"] != "node1" {
		t.Errorf("the port is bound to %v, want node1", port["binding:host_id"])
	}

	// The host side, in the node's namespace, is the port's tap: a veth, up.
	link := ipCmd(t, "-n", node, "-d", "link", "show", tap)
	if !strings.Contains(link, "veth") || !strings.Contains(link, "state UP") {
		t.Errorf("%s in %s:\n%s\nwant an up veth", tap, node, link)
	}
	// The VM side has the port's MAC and address, and the gateway route.
	inner := ipCmd(t, "-n", vm, "addr", "show", "tovpn")
	for _, want := range []string{"link/ether " + mac, "inet " + ip + "/24"} {
		if !strings.Contains(inner, want) {
			t.Errorf("tovpn in %s lacks %q:\n%s", vm, want, inner)
		}
	}
	if r := ipCmd(t, "-n", vm, "route", "show", "default"); !strings.Contains(r, "default via 10.0.0.1 dev tovpn") {
		t.Errorf("default route in %s: %q, want via 10.0.0.1", vm, r)
	}

	out = mustCLI("port", "delete", id, "--netns", vm)
	for _, want := range []string{"Deleted port " + id, "Removed local port " + tap, "Removed namespace " + vm} {
		if !strings.Contains(out, want) {
			t.Errorf("port delete --netns output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat("/run/netns/" + vm); !os.IsNotExist(err) {
		t.Errorf("namespace %s still exists after port delete --netns (%v)", vm, err)
	}
	if out, err := exec.Command("ip", "-n", node, "link", "show", tap).CombinedOutput(); err == nil {
		t.Errorf("%s still exists after port delete --netns:\n%s", tap, out)
	}
}
