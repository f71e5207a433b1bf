package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// Route targets of the IP VPN tests: two VRFs reusing the same subnets,
// and the E-VPN of the evpn2ipvpn step.
const (
	rtVRF1 = "64512:10"
	rtVRF2 = "64512:20"
	rtEVPN = "64512:30"
)

// VXLAN ports: the E-VPN and IP VPN linux drivers run side by side on a
// node, so they must use different ports (dataplanes.md §2).
const (
	evpnPort  = 4789
	ipvpnPort = 4790
)

// ipvpnConf is appended to the [DATAPLANE_DRIVER_EVPN] section of each
// node's bgp.conf.
var ipvpnConf = fmt.Sprintf("vxlan_dst_port = %d\n\n[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = linux\nvxlan_dst_port = %d\n", evpnPort, ipvpnPort)

// TestIPVPNLinux runs IP VPN end to end with the linux driver on one lab
// (gobgpd route reflector, nodes A and B): VRF vrf1 (RT 64512:10) routes
// between vmA1 (10.1.1.10/24 on A) and vmB1 (10.2.2.10/24 on B); VRF vrf2
// (RT 64512:20) reuses both subnets with vmA2 (10.1.1.10, overlapping
// vmA1) and vmB2 (10.2.2.20). Node B creates vrf2 first so that the two
// nodes allocate different labels to vrf1's VMs. The steps run in order
// and share the lab; a failed step stops the test.
func TestIPVPNLinux(t *testing.T) {
	tp := newTopo(t, "gobgpd", ipvpnConf, "A", "B")
	a, b := tp.nodes[0], tp.nodes[1]
	vmA1 := a.ipvm("vmA1", "vrf1", rtVRF1, "10.1.1.10/24")
	vmB1 := b.ipvm("vmB1", "vrf1", rtVRF1, "10.2.2.10/24")
	vmA2 := a.ipvm("vmA2", "vrf2", rtVRF2, "10.1.1.10/24")
	vmB2 := b.ipvm("vmB2", "vrf2", rtVRF2, "10.2.2.20/24")
	for _, vm := range []lab.VM{vmA1, vmB2, vmB1, vmA2} {
		tp.restAttach(vm, true)
	}
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"routed-ping", func(t *testing.T) {
			tp.routedPing(vmA1, vmB1.IP.Addr())
			tp.routedPing(vmB1, vmA1.IP.Addr())
		}},
		{"vrf-isolation", func(t *testing.T) {
			checkVRFIsolation(t, tp, vmA1, vmB1, vmA2, vmB2)
		}},
		{"kernel-state", func(t *testing.T) {
			checkIPVPNKernelState(t, tp, vmA1, vmB1)
		}},
		{"prefix-route", func(t *testing.T) {
			checkPrefixRoute(t, tp, vmA1, vmB1)
		}},
		{"dc-gateway", func(t *testing.T) {
			checkDCGateway(t, tp, vmA1)
		}},
		{"evpn2ipvpn", func(t *testing.T) {
			checkEVPN2IPVPN(t, tp, vmB1)
		}},
	}
	for _, s := range steps {
		ok := t.Run(s.name, func(t *testing.T) {
			tp.t = t // the helpers report to the running step
			s.run(t)
		})
		tp.t = t
		if !ok {
			t.Fatalf("step %s failed; later steps depend on it", s.name)
		}
	}
}

// ipvm returns an IP VPN VM of the lab on node n: namespace prefix+name,
// in VRF vrf with route target rt, address ip (with its subnet length),
// gateway the first address of the subnet.
func (n *node) ipvm(name, vrf, rt, ip string) lab.VM {
	p := netip.MustParsePrefix(ip)
	return lab.VM{Node: n.ns, NS: n.tp.prefix + name, Network: vrf, RT: rt, IP: p,
		ConfigFile: n.conf, Type: "ipvpn", Gateway: p.Masked().Addr().Next()}
}

