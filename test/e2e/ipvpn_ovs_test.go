package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// IP VPN end-to-end tests with the ovs driver (reference §7.2) on private
// userspace Open vSwitch instances, gobgpd as route reflector, VMs made
// by bagpipe-rest-attach --port netns --network-type ipvpn --ovs-preplug.

// rtOVS is the route target of the IP VPN of these tests.
const rtOVS = "64512:300"

// ovsVRFTable is the ovs driver's VRF table with the default
// ovs_table_id_start (1): encap-in is 1, the VRF table 2.
const ovsVRFTable = 2

// The VMs of these tests: net1 10.1.1.0/24 and net2 10.2.2.0/24 in one
// VRF, so that traffic between them is routed by the VRFs.
const (
	ovsIPA  = "10.1.1.10/24"
	ovsMACA = "02:00:0a:01:01:0a"
	ovsIPB  = "10.2.2.10/24"
	ovsMACB = "02:00:0a:02:02:0a"
	ovsMACC = "02:00:0a:02:02:0c"
)

// TestOVSIPVPNPing: vmA (net1) on node A and vmB (net2) on node B, both
// ovs nodes, ping each other through the VRF (TTL 63: routed once).
// Without vxlan_encap the echo requests leave A as MPLS/Ethernet/GRE
// (bagpipe's default gre_tunnel). With vxlan_encap = True on both nodes
// they leave as VXLAN (the driver then prefers VXLAN whenever the remote
// offers it, as upstream's ovs driver does, reference §3.1), and A's
// br-mpls has the vxlan port and its encap-in flow.
func TestOVSIPVPNPing(t *testing.T) {
	cases := []struct {
		name, opts string
		// wire must be in A's datapath flow towards vmB.
		wire []string
	}{
		{"gre", "", []string{"push_mpls(", "gre((flags=0x0,proto=0x6558))"}},
		{"vxlan", "vxlan_encap = True\n", []string{"vxlan(flags=0x8000000,vni="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newIPVPNLab(t, ipvpnNodeSpec{"A", "ovs", tc.opts}, ipvpnNodeSpec{"B", "ovs", tc.opts})
			a, b := l.nodes[0], l.nodes[1]
			vmA := l.vm(a, "vmA", "vrf1", rtOVS, ovsIPA, ovsMACA)
			vmB := l.vm(b, "vmB", "vrf1", rtOVS, ovsIPB, ovsMACB)
			l.restAttach(vmA, true)
			l.restAttach(vmB, true)
			l.waitPing(vmA.VM, vmB.IP.Addr())
			l.waitPing(vmB.VM, vmA.IP.Addr())
			if got, out := lab.Ping(vmA.NS, vmB.IP.Addr(), 1, 2); got != 1 || !strings.Contains(out, "ttl=63") {
				t.Errorf("ping from vmA to vmB: want one reply with ttl=63 (routed once by the VRF):\n%s", out)
			}
			l.checkWire(a, vmA, vmB.IP.Addr(), b.addr, tc.wire, tc.opts == "")
			if tc.opts == "" {
				return
			}
			o := l.ovs[a]
			if typ := strings.TrimSpace(o.must(t, "ovs-vsctl", "--timeout=20", "get", "Interface", "vxlan", "type")); typ != "vxlan" {
				t.Errorf("node A's vxlan port has type %q, want vxlan", typ)
			}
			port := strings.TrimSpace(o.must(t, "ovs-vsctl", "--timeout=20", "get", "Interface", "vxlan", "ofport"))
			flows, err := o.ofctl("dump-flows", "br-mpls", "table=0,in_port="+port)
			if err != nil || !strings.Contains(flows, "resubmit(,1)") && !strings.Contains(flows, "goto_table:1") {
				t.Errorf("node A has no input flow from its vxlan port (%s) to the encap-in table: %v\n%s", port, err, flows)
			}
		})
	}
}

// checkWire requires, while from pings to, a datapath flow on n's OVS
// that tunnels to remote and contains every string of wire; with
// noVXLAN, no such flow may use VXLAN.
func (l *ipvpnLab) checkWire(n *node, from ipvpnVM, to, remote netip.Addr, wire []string, noVXLAN bool) {
	t := l.t
	t.Helper()
	o := l.ovs[n]
	testenv.WaitFor(t, stateTimeout, fmt.Sprintf("a datapath flow on node %s tunnelling to %s with %q", n.name, remote, wire), func() (bool, error) {
		lab.Ping(from.NS, to, 1, 1)
		flows, err := o.datapathFlows()
		if err != nil {
			return false, err
		}
		for _, f := range strings.Split(flows, "\n") {
			if !strings.Contains(f, "dst="+remote.String()) {
				continue
			}
			if noVXLAN && strings.Contains(f, "vxlan(") {
				t.Fatalf("node %s sends VXLAN without vxlan_encap:\n%s", n.name, f)
			}
			ok := true
			for _, w := range wire {
				ok = ok && strings.Contains(f, w)
			}
			if ok {
				return true, nil
			}
		}
		return false, fmt.Errorf("datapath flows:\n%s", flows)
	})
}

