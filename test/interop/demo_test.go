package interop

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// TestDemoCheck runs `bagpipe-demo --check` (what `make demo-check` runs):
// the lab (network namespaces, linux E-VPN dataplane, VMs pinging) must
// come up, every check pass, and everything be torn down: no pid file, no
// bpdemo-* namespace left.
func TestDemoCheck(t *testing.T) {
	bin := testenv.BuildBinaries(t)
	dir := t.TempDir()
	out, err := exec.Command(filepath.Join(bin, "bagpipe-demo"), "--check", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("bagpipe-demo --check failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "All checks passed.") || strings.Contains(string(out), "[FAIL]") {
		t.Fatalf("unexpected demo output:\n%s", out)
	}
	if pids, _ := filepath.Glob(filepath.Join(dir, "*.pid")); len(pids) != 0 {
		t.Fatalf("demo left pid files behind: %v", pids)
	}
	if nss, _ := filepath.Glob("/run/netns/bpdemo-*"); len(nss) != 0 {
		t.Fatalf("demo left namespaces behind: %v", nss)
	}
	for _, want := range []string{"pings vm2", "cannot reach vm3"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}
