package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// TestDemoCheck runs `bagpipe-demo --check` (what `make demo-check` runs),
// the whole system end to end: a route reflector, bagpipe-controller with
// its embedded etcd, compute nodes running bagpipe-bgp (linux E-VPN
// dataplane) and bagpipe-agent, two networks sharing one subnet and their
// VMs' ports created with the bagpipe CLI. Every port must become ACTIVE,
// the VMs of one network must ping each other across nodes and not the
// other network's, and everything must be torn down: no pid file, no
// bpdemo-* namespace, no controller data left. It runs once with gobgpd
// as route reflector (three nodes) and once with bagpipe-fakerr (two).
func TestDemoCheck(t *testing.T) {
	bin := testenv.BuildBinaries(t)
	if _, err := exec.LookPath("gobgpd"); err != nil {
		t.Fatalf("gobgpd is missing (%v): apt-get install gobgpd", err)
	}
	for _, tc := range []struct {
		rr   string
		want []string // besides the checks every run has
	}{
		{"gobgpd", []string{"Route reflector: gobgpd", "Node C:", "vm3 (node B) pings vm4 (node C)", "port vm4 is ACTIVE: attached by the agent of bpdemo-C"}},
		{"fakerr", []string{"Route reflector: bagpipe-fakerr", "vm3 (node B) pings vm4 (node A)", "port vm4 is ACTIVE: attached by the agent of bpdemo-A"}},
	} {
		t.Run(tc.rr, func(t *testing.T) {
			dir := t.TempDir()
			b, err := exec.Command(filepath.Join(bin, "bagpipe-demo"), "--check", "--rr", tc.rr, "--dir", dir).CombinedOutput()
			out := string(b)
			if err != nil {
				t.Fatalf("bagpipe-demo --check --rr %s failed: %v\n%s", tc.rr, err, out)
			}
			if !strings.Contains(out, "All checks passed.") || strings.Contains(out, "[FAIL]") {
				t.Fatalf("unexpected demo output:\n%s", out)
			}
			if pids, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(pids) != 0 {
				t.Fatalf("demo left pid files behind: %v", pids)
			}
			if nss, _ := filepath.Glob("/run/netns/bpdemo-*"); len(nss) != 0 {
				t.Fatalf("demo left namespaces behind: %v", nss)
			}
			if _, err := os.Stat(filepath.Join(dir, "controller-data")); !os.IsNotExist(err) {
				t.Fatalf("demo left the controller's data behind (stat: %v)", err)
			}
			want := append([]string{
				"Controller: bagpipe-controller in namespace bpdemo-ctl",
				"port create --network net1 --name vm1 --ip 10.10.0.11 --host bpdemo-A --netns bpdemo-vm1",
				"[PASS] port vm1 is ACTIVE",
				"[PASS] vm1 (node A) pings vm2 (node B), both in network net1",
				"[PASS] vm2 (node B) pings vm1 (node A), both in network net1",
				"[PASS] vm1 (net1) cannot reach vm3 (net2",
				"[PASS] vm4 (net2) cannot reach vm2 (net1",
			}, tc.want...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Fatalf("demo output lacks %q:\n%s", w, out)
				}
			}
			if n := strings.Count(out, "[PASS]"); n != 16 {
				t.Fatalf("demo printed %d passed checks, want 16 (4 ports, 4 pings, 8 isolations):\n%s", n, out)
			}
		})
	}
}