// TestOVSIPVPNECMP: the same /32 (anycast 10.2.2.10, vmB on node B and
// vmC on node C) reaches node A from two PEs: A's VRF sends it to a
// select group with one bucket per PE, and vmA pings it. Detaching vmC
// leaves one bucket, towards B, and the ping still works.
func TestOVSIPVPNECMP(t *testing.T) {
	l := newIPVPNLab(t, ipvpnNodeSpec{"A", "ovs", ""}, ipvpnNodeSpec{"B", "ovs", ""}, ipvpnNodeSpec{"C", "ovs", ""})
	a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
	vmA := l.vm(a, "vmA", "vrf1", rtOVS, ovsIPA, ovsMACA)
	vmB := l.vm(b, "vmB", "vrf1", rtOVS, ovsIPB, ovsMACB)
	vmC := l.vm(c, "vmC", "vrf1", rtOVS, ovsIPB, ovsMACC)
	for _, vm := range []ipvpnVM{vmA, vmB, vmC} {
		l.restAttach(vm, true)
	}
	anycast := vmB.IP.Addr()
	l.waitBuckets(a, anycast.String(), b.addr, c.addr)
	l.waitPing(vmA.VM, anycast)

	l.restAttach(vmC, false)
	l.waitBuckets(a, anycast.String(), b.addr)
	l.waitPing(vmA.VM, anycast)
	l.checkEmpty(c)
}

// checkEmpty requires node n's br-mpls to be left without any flow in
// the encap-in and VRF tables or any group once vm, the only VM of the
// node, is detached (the VRF is gone, reference §7.2 cleanup). The port
// itself stays in br-mpls: bagpipe-rest-attach --ovs-preplug re-adds it
// on --detach too (as upstream), and the netns port removal deletes it
// from OVS only when the veth is enslaved to the kernel datapath.
func (l *ipvpnLab) checkEmpty(n *node) {
	t := l.t
	t.Helper()
	o := l.ovs[n]
	testenv.WaitFor(t, stateTimeout, "node "+n.name+"'s VRF flows and groups to be removed", func() (bool, error) {
		var left []string
		for _, args := range [][]string{
			{"dump-flows", "br-mpls", "table=1"},
			{"dump-flows", "br-mpls", fmt.Sprintf("table=%d", ovsVRFTable)},
			{"dump-groups", "br-mpls"},
		} {
			out, err := o.ofctl(args...)
			if err != nil {
				return false, err
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "actions=") || strings.Contains(line, "group_id=") {
					left = append(left, line)
				}
			}
		}
		return len(left) == 0, fmt.Errorf("left: %q", left)
	})
}

// waitBuckets waits until node n's VRF table sends prefix to a select
// group whose buckets tunnel to exactly the PEs pes, one bucket each.
func (l *ipvpnLab) waitBuckets(n *node, prefix string, pes ...netip.Addr) {
	t := l.t
	t.Helper()
	o := l.ovs[n]
	all := []netip.Addr{}
	for _, m := range l.nodes {
		all = append(all, m.addr)
	}
	testenv.WaitFor(t, stateTimeout, fmt.Sprintf("node %s's group for %s to have one bucket for each of %v", n.name, prefix, pes), func() (bool, error) {
		id, g, err := o.prefixGroup(ovsVRFTable, prefix)
		if err != nil {
			return false, err
		}
		if !strings.Contains(g, "type=select") {
			return false, fmt.Errorf("group %s is not a select group: %s", id, g)
		}
		if got := strings.Count(g, "bucket="); got != len(pes) {
			return false, fmt.Errorf("group %s has %d buckets, want %d: %s", id, got, len(pes), g)
		}
		for _, pe := range all {
			want := 0
			for _, p := range pes {
				if p == pe {
					want = 1
				}
			}
			if got := strings.Count(g, pe.String()+"->tun_dst"); got != want {
				return false, fmt.Errorf("group %s has %d buckets towards %s, want %d: %s", id, got, pe, want, g)
			}
		}
		return true, nil
	})
}

// TestOVSIPVPNLinuxInterop: node A runs the linux IP VPN driver, node B
// the ovs driver with vxlan_encap; their VMs in one VRF ping each other
// both ways over VXLAN (dataplanes.md §1e), and B's datapath uses VXLAN
// towards A.
func TestOVSIPVPNLinuxInterop(t *testing.T) {
	l := newIPVPNLab(t, ipvpnNodeSpec{"A", "linux", ""}, ipvpnNodeSpec{"B", "ovs", "vxlan_encap = True\n"})
	a, b := l.nodes[0], l.nodes[1]
	vmA := l.vm(a, "vmA", "vrf1", rtOVS, ovsIPA, ovsMACA)
	vmB := l.vm(b, "vmB", "vrf1", rtOVS, ovsIPB, ovsMACB)
	l.restAttach(vmA, true)
	l.restAttach(vmB, true)
	l.waitPing(vmA.VM, vmB.IP.Addr())
	l.waitPing(vmB.VM, vmA.IP.Addr())
	l.checkWire(b, vmB, vmA.IP.Addr(), a.addr, []string{"vxlan(flags=0x8000000,vni="}, false)
}