// ttlRE finds the TTL of a ping reply.
var ttlRE = regexp.MustCompile(`ttl=(\d+)`)

// routedPing waits until from pings to, then requires the replies to have
// crossed routers (TTL below 64): the VRF routes, it does not bridge.
func (tp *topo) routedPing(from lab.VM, to netip.Addr) {
	tp.t.Helper()
	tp.waitPing(from, to)
	_, out := lab.Ping(from.NS, to, 1, 2)
	m := ttlRE.FindStringSubmatch(out)
	if m == nil {
		tp.t.Fatalf("e2e: no TTL in the ping reply from %s to %s:\n%s", from.NS, to, out)
	}
	if ttl, _ := strconv.Atoi(m[1]); ttl >= 64 {
		tp.t.Errorf("e2e: ping from %s to %s: reply TTL %d, want < 64 (routed):\n%s", from.NS, to, ttl, out)
	}
}

// inEchos returns the ICMP echo requests a VM's namespace received
// (Icmp InEchos of /proc/net/snmp).
func inEchos(t *testing.T, vm lab.VM) int {
	t.Helper()
	out, err := lab.Command(vm.NS, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("e2e: reading /proc/net/snmp in %s: %v", vm.NS, err)
	}
	n, err := snmpCounter(string(out), "Icmp", "InEchos")
	if err != nil {
		t.Fatalf("e2e: %s: %v", vm.NS, err)
	}
	return n
}

// checkVRFIsolation: the VMs of vrf2 ping each other, no VM reaches an
// address that only the other VRF has (across nodes or on the same node),
// and pings to the overlapping 10.1.1.10 reach the VM of the sender's VRF
// only (counted by the VMs' ICMP counters).
func checkVRFIsolation(t *testing.T, tp *topo, vmA1, vmB1, vmA2, vmB2 lab.VM) {
	tp.routedPing(vmA2, vmB2.IP.Addr())
	tp.routedPing(vmB2, vmA2.IP.Addr())
	tp.noPing(vmA2, vmB1.IP.Addr(), "vrf2 to vrf1's vmB1 across nodes")
	tp.noPing(vmA1, vmB2.IP.Addr(), "vrf1 to vrf2's vmB2 across nodes")
	tp.noPing(vmB1, vmB2.IP.Addr(), "vrf1 to vrf2 on the same node")
	tp.noPing(vmB2, vmB1.IP.Addr(), "vrf2 to vrf1 on the same node")
	for _, c := range []struct {
		from, want, other lab.VM
	}{{vmB1, vmA1, vmA2}, {vmB2, vmA2, vmA1}} {
		want0, other0 := inEchos(t, c.want), inEchos(t, c.other)
		if got, out := lab.Ping(c.from.NS, c.want.IP.Addr(), 3, 2); got != 3 {
			t.Fatalf("ping -c 3 from %s to %s got %d replies:\n%s", c.from.NS, c.want.IP.Addr(), got, out)
		}
		if d := inEchos(t, c.want) - want0; d < 3 {
			t.Errorf("%s pinged %s 3 times; %s (its VRF) received %d echo requests", c.from.NS, c.want.IP.Addr(), c.want.NS, d)
		}
		if d := inEchos(t, c.other) - other0; d != 0 {
			t.Errorf("%s pinged %s 3 times; %s (other VRF, same address) received %d echo requests, want 0", c.from.NS, c.want.IP.Addr(), c.other.NS, d)
		}
	}
}

// vrfTable returns the routing table of an IP VPN instance from the
// looking glass of the linux driver.
func (n *node) vrfTable(instance string) int {
	n.tp.t.Helper()
	var d struct {
		Table int `json:"table"`
	}
	if err := n.getJSON("/looking-glass/vpns/instances/"+instance+"/dataplane", &d); err != nil {
		n.tp.t.Fatalf("e2e: node %s: %v", n.name, err)
	}
	if d.Table == 0 {
		n.tp.t.Fatalf("e2e: node %s: instance %s dataplane info has no table", n.name, instance)
	}
	return d.Table
}

