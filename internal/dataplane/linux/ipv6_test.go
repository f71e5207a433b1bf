package linux

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoIPv6Addresses: our bridge and VXLAN device come up with
// addr_gen_mode none (ip -d link: "addrgenmode none"), and IPv6
// neighbours still work on the VXLAN device.
func TestNoIPv6Addresses(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "nov6", 960, "")
	for _, n := range []string{e.brName, e.vxName} {
		out, err := exec.Command("ip", "-n", ns.name, "-d", "link", "show", "dev", n).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -d link show %s (needs iproute2): %v\n%s", n, err, out)
		}
		if !strings.Contains(string(out), "addrgenmode none") {
			t.Errorf("%s: want addrgenmode none, got:\n%s", n, out)
		}
	}
	apply(t, e, addIP("2001:db8::7", "02:00:00:00:0a:01"))
}
