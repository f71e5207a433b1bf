package linuxipvpn

import (
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// vmSide is a "VM" namespace plugged into a VRF of a node.
type vmSide struct {
	ns    *testNS
	ip    string
	mac   route.MAC
	label uint32
	tap   string
}

// plugVM creates the VM namespace with eth0 (ip/24, default via gw) and
// plugs its peer tap into v.
func plugVM(t *testing.T, node *testNS, v *vrf, tap, ip, gw, m string, label uint32) *vmSide {
	t.Helper()
	s := &vmSide{ns: newNS(t), ip: ip, mac: mac(m), label: label, tap: tap}
	veth(t, node, tap, "eth0", s.ns)
	eth := link(t, s.ns, "eth0")
	if err := s.ns.h.LinkSetHardwareAddr(eth, net.HardwareAddr(s.mac[:])); err != nil {
		t.Fatal(err)
	}
	if err := s.ns.h.LinkSetMTU(eth, 1450); err != nil {
		t.Fatal(err)
	}
	setAddr(t, s.ns, "eth0", ip+"/24")
	if err := s.ns.h.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw), LinkIndex: eth.Attrs().Index}); err != nil {
		t.Fatalf("default route in the VM: %v", err)
	}
	if err := v.Plug(port(tap), s.mac, pfx(ip+"/32"), label, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	return s
}