// checkIPVPNKernelState reads node A with netlink: the rule "iif <vmA1's
// port> lookup <vrf1's table>"; the delivery by label of what arrives for
// vmA1: the rule "tun_id <vmA1's label> lookup <label table>" (the table
// the looking glass shows for the label) and in that table only "default
// via <vmA1's address> dev <vmA1's port> onlink"; the rule "iif
// bagpipe-vx blackhole" dropping unknown labels; and in vrf1's table
// vmB1's /32 via the collect_md device with encap id = the label B
// advertised and dst = B. Detaching vmB1 removes the route (and the ping
// fails), attaching it again restores both.
func checkIPVPNKernelState(t *testing.T, tp *topo, vmA1, vmB1 lab.VM) {
	a, b := tp.nodes[0], tp.nodes[1]
	table := a.vrfTable("vrf1")
	label := a.portLabel(t, "vrf1", vmA1.HostIf())
	var info struct {
		LabelTables map[string]int `json:"label_tables"`
	}
	if err := a.getJSON("/looking-glass/vpns/instances/vrf1/dataplane", &info); err != nil {
		t.Fatalf("node A: %v", err)
	}
	labelTable := info.LabelTables[strconv.FormatUint(uint64(label), 10)]
	if labelTable == 0 || labelTable == table {
		t.Fatalf("node A: vrf1's dataplane shows label tables %v, want one for vmA1's label %d, not the VRF table %d", info.LabelTables, label, table)
	}
	h := a.netlink()
	rules, err := h.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("rules of node A: %v", err)
	}
	iif := false
	for _, r := range rules {
		if r.IifName == vmA1.HostIf() && r.Table == table && r.Priority == 1000 {
			iif = true
		}
	}
	if !iif {
		t.Errorf("node A has no rule 1000: iif %s lookup %d: %v", vmA1.HostIf(), table, rules)
	}
	// The library decodes FRA_TUN_ID (a be64) in host order and not the
	// rule action: ip does both.
	out, err := lab.Command(a.ns, "ip", "-j", "rule", "show").Output()
	if err != nil {
		t.Fatalf("ip -j rule show on node A: %v", err)
	}
	var jrules []struct {
		Priority int    `json:"priority"`
		TunID    uint32 `json:"tun_id"`
		Table    string `json:"table"`
		Iif      string `json:"iif"`
		Action   string `json:"action"`
	}
	if err := json.Unmarshal(out, &jrules); err != nil {
		t.Fatalf("decoding ip -j rule show: %v: %s", err, out)
	}
	found, drop := false, false
	for _, r := range jrules {
		if r.TunID != 0 && r.Table == strconv.Itoa(table) {
			t.Errorf("node A still demultiplexes a label into the VRF table: %+v", r)
		}
		if r.Priority == 1000 && r.TunID == label && r.Table == strconv.Itoa(labelTable) {
			found = true
		}
		if r.Priority == 1001 && r.Iif == "bagpipe-vx" && r.Action == "blackhole" {
			drop = true
		}
	}
	if !found {
		t.Errorf("node A has no rule 1000: tun_id %d lookup %d:\n%s", label, labelTable, out)
	}
	if !drop {
		t.Errorf("node A has no rule 1001: iif bagpipe-vx blackhole:\n%s", out)
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: labelTable}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("routes of node A's table %d: %v", labelTable, err)
	}
	port, err := h.LinkByName(vmA1.HostIf())
	if err != nil {
		t.Fatalf("node A: %v", err)
	}
	if len(routes) != 1 || (routes[0].Dst != nil && routes[0].Dst.String() != "0.0.0.0/0") || !routes[0].Gw.Equal(vmA1.IP.Addr().AsSlice()) ||
		routes[0].LinkIndex != port.Attrs().Index || routes[0].Flags&int(netlink.FLAG_ONLINK) == 0 {
		t.Errorf("node A's label table %d: %v, want only default via %s dev %s onlink", labelTable, routes, vmA1.IP.Addr(), vmA1.HostIf())
	}
	adv := tp.waitRIBPath(b.addr, netip.PrefixFrom(vmB1.IP.Addr(), 32), rtVRF1)
	if own := tp.rrRIB().find(a.addr, netip.PrefixFrom(vmA1.IP.Addr(), 32), rtVRF1); own != nil && own.Label == adv.Label {
		t.Errorf("nodes A and B gave vrf1's VMs the same label %d; the test wants them different (B creates vrf2 first)", adv.Label)
	}
	remote := func(label uint32) vrfRoute {
		return vrfRoute{Dst: netip.PrefixFrom(vmB1.IP.Addr(), 32), Encap: "ip", ID: label, EncapDst: b.addr, Gateway: b.addr, Dev: "bagpipe-vx-tx"}
	}
	a.waitVRFRoute(table, remote(adv.Label))
	tp.restAttach(vmB1, false)
	a.waitVRFRoute(table, vrfRoute{Dst: remote(0).Dst})
	tp.noPing(vmA1, vmB1.IP.Addr(), "vmB1 detached")
	// The detach removed B's last endpoint of vrf1, hence the instance:
	// the re-attach creates it again, with another label.
	tp.restAttach(vmB1, true)
	adv = tp.waitRIBPath(b.addr, netip.PrefixFrom(vmB1.IP.Addr(), 32), rtVRF1)
	a.waitVRFRoute(table, remote(adv.Label))
	tp.routedPing(vmA1, vmB1.IP.Addr())
	tp.routedPing(vmB1, vmA1.IP.Addr())
}

