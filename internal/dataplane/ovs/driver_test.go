package ovs

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// singleNode is one OVS instance with br-mpls and two VM-side veth ends
// (vm1, vm2) in its namespace; no traffic, checks use ofproto/trace.
func singleNode(t *testing.T) *ovsInstance {
	t.Helper()
	requireTools(t)
	ns := newNS(t)
	o := startOVS(t, ns)
	o.addBridge(t, "br-mpls")
	for _, p := range []string{"vm1", "vm2"} {
		sh(t, "ip", "-n", ns, "link", "add", p, "type", "veth", "peer", "name", p+"-vm")
		sh(t, "ip", "-n", ns, "link", "set", p, "up")
	}
	return o
}

var noise = regexp.MustCompile(`(cookie|duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, `)

// flows returns the flows of the bridge with cookie (all if cookie < 0),
// normalised ("table=2, priority=…,match actions=…").
func flows(t *testing.T, o *ovsInstance, cookie int) []string {
	t.Helper()
	args := []string{"dump-flows", "br-mpls"}
	if cookie >= 0 {
		args = append(args, fmt.Sprintf("cookie=%d/-1", cookie))
	}
	var out []string
	for _, l := range strings.Split(o.ofctl(t, args...), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "OFPST") {
			out = append(out, noise.ReplaceAllString(l, ""))
		}
	}
	return out
}

// groups returns the bridge's groups, one line each.
func groups(t *testing.T, o *ovsInstance) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(o.ofctl(t, "dump-groups", "br-mpls"), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "group_id=") {
			out = append(out, l)
		}
	}
	return out
}

func mustContain(t *testing.T, what string, lines []string, want ...string) {
	t.Helper()
	all := strings.Join(lines, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, all)
		}
	}
}

func mustNotContain(t *testing.T, what string, lines []string, bad ...string) {
	t.Helper()
	all := strings.Join(lines, "\n")
	for _, b := range bad {
		if strings.Contains(all, b) {
			t.Errorf("%s still has %q:\n%s", what, b, all)
		}
	}
}

