package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/linux"
)

func ipLinks(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s link: %v: %s", ns, err, out)
	}
	return string(out)
}

// TestCleanupRemovesOwnedStateOnly: what a killed bagpipe-bgp left in a
// namespace (a bridge and VXLAN device of the linux E-VPN driver) is
// removed; an interface bagpipe does not own stays.
func TestCleanupRemovesOwnedStateOnly(t *testing.T) {
	ns := fmt.Sprintf("bpcleanup%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add (needs root and iproute2): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	for _, args := range [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "foreign0", "type", "bridge"},
		{"-n", ns, "addr", "add", "10.77.0.1/32", "dev", "lo"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	drv, err := linux.New(linux.Options{NetNS: ns, LocalAddress: netip.MustParseAddr("10.77.0.1"), AdoptGrace: -1, ReconcileInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := drv.NewEVI(dataplane.EVIConfig{InstanceID: 1, ExternalID: "net-cleanup", VNI: 4242, LocalAddress: netip.MustParseAddr("10.77.0.1")}); err != nil {
		t.Fatal(err)
	}
	drv.Close() // the daemon dies: its interfaces stay
	before := ipLinks(t, ns)
	if !strings.Contains(before, "evpn-") || !strings.Contains(before, "vxln-") {
		t.Fatalf("the driver created no bridge/vxlan device:\n%s", before)
	}
	conf := filepath.Join(t.TempDir(), "bgp.conf")
	os.WriteFile(conf, []byte("[BGP]\nlocal_address = 127.0.0.1\nmy_as = 64512\n[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\n"), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config-file", conf, "--netns", ns}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	after := ipLinks(t, ns)
	if strings.Contains(after, "evpn-") || strings.Contains(after, "vxln-") {
		t.Fatalf("owned interfaces left after cleanup:\n%s", after)
	}
	if !strings.Contains(after, "foreign0") {
		t.Fatalf("cleanup removed an interface bagpipe does not own:\n%s", after)
	}
}

func TestCleanupBadConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config-file", "/nonexistent.conf"}, &stdout, &stderr); code != 1 || stderr.Len() == 0 {
		t.Fatalf("exit %d, stderr %q: want 1 and a message", code, stderr.String())
	}
}