// checkPrefixRoute attaches on node B, as upstream's port-association
// prefix routes (reference §2.3.3), 20.1.0.0/24 with --advertise-subnet
// and direction to-port on vmB1's port and MAC; vmB1 has 20.1.0.1 on its
// loopback. Node A installs the /24 towards B, and vmA1 pings 20.1.0.1;
// detaching the prefix removes the route and the ping fails.
func checkPrefixRoute(t *testing.T, tp *topo, vmA1, vmB1 lab.VM) {
	a, b := tp.nodes[0], tp.nodes[1]
	const pfx = "20.1.0.0/24"
	dst := netip.MustParsePrefix(pfx)
	target := netip.MustParseAddr("20.1.0.1")
	if out, err := lab.Command(vmB1.NS, "ip", "addr", "add", target.String()+"/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("adding %s to vmB1's loopback: %v: %s", target, err, out)
	}
	args := []string{"--network-type", "ipvpn", "--port", vmB1.HostIf(), "--vpn-instance-id", vmB1.Network,
		"--ip", pfx, "--advertise-subnet", "--direction", "to-port", "--mac", tp.mac(vmB1),
		"--gateway-ip", vmB1.Gateway.String(), "--rt", vmB1.RT, "--config-file", b.conf}
	restAttach := func(op string) {
		t.Helper()
		full := append([]string{op}, args...)
		out, err := lab.Command(b.ns, filepath.Join(tp.bin, "bagpipe-rest-attach"), full...).CombinedOutput()
		if err != nil {
			t.Fatalf("bagpipe-rest-attach %q: %v\n%s", full, err, out)
		}
		t.Logf("bagpipe-rest-attach %q:\n%s", full, out)
	}
	restAttach("--attach")
	adv := tp.waitRIBPath(b.addr, dst, vmB1.RT)
	table := a.vrfTable("vrf1")
	a.waitVRFRoute(table, vrfRoute{Dst: dst, Encap: "ip", ID: adv.Label, EncapDst: b.addr, Gateway: b.addr, Dev: "bagpipe-vx-tx"})
	tp.routedPing(vmA1, target)
	restAttach("--detach")
	a.waitVRFRoute(table, vrfRoute{Dst: dst})
	tp.noPing(vmA1, target, "prefix detached")
	tp.routedPing(vmA1, vmB1.IP.Addr()) // the VM's own endpoint stays
}