func TestFlowLayout(t *testing.T) {
	o := singleNode(t)
	local := netip.MustParseAddr("10.200.0.1")
	d := newTestDriver(t, o, Options{LocalAddress: local, ARPResponder: true, VXLANEncap: true,
		HashMethod: "hash", HashFields: []string{"ip_src", "ip_dst"}})
	v1, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 1, ExternalID: "red", LocalAddress: local,
		GatewayIP: netip.MustParseAddr("10.1.1.1"), PrefixLen: 24})
	if err != nil {
		t.Fatal(err)
	}
	// The first VRF created the tunnel ports and their input flows.
	var gre, vx int
	fmt.Sscan(o.vsctl(t, "get", "Interface", "mpls_gre", "ofport"), &gre)
	fmt.Sscan(o.vsctl(t, "get", "Interface", "vxlan", "ofport"), &vx)
	if gre <= 0 || vx <= 0 || o.vsctl(t, "get", "Interface", "vxlan", "options") != `{key=flow, local_ip="10.200.0.1", remote_ip=flow}` {
		t.Fatalf("tunnel ports: mpls_gre %d, vxlan %d: %s", gre, vx, o.vsctl(t, "list", "Interface", "vxlan"))
	}
	mustContain(t, "driver flows", flows(t, o, 0),
		fmt.Sprintf("table=0, priority=36864,mpls,in_port=%d actions=resubmit(,1)", gre),
		fmt.Sprintf("table=0, priority=36864,in_port=%d actions=resubmit(,1)", vx))
	vm1MAC := mustMAC(t, "02:00:00:00:01:01")
	if err := v1.Plug(dataplane.LocalPort{LinuxIf: "vm1"}, vm1MAC, netip.MustParsePrefix("10.1.1.10/32"), 100, dataplane.DirectionBoth); err != nil {
		t.Fatalf("Plug: %v", err)
	}
	// The driver added vm1 to the bridge.
	p1 := o.vsctl(t, "get", "Interface", "vm1", "ofport")
	mustContain(t, "VRF 1 flows", flows(t, o, 1),
		"table=0, priority=36864,ip,in_port="+p1+" actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],set_field:0->in_port,set_field:0x1->reg0,resubmit(,2)",
		"table=0, priority=36864,arp,in_port="+p1+" actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],set_field:0->in_port,set_field:0x1->reg0,resubmit(,2)",
		"table=1, priority=36864,mpls,mpls_label=100,mpls_bos=1 actions=pop_mpls:0x0800,set_field:00:00:5e:00:43:64->eth_src,set_field:02:00:00:00:01:01->eth_dst,output:"+p1,
		fmt.Sprintf("table=1, priority=36864,tun_id=0x64,in_port=%d actions=set_field:00:00:5e:00:43:64->eth_src,set_field:02:00:00:00:01:01->eth_dst,output:%s", vx, p1),
		"table=2, priority=36864,arp,reg0=0x1,dl_dst=ff:ff:ff:ff:ff:ff,arp_tpa=10.1.1.1,arp_op=1 actions=",
		"table=0, priority=36863,in_port="+p1+" actions=drop")

	// ECMP: two next hops → one select group, bucket ids = LB orders.
	pfx := netip.MustParsePrefix("10.2.2.0/24")
	pe2, pe3 := netip.MustParseAddr("10.200.0.2"), netip.MustParseAddr("10.200.0.3")
	if err := v1.Apply([]dataplane.VRFChange{
		{Kind: dataplane.AddRoute, Prefix: pfx, NextHop: pe2, Label: 200, Encap: route.EncapGRE, LBOrder: 3},
		{Kind: dataplane.AddRoute, Prefix: pfx, NextHop: pe3, Label: 300, Encap: route.EncapVXLAN, LBOrder: 7},
	}); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	g := v1.(*VRF).routes[pfx].group
	wantGroup := fmt.Sprintf("group_id=%d,type=select,selection_method=hash,fields(ip_src,ip_dst)"+
		",bucket=bucket_id:3,actions=push_mpls:0x8847,set_field:200->mpls_label,set_field:10.200.0.2->tun_dst,output:%d"+
		",bucket=bucket_id:7,actions=set_field:0x12c->tun_id,set_field:10.200.0.3->tun_dst,output:%d", g, gre, vx)
	mustContain(t, "groups", groups(t, o), wantGroup)
	mustContain(t, "VRF 1 flows", flows(t, o, 1), fmt.Sprintf("table=2, priority=36760,ip,reg0=0x1,nw_dst=10.2.2.0/24 actions=dec_ttl,group:%d", g))
	tr := o.trace(t, "br-mpls", "in_port="+p1+",icmp,dl_src=02:00:00:00:01:01,dl_dst=00:00:5e:00:43:64,nw_src=10.1.1.10,nw_dst=10.2.2.5,nw_ttl=64")
	mustContain(t, "trace to 10.2.2.5", []string{tr}, fmt.Sprintf("group:%d", g), "bucket 3", "bucket 7", "using bucket")

	// A batch with one route OVS could not take: the rest is applied and
	// the error names it.
	err = v1.Apply([]dataplane.VRFChange{
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.3.0.0/16"), NextHop: pe2, Label: 1 << 20},
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.4.0.0/16"), NextHop: pe2, Label: 204},
	})
	if err == nil || !strings.Contains(err.Error(), "10.3.0.0/16: MPLS label 1048576") {
		t.Errorf("Apply with a bad label: error %v", err)
	}
	mustContain(t, "VRF 1 flows", flows(t, o, 1), "nw_dst=10.4.0.0/16 actions=dec_ttl,group:")
	mustNotContain(t, "VRF 1 flows", flows(t, o, 1), "nw_dst=10.3.0.0/16")

	// Removing one next hop leaves one bucket in the same group.
	if err := v1.Apply([]dataplane.VRFChange{{Kind: dataplane.RemoveRoute, Prefix: pfx, NextHop: pe3, Label: 300, Encap: route.EncapVXLAN, LBOrder: 7}}); err != nil {
		t.Fatalf("Apply remove: %v", err)
	}
	gl := groups(t, o)
	mustContain(t, "groups", gl, fmt.Sprintf("group_id=%d,type=select,selection_method=hash,fields(ip_src,ip_dst)"+
		",bucket=bucket_id:3,actions=push_mpls:0x8847,set_field:200->mpls_label,set_field:10.200.0.2->tun_dst,output:%d", g, gre))
	mustNotContain(t, "groups", gl, "bucket_id:7")

	// A local next hop resubmits to encap-in through the GRE port: the
	// packet reaches vm1 with the gateway MAC, TTL kept (same subnet).
	if err := v1.Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.1.1.20/32"), NextHop: local, Label: 100}}); err != nil {
		t.Fatalf("Apply local: %v", err)
	}
	tr = o.trace(t, "br-mpls", "in_port="+p1+",icmp,dl_src=02:00:00:00:01:01,nw_src=10.1.1.10,nw_dst=10.1.1.20,nw_ttl=64")
	mustContain(t, "trace to the local next hop", []string{tr}, fmt.Sprintf("resubmit(%d,1)", gre),
		"1. mpls,mpls_label=100,mpls_bos=1", "pop_mpls:0x0800", "output:"+p1)
	mustNotContain(t, "trace to the local next hop", []string{tr}, "dec_ttl")
	// Removing a prefix's last next hop removes its flow and its group.
	lg := v1.(*VRF).routes[netip.MustParsePrefix("10.1.1.20/32")].group
	if err := v1.Apply([]dataplane.VRFChange{{Kind: dataplane.RemoveRoute, Prefix: netip.MustParsePrefix("10.1.1.20/32"), NextHop: local, Label: 100}}); err != nil {
		t.Fatalf("Apply remove local: %v", err)
	}
	mustNotContain(t, "VRF 1 flows", flows(t, o, 1), "nw_dst=10.1.1.20")
	mustNotContain(t, "groups", groups(t, o), fmt.Sprintf("group_id=%d,", lg))
	mustContain(t, "groups", groups(t, o), fmt.Sprintf("group_id=%d,", g))

	// ARP responder: the gateway is answered on the asking port; other
	// addresses are not (proxy_arp off).
	tr = o.trace(t, "br-mpls", "in_port="+p1+",arp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.1.10,arp_tpa=10.1.1.1,arp_sha=02:00:00:00:01:01")
	mustContain(t, "ARP trace for the gateway", []string{tr}, "set_field:2->arp_op", "set_field:00:00:5e:00:43:64->arp_sha",
		"output:NXM_NX_REG2[0..15]", "-> output port is "+p1)
	tr = o.trace(t, "br-mpls", "in_port="+p1+",arp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.1.10,arp_tpa=10.1.1.77")
	mustNotContain(t, "ARP trace for another address", []string{tr}, "set_field:2->arp_op")

	// Classifier: TCP to ports 80-81 goes to VRF 2's lookup (its default
	// route), port 82 stays in VRF 1.
	v2, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 2, ExternalID: "svc", LocalAddress: local,
		GatewayIP: netip.MustParseAddr("10.9.9.1"), PrefixLen: 24,
		Fallback: &dataplane.Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "02:00:00:00:99:98", OVSPortNumber: 78}})
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "VRF 2 flows", flows(t, o, 2), "table=2, priority=36608,reg0=0x2 actions=set_field:00:00:5e:2a:10:00->eth_src,set_field:02:00:00:00:99:98->eth_dst,output:78")
	if err := v2.Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHop: pe3, Label: 900}}); err != nil {
		t.Fatalf("Apply default route: %v", err)
	}
	g2 := v2.(*VRF).routes[netip.MustParsePrefix("0.0.0.0/0")].group
	cl := dataplane.Classifier{Protocol: 6, DestinationPort: dataplane.PortRange{Min: 80, Max: 81}}
	if err := v1.AddClassifier(cl, 2); err != nil {
		t.Fatalf("AddClassifier: %v", err)
	}
	mustContain(t, "VRF 1 flows", flows(t, o, 1), "table=2, priority=36864,tcp,reg0=0x1,tp_dst=0x50/0xfffe actions=set_field:0x2->reg0,resubmit(,2)")
	mustContain(t, "VRF 2 flows", flows(t, o, 2), fmt.Sprintf("table=2, priority=36736,ip,reg0=0x2 actions=dec_ttl,group:%d", g2))
	web := "in_port=" + p1 + ",tcp,dl_src=02:00:00:00:01:01,nw_src=10.1.1.10,nw_dst=10.2.2.5,nw_ttl=64,tp_src=5555,tp_dst="
	mustContain(t, "trace tcp/81", []string{o.trace(t, "br-mpls", web+"81")}, "set_field:0x2->reg0", fmt.Sprintf("group:%d", g2), "set_field:900->mpls_label")
	tr = o.trace(t, "br-mpls", web+"82")
	mustContain(t, "trace tcp/82", []string{tr}, fmt.Sprintf("group:%d", g))
	mustNotContain(t, "trace tcp/82", []string{tr}, "set_field:0x2->reg0")
	if err := v1.RemoveClassifier(cl, 2); err != nil {
		t.Fatalf("RemoveClassifier: %v", err)
	}
	mustNotContain(t, "VRF 1 flows", flows(t, o, 1), "tp_dst=0x50/0xfffe")

	// Fallback: lowest priority, after a VLAN-less port no push_vlan.
	fb := &dataplane.Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "02:00:00:00:99:99", OVSPortNumber: 77}
	if err := v1.UpdateFallback(fb); err != nil {
		t.Fatalf("UpdateFallback: %v", err)
	}
	fbFlow := "table=2, priority=36608,reg0=0x1 actions=set_field:00:00:5e:2a:10:00->eth_src,set_field:02:00:00:00:99:99->eth_dst,output:77"
	mustContain(t, "VRF 1 flows", flows(t, o, 1), fbFlow)
	if err := v1.UpdateFallback(nil); err != nil {
		t.Fatalf("UpdateFallback(nil): %v", err)
	}
	mustNotContain(t, "VRF 1 flows", flows(t, o, 1), "priority=36608")

	// A VLAN port plugged by number into VRF 2: strip on input, push
	// towards the port.
	p2 := o.vsctl(t, "add-port", "br-mpls", "vm2")
	_ = p2
	p2 = o.vsctl(t, "get", "Interface", "vm2", "ofport")
	var p2n int
	fmt.Sscan(p2, &p2n)
	vlanPort := dataplane.LocalPort{LinuxIf: "tap-vm2", OVS: &dataplane.OVSPort{Plugged: true, PortNumber: p2n, VLAN: 10}}
	if err := v2.Plug(vlanPort, mustMAC(t, "02:00:00:00:02:02"), netip.MustParsePrefix("10.9.9.10/32"), 901, dataplane.DirectionToPort); err != nil {
		t.Fatalf("Plug VLAN port: %v", err)
	}
	if err := v2.Plug(vlanPort, mustMAC(t, "02:00:00:00:02:03"), netip.MustParsePrefix("10.9.9.11/32"), 902, dataplane.DirectionFromPort); err != nil {
		t.Fatalf("Plug VLAN port from-port: %v", err)
	}
	f2 := flows(t, o, 2)
	mustContain(t, "VRF 2 flows", f2,
		"table=0, priority=36864,ip,in_port="+p2+",dl_vlan=10 actions=pop_vlan,move:NXM_OF_IN_PORT[]",
		"table=1, priority=36864,mpls,mpls_label=901,mpls_bos=1 actions=pop_mpls:0x0800,push_vlan:0x8100,set_field:4106->vlan_vid,set_field:00:00:5e:00:43:64->eth_src,set_field:02:00:00:00:02:02->eth_dst,output:"+p2)
	mustNotContain(t, "VRF 2 flows", f2, "mpls_label=902") // from-port only
	// The fallback now pushes the ports' VLAN.
	mustContain(t, "VRF 2 flows", f2, "priority=36608,reg0=0x2 actions=set_field:00:00:5e:2a:10:00->eth_src,set_field:02:00:00:00:99:98->eth_dst,push_vlan:0x8100,set_field:4106->vlan_vid,output:78")
	if err := v2.Plug(dataplane.LocalPort{LinuxIf: "vm1"}, vm1MAC, netip.MustParsePrefix("10.9.9.12/32"), 903, dataplane.DirectionBoth); err == nil {
		t.Error("plugging a VLAN-less port into a VRF whose ports use VLAN 10 was accepted")
	}

	// A port on another bridge is refused, not used with a meaningless
	// number.
	o.addBridge(t, "br-other")
	o.vsctl(t, "add-port", "br-other", "vm2-vm")
	err = v1.Plug(dataplane.LocalPort{LinuxIf: "vm2-vm"}, vm1MAC, netip.MustParsePrefix("10.1.1.30/32"), 130, dataplane.DirectionBoth)
	if err == nil || !strings.Contains(err.Error(), `is on bridge "br-other", not "br-mpls"`) {
		t.Errorf("plugging a port of another bridge: %v", err)
	}

	// Unplug vm1's last endpoint: its input flows and encap-in flow go,
	// the port the driver added is deleted from the bridge.
	if err := v1.Unplug(dataplane.LocalPort{LinuxIf: "vm1"}, vm1MAC, netip.MustParsePrefix("10.1.1.10/32"), 100, dataplane.DirectionBoth, true); err != nil {
		t.Fatalf("Unplug: %v", err)
	}
	f1 := flows(t, o, 1)
	mustNotContain(t, "VRF 1 flows after unplug", f1, "in_port="+p1+" ", "in_port="+p1+",", "mpls_label=100", "arp")
	if ports := o.vsctl(t, "list-ports", "br-mpls"); strings.Contains(ports, "vm1") {
		t.Errorf("vm1 still on the bridge after its last unplug: %s", ports)
	}

	// Close removes every flow with the VRF's cookie and its groups.
	if err := v1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if f := flows(t, o, 1); len(f) != 0 {
		t.Errorf("flows with cookie 1 after Close:\n%s", strings.Join(f, "\n"))
	}
	mustNotContain(t, "groups after Close", groups(t, o), fmt.Sprintf("group_id=%d,", g))
	mustContain(t, "groups after closing VRF 1", groups(t, o), fmt.Sprintf("group_id=%d,", g2))
	info := v2.Info()
	if fl, _ := info["flows"].([]string); len(fl) == 0 {
		t.Errorf("VRF 2 Info has no flows: %v", info)
	}
	if gl, _ := info["groups"].([]string); len(gl) != 1 {
		t.Errorf("VRF 2 Info groups = %v, want its one group", info["groups"])
	}
	if err := v2.Close(); err != nil {
		t.Fatalf("Close VRF 2: %v", err)
	}
	if gl := groups(t, o); len(gl) != 0 {
		t.Errorf("groups left after closing every VRF: %v", gl)
	}
	if ports := o.vsctl(t, "list-ports", "br-mpls"); !strings.Contains(ports, "vm2") {
		t.Errorf("vm2 (plugged by the caller) was removed from the bridge: %s", ports)
	}
	di := d.Info()
	if di["ovs_bridge"] != "br-mpls" || di["tunnel_ports"].(map[string]any)["vxlan"] != vx {
		t.Errorf("driver Info = %v", di)
	}
}

