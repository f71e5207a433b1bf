package linuxipvpn

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// TestLabelDeliveryChoice: the endpoints of one MAC share its label
// (reference §5.4); the label table delivers to a /32 of the MAC first,
// else to the lowest prefix through its link-local neighbour, and goes
// with the label's last endpoint, rule included. A from-port endpoint
// receives nothing, so it has no delivery.
func TestLabelDeliveryChoice(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	veth(t, ns, "tap-b", "eth1", vm)
	v := newVRF(t, d, 4, "10.1.1.1")
	tapA := itoa(link(t, ns, "tap-a").Attrs().Index)
	const table = "66836" // TableBase 1000 + TableSpan 65536 + label 300
	via := func(gw string) map[string]string {
		return map[string]string{"0.0.0.0/0": "table " + table + " 0.0.0.0/0 type 1 [" + tapA + " " + gw + " 0 invalid IP]"}
	}
	rule300 := "1000: tun_id 300 lookup " + table
	steps := []struct {
		name      string
		plug      bool
		port, p   string
		label     uint32
		dir       dataplane.Direction
		wantTable map[string]string // nil: empty
	}{
		{"prefix endpoint", true, "tap-a", "20.2.0.0/16", 300, dataplane.DirectionToPort, via("169.254.1.11")},
		{"lower prefix of the same MAC", true, "tap-a", "20.1.0.0/24", 300, dataplane.DirectionToPort, via("169.254.1.11")},
		{"a /32 of the MAC comes first", true, "tap-a", "10.1.1.10/32", 300, dataplane.DirectionBoth, via("10.1.1.10")},
		{"a from-port endpoint with another label", true, "tap-b", "10.1.1.20/32", 301, dataplane.DirectionFromPort, via("10.1.1.10")},
		{"the /32 goes: back to a prefix", false, "tap-a", "10.1.1.10/32", 300, dataplane.DirectionBoth, via("169.254.1.11")},
		{"one prefix goes", false, "tap-a", "20.2.0.0/16", 300, dataplane.DirectionToPort, via("169.254.1.11")},
		{"the last endpoint of the label goes", false, "tap-a", "20.1.0.0/24", 300, dataplane.DirectionToPort, nil},
	}
	for _, s := range steps {
		var err error
		if s.plug {
			err = v.Plug(port(s.port), mac("02:00:00:00:00:0a"), pfx(s.p), s.label, s.dir)
		} else {
			err = v.Unplug(port(s.port), mac("02:00:00:00:00:0a"), pfx(s.p), s.label, s.dir, false)
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := tableRoutes(t, d, 66836)
		if s.wantTable == nil && len(got) != 0 || s.wantTable != nil && !mapsEqual(got, s.wantTable) {
			t.Errorf("%s: label table\n got %v\nwant %v", s.name, got, s.wantTable)
		}
		rules := kernelRules(t, d)
		if slices.Contains(rules, rule300) != (s.wantTable != nil) {
			t.Errorf("%s: rules %q, want %q present: %v", s.name, rules, rule300, s.wantTable != nil)
		}
		if got := tableRoutes(t, d, 66837); len(got) != 0 {
			t.Errorf("%s: the from-port endpoint's label 301 has a delivery: %v", s.name, got)
		}
	}
	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 1<<20, dataplane.DirectionBoth); err == nil {
		t.Error("Plug with label 2^20 (no label table) succeeded")
	}
}

// nsEchos is the ICMP echo requests namespace ns received (Icmp InEchos).
func nsEchos(t *testing.T, ns *testNS) int {
	t.Helper()
	return (&vmSide{ns: ns}).echos(t)
}

// TestDeliveryByLabel is readvertise on the dataplane (reference §5.6):
// node B's VM vmB is a service VM that also holds 10.9.9.1 (on its
// loopback); node A's VRF routes 10.9.9.0/24 to B with vmB's label, as a
// readvertised route says, while B's VRF has no route to 10.9.9.0/24 (the
// route B readvertises is not imported there, §5.4). vmA pings 10.9.9.1:
// the requests reach vmB because B delivers by label, not by looking the
// destination up in the VRF. A VNI that is no local label is dropped:
// node B's own address, routed by A with an unknown label, receives no
// echo request.
func TestDeliveryByLabel(t *testing.T) {
	needTools(t, "ip", "ping")
	nodeA, nodeB, dA, dB := twoNodes(t)
	redA, redB := newVRF(t, dA, 1, "10.1.1.1"), newVRF(t, dB, 1, "10.2.2.1")
	vmA := plugVM(t, nodeA, redA, "tap-red", "10.1.1.10", "10.1.1.1", "02:00:00:0a:00:01", 301)
	vmB := plugVM(t, nodeB, redB, "tap-red", "10.2.2.10", "10.2.2.1", "02:00:00:0b:00:01", 302)
	setAddr(t, vmB.ns, "lo", "10.9.9.1/32")

	apply(t, redA, addRoute("10.9.9.0/24", "10.98.0.2", vmB.label), addRoute("10.98.0.2/32", "10.98.0.2", 999))
	apply(t, redB, addRoute("10.1.1.10/32", "10.98.0.1", vmA.label))
	if got := tableRoutes(t, dB, 1001); got["10.9.9.0/24"] != "" {
		t.Fatalf("node B's VRF routes 10.9.9.0/24: %v", got)
	}

	before := vmB.echos(t)
	if out, err := ping(vmA, "10.9.9.1"); err != nil {
		t.Errorf("ping 10.9.9.1 (behind vmB, not in node B's VRF) with vmB's label failed: %v\n%s", err, out)
	}
	if got := vmB.echos(t) - before; got < 3 {
		t.Errorf("vmB received %d echo requests for 10.9.9.1, want ≥ 3", got)
	}

	hostBefore := nsEchos(t, nodeB)
	if out, failed := pingFails(vmA, "10.98.0.2"); !failed {
		t.Errorf("vmA reached node B's address with an unknown label:\n%s", out)
	}
	if got := nsEchos(t, nodeB) - hostBefore; got != 0 {
		t.Errorf("node B's host received %d echo requests sent with an unknown label; the drop rule should stop them", got)
	}

	// Without the label's delivery (its rule deleted by hand), the VNI is
	// unknown: dropped, and the reconcile restores it.
	if out, err := exec.Command("ip", "-n", nodeB.name, "rule", "del", "pref", "1000", "tun_id", "302").CombinedOutput(); err != nil {
		t.Fatalf("ip rule del: %v\n%s", err, out)
	}
	if out, failed := pingFails(vmA, "10.9.9.1"); !failed {
		t.Errorf("10.9.9.1 answered without the tun_id 302 rule:\n%s", out)
	}
	if err := dB.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if out, err := ping(vmA, "10.9.9.1"); err != nil {
		t.Errorf("ping 10.9.9.1 after the reconcile failed: %v\n%s", err, out)
	}
}