// checkDCGateway plays a DC gateway: a namespace on the underlay at
// 10.201.0.200 (see newDCGateway) terminating VXLAN on the IP VPN port,
// with the DC host 30.3.3.1 behind it. gobgpd holds vmA1's route from
// node A with RT 64512:10, the VXLAN encapsulation and the label A's
// looking glass shows; the gateway routes vmA1 back with that label.
// gobgpd then injects, as the gateway would advertise, 30.3.3.0/24 with
// RT 64512:10, VXLAN encapsulation, label 777 and next hop the gateway:
// node A installs it in vrf1's table, vmA1 pings 30.3.3.1, and a capture
// on the gateway's uplink shows the requests arriving from A on UDP 4790
// with VNI 777 and the replies leaving for A with vmA1's label. After the
// withdrawal node A removes the route and the ping fails.
func checkDCGateway(t *testing.T, tp *topo, vmA1 lab.VM) {
	a := tp.nodes[0]
	table := a.vrfTable("vrf1")
	gwAddr := netip.MustParseAddr("10.201.0.200")
	dst := netip.MustParsePrefix("30.3.3.0/24")
	host := netip.MustParseAddr("30.3.3.1")
	const label = 777
	gw := tp.newDCGateway(gwAddr, ipvpnPort, netip.MustParsePrefix("30.3.3.254/24"), host)

	// vmA2 (vrf2, RT 64512:20) has the same address: find picks by RT.
	vmA1Host := netip.PrefixFrom(vmA1.IP.Addr(), 32)
	r := tp.waitRIBPath(a.addr, vmA1Host, rtVRF1)
	if r.NextHop != a.addr || !r.VXLAN || len(r.RTs) != 1 {
		t.Errorf("vmA1's route in gobgpd: %+v, want next hop %s, VXLAN encapsulation, RT %s", r, a.addr, rtVRF1)
	}
	if l := a.portLabel(t, "vrf1", vmA1.HostIf()); r.Label != l {
		t.Errorf("vmA1's route in gobgpd has label %d, node A's looking glass says %d", r.Label, l)
	}
	gw.routeBack(vmA1Host, r.Label, r.NextHop)

	spec := []string{dst.String(), "label", strconv.Itoa(label), "rd", "64512:99"}
	tp.gobgp(append(append([]string{"global", "rib", "add", "-a", "vpnv4"}, spec...),
		"rt", rtVRF1, "encap", "vxlan", "nexthop", gwAddr.String())...)
	want := vrfRoute{Dst: dst, Encap: "ip", ID: label, EncapDst: gwAddr, Gateway: gwAddr, Dev: "bagpipe-vx-tx"}
	a.waitVRFRoute(table, want)
	tp.routedPing(vmA1, host) // warm-up: the first packets may still find no route

	const count = 3
	capture := gw.captureUplink()
	echos0 := gw.hostInEchos()
	if got, out := lab.Ping(vmA1.NS, host, count, 2); got != count {
		t.Fatalf("ping -c %d from %s to %s got %d replies:\n%s", count, vmA1.NS, host, got, out)
	}
	frames := capture.drain(t)
	t.Logf("%d VXLAN frames on the DC gateway's uplink during ping -c %d", len(frames), count)
	if d := gw.hostInEchos() - echos0; d < count {
		t.Errorf("%s pinged %s %d times; the DC host received %d echo requests", vmA1.NS, host, count, d)
	}
	// ICMP echo request 8, echo reply 0 (RFC 792).
	if err := checkFlow(frames, false, vxlanFrame{OuterSrc: a.addr, OuterDst: gwAddr, DstPort: ipvpnPort, VNI: label,
		InnerDstMAC: dcgwGatewayMAC.String(), InnerSrcMAC: dcgwNodeTXMAC.String(),
		InnerSrc: vmA1.IP.Addr(), InnerDst: host, ICMPType: 8}, count); err != nil {
		t.Errorf("the echo requests on the DC gateway's uplink: %v", err)
	}
	if err := checkFlow(frames, true, vxlanFrame{OuterSrc: gwAddr, OuterDst: a.addr, DstPort: ipvpnPort, VNI: r.Label,
		InnerDstMAC: dcgwGatewayMAC.String(), InnerSrcMAC: dcgwTXMAC.String(),
		InnerSrc: host, InnerDst: vmA1.IP.Addr(), ICMPType: 0}, count); err != nil {
		t.Errorf("the echo replies on the DC gateway's uplink: %v", err)
	}

	tp.gobgp(append([]string{"global", "rib", "del", "-a", "vpnv4"}, spec...)...)
	a.waitVRFRoute(table, vrfRoute{Dst: dst})
	tp.noPing(vmA1, host, "the DC gateway's route withdrawn")
}