// TestResetState checks that ResetState removes what a previous run left
// (flows of our tables, groups) and keeps other tables' flows.
func TestResetState(t *testing.T) {
	o := singleNode(t)
	o.ofctl(t, "add-flow", "br-mpls", "table=5,priority=1,actions=drop")
	o.ofctl(t, "add-flow", "br-mpls", "table=0,priority=7,ip,in_port=1,actions=drop")
	o.ofctl(t, "add-group", "br-mpls", "group_id=77,type=select,bucket=actions=drop")
	d := newTestDriver(t, o, Options{LocalAddress: netip.MustParseAddr("10.200.0.1")})
	v, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.5.0.0/16"), NextHop: netip.MustParseAddr("10.200.0.2"), Label: 5}}); err != nil {
		t.Fatal(err)
	}
	if err := v.Plug(dataplane.LocalPort{OVS: &dataplane.OVSPort{Plugged: true, PortNumber: 9, VLAN: 4}}, mustMAC(t, "02:00:00:00:00:09"), netip.MustParsePrefix("10.5.0.9/32"), 9, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "flows", flows(t, o, 3), "table=0, priority=36863,in_port=9,dl_vlan=4 actions=drop")
	if err := d.ResetState(); err == nil {
		t.Error("ResetState with a live VRF accepted")
	}
	// A new driver (restart) resets what the old one left.
	d2 := newTestDriver(t, o, Options{LocalAddress: netip.MustParseAddr("10.200.0.1")})
	all := flows(t, o, -1)
	mustContain(t, "flows after reset", all, "table=5, priority=1 actions=drop")
	mustNotContain(t, "flows after reset", all, "priority=7,ip", "table=2", "mpls", "in_port=9")
	if gl := groups(t, o); len(gl) != 0 {
		t.Errorf("groups after reset: %v", gl)
	}
	if _, err := d2.NewVRF(dataplane.VRFConfig{InstanceID: 3}); err != nil {
		t.Fatalf("NewVRF after reset: %v", err)
	}
	mustContain(t, "flows after re-initialisation", flows(t, o, 0), ",mpls,in_port=")
}