// echos is the VM's count of ICMP echo requests received (Icmp InEchos
// of /proc/net/snmp in its namespace): other traffic (IPv6 neighbour
// discovery of the node's port) does not count.
func (s *vmSide) echos(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", s.ns.name, "cat", "/proc/net/snmp").CombinedOutput()
	if err != nil {
		t.Fatalf("reading /proc/net/snmp in %s: %v\n%s", s.ns.name, err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "InEchos" && i < len(f) {
				v, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("no Icmp InEchos in /proc/net/snmp of %s", s.ns.name)
	return 0
}

func ping(vm *vmSide, dst string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", vm.ns.name, "ping", "-c", "3", "-W", "2", "-i", "0.3", dst).CombinedOutput()
	return string(out), err
}

// pingFails reports whether one ping gets no reply within a second.
func pingFails(vm *vmSide, dst string) (string, bool) {
	out, err := exec.Command("ip", "netns", "exec", vm.ns.name, "ping", "-c", "1", "-W", "1", dst).CombinedOutput()
	return string(out), err != nil
}

// TestTrafficBetweenTwoNodes builds two "compute nodes" (namespaces joined
// by a veth underlay 10.98.0.1/.2) running the driver, with two VRFs (red
// and blue) on each that use identical prefixes: on node A the VMs are
// 10.1.1.10/24 (gateway .1), on node B 10.2.2.10/24. Each node applies
// the other's /32 routes with the other VM's label, as the VRF would on
// receiving the VPNv4 routes. Pings are routed across the subnets, each VRF
// reaches only its own VM, VMs cannot reach the nodes' own addresses, and
// two VRFs of one node reach each other through the local next hop.
func TestTrafficBetweenTwoNodes(t *testing.T) {
	needTools(t, "ip", "ping")
	nodeA, nodeB, dA, dB := twoNodes(t)

	redA, blueA := newVRF(t, dA, 1, "10.1.1.1"), newVRF(t, dA, 2, "10.1.1.1")
	redB, blueB := newVRF(t, dB, 1, "10.2.2.1"), newVRF(t, dB, 2, "10.2.2.1")
	vmRedA := plugVM(t, nodeA, redA, "tap-red", "10.1.1.10", "10.1.1.1", "02:00:00:0a:00:01", 301)
	vmBlueA := plugVM(t, nodeA, blueA, "tap-blue", "10.1.1.10", "10.1.1.1", "02:00:00:0a:00:02", 401)
	vmRedB := plugVM(t, nodeB, redB, "tap-red", "10.2.2.10", "10.2.2.1", "02:00:00:0b:00:01", 302)
	vmBlueB := plugVM(t, nodeB, blueB, "tap-blue", "10.2.2.10", "10.2.2.1", "02:00:00:0b:00:02", 402)

	apply(t, redA, addRoute("10.2.2.10/32", "10.98.0.2", vmRedB.label))
	apply(t, blueA, addRoute("10.2.2.10/32", "10.98.0.2", vmBlueB.label))
	apply(t, redB, addRoute("10.1.1.10/32", "10.98.0.1", vmRedA.label))
	apply(t, blueB, addRoute("10.1.1.10/32", "10.98.0.1", vmBlueA.label))

	ttl := regexp.MustCompile(`ttl=(\d+)`)
	for _, tc := range []struct {
		name          string
		from, to, not *vmSide
	}{
		{"red", vmRedA, vmRedB, vmBlueB},
		{"blue", vmBlueA, vmBlueB, vmRedB},
		{"blue back", vmBlueB, vmBlueA, vmRedA},
	} {
		toBefore, notBefore := tc.to.echos(t), tc.not.echos(t)
		out, err := ping(tc.from, tc.to.ip)
		if err != nil {
			t.Fatalf("%s: ping %s → %s failed: %v\n%s", tc.name, tc.from.ip, tc.to.ip, err, out)
		}
		m := ttl.FindStringSubmatch(out)
		if m == nil || m[1] != "62" {
			t.Errorf("%s: reply ttl %v, want 62 (routed by both nodes)\n%s", tc.name, m, out)
		}
		if got := tc.to.echos(t) - toBefore; got < 3 {
			t.Errorf("%s: the target VM received %d echo requests, want ≥ 3", tc.name, got)
		}
		if got := tc.not.echos(t) - notBefore; got != 0 {
			t.Errorf("%s: the other VRF's VM with the same address received %d echo requests: VRFs leak", tc.name, got)
		}
	}
	for _, ip := range []string{"10.98.0.1", "10.98.0.2"} {
		if out, failed := pingFails(vmRedA, ip); !failed {
			t.Errorf("VM reached the underlay address %s:\n%s", ip, out)
		}
	}
	// Two VRFs of node A that import each other's routes (two networks in
	// one BGPVPN): the next hop is node A itself.
	greenA := newVRF(t, dA, 3, "10.3.3.1")
	vmGreenA := plugVM(t, nodeA, greenA, "tap-green", "10.3.3.10", "10.3.3.1", "02:00:00:0a:00:03", 501)
	apply(t, greenA, addRoute("10.1.1.10/32", "10.98.0.1", vmRedA.label))
	apply(t, redA, addRoute("10.3.3.10/32", "10.98.0.1", vmGreenA.label))
	before := vmGreenA.echos(t)
	if out, err := ping(vmRedA, vmGreenA.ip); err != nil {
		t.Errorf("red → green on the same node failed: %v\n%s", err, out)
	}
	if got := vmGreenA.echos(t) - before; got < 3 {
		t.Errorf("the green VM received %d echo requests, want ≥ 3", got)
	}

	// Remove the route: traffic stops.
	apply(t, redA, delRoute("10.2.2.10/32", "10.98.0.2", vmRedB.label))
	if out, failed := pingFails(vmRedA, vmRedB.ip); !failed {
		t.Errorf("ping still works after the route was removed:\n%s", out)
	}
}

// twoNodes makes two node namespaces joined by an underlay veth "ul"
// (10.98.0.1/24 on A, .2 on B) and a driver on each with that local
// address.
func twoNodes(t *testing.T) (nodeA, nodeB *testNS, dA, dB *Driver) {
	t.Helper()
	nodeA, nodeB = newNS(t), newNS(t)
	veth(t, nodeA, "ul", "ul", nodeB)
	setAddr(t, nodeA, "ul", "10.98.0.1/24")
	setAddr(t, nodeB, "ul", "10.98.0.2/24")
	dA = newDriver(t, nodeA, Options{LocalAddress: addr("10.98.0.1")})
	dB = newDriver(t, nodeB, Options{LocalAddress: addr("10.98.0.2")})
	return nodeA, nodeB, dA, dB
}