// checkEVPN2IPVPN is upstream's evpn2ipvpn sample: vmE is in E-VPN evpnE
// on node A (E-VPN linux driver), which bagpipe-rest-attach --port
// evpn:evpnE plugs into VRF vrfE (RT 64512:10, vrf1's) for vmE's MAC and
// IP; vmE then pings vmB1, in vrf1 on node B, and back.
func checkEVPN2IPVPN(t *testing.T, tp *topo, vmB1 lab.VM) {
	a := tp.nodes[0]
	vmE := a.vm("vmE", "evpnE", rtEVPN, "10.3.3.10/24", "02:00:0a:03:03:0a")
	vmE.Gateway = netip.MustParseAddr("10.3.3.1")
	tp.restAttach(vmE, true)
	args := []string{"--attach", "--network-type", "ipvpn", "--port", "evpn:evpnE", "--vpn-instance-id", "vrfE",
		"--ip", vmE.IP.String(), "--mac", vmE.MAC, "--gateway-ip", vmE.Gateway.String(), "--rt", rtVRF1, "--config-file", a.conf}
	out, err := lab.Command(a.ns, filepath.Join(tp.bin, "bagpipe-rest-attach"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("bagpipe-rest-attach %q: %v\n%s", args, err, out)
	}
	t.Logf("bagpipe-rest-attach %q:\n%s", args, out)
	tp.routedPing(vmE, vmB1.IP.Addr())
	tp.routedPing(vmB1, vmE.IP.Addr())
}

// vrfRoute is what the tests check of a route in a VRF table, from
// ip -j route show.
type vrfRoute struct {
	Dst      netip.Prefix
	Encap    string // "ip" for the collect_md lwtunnel encap
	ID       uint32 // encap ip id: the VNI
	EncapDst netip.Addr
	Gateway  netip.Addr
	Dev      string
}

// waitVRFRoute waits until the node's table has exactly want for
// want.Dst, or has no route for it when want has only Dst.
func (n *node) waitVRFRoute(table int, want vrfRoute) {
	t := n.tp.t
	t.Helper()
	absent := want == vrfRoute{Dst: want.Dst}
	what := fmt.Sprintf("node %s's table %d to have %+v", n.name, table, want)
	if absent {
		what = fmt.Sprintf("node %s's table %d to lose its route to %s", n.name, table, want.Dst)
	}
	testenv.WaitFor(t, stateTimeout, what, func() (bool, error) {
		got, err := n.vrfRoutes(table)
		if err != nil {
			return false, err
		}
		r, ok := got[want.Dst]
		if absent {
			return !ok, fmt.Errorf("still there: %+v", r)
		}
		return ok && r == want, fmt.Errorf("found %+v (present %v)", r, ok)
	})
}