// TestNewErrors covers the start-up checks.
func TestNewErrors(t *testing.T) {
	o := singleNode(t)
	base := Options{LocalAddress: netip.MustParseAddr("10.200.0.1"), DB: o.db(), RunDir: o.dir}
	cases := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"missing bridge", func(op *Options) { op.Bridge = "br-nope" }, "OVS bridge 'br-nope' doesn't exist"},
		{"same tables", func(op *Options) { op.Bridge = "br-mpls"; op.InputTable = 1 }, "can't use tables same as input table"},
		{"no local address", func(op *Options) { op.Bridge = "br-mpls"; op.LocalAddress = netip.Addr{} }, "must be IPv4"},
		{"bare MPLS interface not on the bridge", func(op *Options) { op.Bridge = "br-mpls"; op.MPLSInterface = "vm2" }, "is not plugged to OVS bridge"},
		{"bad hash method", func(op *Options) { op.Bridge = "br-mpls"; op.HashMethod = "rr" }, "hash_method"},
	}
	for _, c := range cases {
		op := base
		c.mod(&op)
		if _, err := New(op); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}
}

// TestResyncAfterRestart restarts ovs-vswitchd under a programmed VRF:
// Lost notices the missing flows and Resync puts back the same flows and
// groups.
func TestResyncAfterRestart(t *testing.T) {
	o := singleNode(t)
	local := netip.MustParseAddr("10.200.0.1")
	d := newTestDriver(t, o, Options{LocalAddress: local, ARPResponder: true, VXLANEncap: true})
	if lost, err := d.Lost(); lost || err != nil {
		t.Fatalf("Lost before any VRF = %t, %v", lost, err)
	}
	v, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 4, LocalAddress: local, GatewayIP: netip.MustParseAddr("10.1.1.1"), PrefixLen: 24,
		Fallback: &dataplane.Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "02:00:00:00:99:98", OVSPortNumber: 78}})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Plug(dataplane.LocalPort{LinuxIf: "vm1"}, mustMAC(t, "02:00:00:00:01:01"), netip.MustParsePrefix("10.1.1.10/32"), 100, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix("10.2.2.0/24")
	if err := v.Apply([]dataplane.VRFChange{
		{Kind: dataplane.AddRoute, Prefix: pfx, NextHop: netip.MustParseAddr("10.200.0.2"), Label: 200, LBOrder: 1},
		{Kind: dataplane.AddRoute, Prefix: pfx, NextHop: netip.MustParseAddr("10.200.0.3"), Label: 300, Encap: route.EncapVXLAN, LBOrder: 2},
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("0.0.0.0/0"), NextHop: netip.MustParseAddr("10.200.0.3"), Label: 301},
	}); err != nil {
		t.Fatal(err)
	}
	if err := v.AddClassifier(dataplane.Classifier{Protocol: 17, DestinationPort: dataplane.PortRange{Min: 53, Max: 53}}, 5); err != nil {
		t.Fatal(err)
	}
	before, beforeGroups := strings.Join(flows(t, o, -1), "\n"), groups(t, o)
	if lost, err := d.Lost(); lost || err != nil {
		t.Fatalf("Lost on a programmed bridge = %t, %v", lost, err)
	}

	o.restartVswitchd(t, "br-mpls")
	if f := flows(t, o, 4); len(f) != 0 {
		t.Fatalf("flows survived the restart, the test proves nothing: %v", f)
	}
	lost, err := d.Lost()
	if err != nil || !lost {
		t.Fatalf("Lost after restart = %t, %v; want true", lost, err)
	}
	if err := d.Resync(); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	after, afterGroups := strings.Join(flows(t, o, -1), "\n"), groups(t, o)
	if sortedLines(after) != sortedLines(before) {
		t.Errorf("flows after Resync differ:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if sortedLines(strings.Join(afterGroups, "\n")) != sortedLines(strings.Join(beforeGroups, "\n")) {
		t.Errorf("groups after Resync differ:\nbefore: %v\nafter:  %v", beforeGroups, afterGroups)
	}
	if lost, err := d.Lost(); lost || err != nil {
		t.Errorf("Lost after Resync = %t, %v", lost, err)
	}

	// Watch does the same by itself.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Watch(ctx, 100*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	o.restartVswitchd(t, "br-mpls")
	for i := 0; sortedLines(strings.Join(flows(t, o, -1), "\n")) != sortedLines(before); i++ {
		if i == 300 {
			t.Fatalf("Watch did not restore the flows:\n%s", strings.Join(flows(t, o, -1), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sortedLines(s string) string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return strings.Join(l, "\n")
}

// TestARPResponderOptions: proxy_arp answers every address; without
// arp_responder there is no responder at all.
func TestARPResponderOptions(t *testing.T) {
	o := singleNode(t)
	local := netip.MustParseAddr("10.200.0.1")
	cfg := dataplane.VRFConfig{InstanceID: 1, LocalAddress: local, GatewayIP: netip.MustParseAddr("10.1.1.1"), PrefixLen: 24}
	arp := func(p1, tpa string) string {
		return o.trace(t, "br-mpls", "in_port="+p1+",arp,dl_src=02:00:00:00:01:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.1.1.10,arp_tpa="+tpa)
	}
	for _, c := range []struct {
		name             string
		responder, proxy bool
		answered         map[string]bool
	}{
		{"proxy", true, true, map[string]bool{"10.1.1.1": true, "10.1.1.77": true, "192.0.2.1": true}},
		{"off", false, false, map[string]bool{"10.1.1.1": false, "10.1.1.77": false}},
	} {
		d := newTestDriver(t, o, Options{LocalAddress: local, ARPResponder: c.responder, ProxyARP: c.proxy})
		v, err := d.NewVRF(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Plug(dataplane.LocalPort{LinuxIf: "vm1"}, mustMAC(t, "02:00:00:00:01:01"), netip.MustParsePrefix("10.1.1.10/32"), 100, dataplane.DirectionBoth); err != nil {
			t.Fatal(err)
		}
		p1 := o.vsctl(t, "get", "Interface", "vm1", "ofport")
		for tpa, want := range c.answered {
			if got := strings.Contains(arp(p1, tpa), "set_field:2->arp_op"); got != want {
				t.Errorf("%s: ARP request for %s answered = %t, want %t", c.name, tpa, got, want)
			}
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
