package ovs

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestPingBetweenNodes builds two nodes, each with its own userspace OVS
// and this driver on br-mpls, plugs one VM per node (different subnets,
// so traffic is routed: TTL 63), applies the remote route on each side
// and pings VM B from VM A, for each encapsulation.
func TestPingBetweenNodes(t *testing.T) {
	requireTools(t)
	cases := []struct {
		name  string
		opts  Options
		encap route.Encap
		// wire is what the datapath flow of the echo request on A must
		// show: the encapsulation with B's label 200 (0xc8).
		wire []string
	}{
		// MPLS/Ethernet/GRE: GRE protocol 0x6558 (transparent Ethernet).
		{"mpls-eth-gre", Options{}, route.EncapGRE, []string{"push_mpls(label=200,", "gre((flags=0x0,proto=0x6558))"}},
		// RFC 4023 MPLS-in-GRE: GRE protocol 0x8847 (MPLS unicast).
		{"mpls-gre-rfc4023", Options{GRETunnelOptions: []string{"packet_type=legacy_l3"}}, route.EncapGRE,
			[]string{"push_mpls(label=200,", "gre((flags=0x0,proto=0x8847))"}},
		{"vxlan", Options{VXLANEncap: true}, route.EncapVXLAN, []string{"vxlan(flags=0x8000000,vni=0xc8)"}},
		{"default-encap-is-gre", Options{VXLANEncap: true}, route.EncapDefault, []string{"push_mpls(label=200,", "proto=0x6558"}},
		// Bare MPLS: the label is pushed and the frame goes out of the
		// MPLS interface to B's bridge MAC, no tunnel header.
		{"bare-mpls", Options{MPLSInterface: "mpls-if"}, route.EncapMPLS, []string{"push_mpls(label=200,"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newLab(t)
			labels := map[*node]uint32{a: 100, b: 200}
			vrfs := map[*node]dataplane.VRFDataplane{}
			for _, n := range []*node{a, b} {
				opts := tc.opts
				opts.LocalAddress, opts.ARPResponder = n.underlay, true
				if opts.MPLSInterface != "" {
					bareMPLSNode(t, n)
				}
				d := newTestDriver(t, n.ovs, opts)
				v, err := d.NewVRF(n.vrfConfig())
				if err != nil {
					t.Fatalf("NewVRF: %v", err)
				}
				t.Cleanup(func() { v.Close() })
				port := dataplane.LocalPort{LinuxIf: n.vmPort}
				host := netip.PrefixFrom(n.vmIP.Addr(), 32)
				if err := v.Plug(port, mustMAC(t, n.vmMAC), host, labels[n], dataplane.DirectionBoth); err != nil {
					t.Fatalf("Plug: %v", err)
				}
				vrfs[n] = v
			}
			for n, peer := range map[*node]*node{a: b, b: a} {
				err := vrfs[n].Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: peer.vmIP.Masked(),
					NextHop: peer.underlay, Label: labels[peer], Encap: tc.encap}})
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			out := a.ping(t, b.vmIP.Addr())
			if !strings.Contains(out, "ttl=63") {
				t.Errorf("ping output without ttl=63 (routed once by the VRF):\n%s", out)
			}
			tcpTransfer(t, a.vm, b.vm, netip.AddrPortFrom(b.vmIP.Addr(), 5001), 2<<20)
			// The select group splits the datapath flow at a dp_hash
			// recirculation: the encapsulation is in the second half.
			req := a.ovs.datapathFlow(t, tc.wire...)
			if tc.encap == route.EncapVXLAN && strings.Contains(req, "push_mpls") {
				t.Errorf("VXLAN route pushed an MPLS label:\n%s", req)
			}
			if tc.opts.MPLSInterface != "" && strings.Contains(req, "tnl_push") {
				t.Errorf("bare MPLS route used a tunnel:\n%s", req)
			}
		})
	}
}

// bareMPLSNode moves the node's underlay from br-phy to an OVS internal
// port-less setup for bare MPLS: the underlay veth becomes mpls_interface
// "mpls-if" on br-mpls, and the node's IP sits on br-mpls itself (the
// bridge's internal port), as upstream's bare MPLS mode expects. Non-MPLS
// traffic is switched by the bridge's default NORMAL flow.
func bareMPLSNode(t *testing.T, n *node) {
	t.Helper()
	u := "u" + n.vmPort[1:]
	n.ovs.vsctl(t, "del-port", "br-phy", u)
	sh(t, "ip", "-n", n.ns, "addr", "del", n.underlay.String()+"/24", "dev", "br-phy")
	sh(t, "ip", "-n", n.ns, "link", "set", u, "down")
	sh(t, "ip", "-n", n.ns, "link", "set", u, "name", "mpls-if")
	sh(t, "ip", "-n", n.ns, "link", "set", "mpls-if", "up")
	n.ovs.vsctl(t, "add-port", "br-mpls", "mpls-if")
	sh(t, "ip", "-n", n.ns, "addr", "add", n.underlay.String()+"/24", "dev", "br-mpls")
	sh(t, "ip", "-n", n.ns, "link", "set", "br-mpls", "up")
}

// addVM creates a VM namespace plugged through veth host (in n.ns) with
// ip/24 and mac, gateway .1, MTU 1400 and TX checksum offload off.
func addVM(t *testing.T, n *node, host, mac string, ip netip.Prefix, gw netip.Addr) string {
	t.Helper()
	vm := newNS(t)
	sh(t, "ip", "link", "add", host, "netns", n.ns, "type", "veth", "peer", "name", "eth0", "netns", vm)
	sh(t, "ip", "-n", n.ns, "link", "set", host, "up")
	sh(t, "ip", "-n", vm, "link", "set", "eth0", "address", mac, "mtu", "1400", "up")
	sh(t, "ip", "-n", vm, "addr", "add", ip.String(), "dev", "eth0")
	sh(t, "ip", "-n", vm, "route", "add", "default", "via", gw.String())
	sh(t, "ip", "netns", "exec", vm, "ethtool", "-K", "eth0", "tx", "off")
	sh(t, "ip", "netns", "exec", n.ns, "ethtool", "-K", host, "tx", "off")
	return vm
}

// TestOverlappingVRFs runs two VRFs with the same addresses on both
// nodes (VRF 1: labels 100/200, VRF 2: labels 101/201): each VRF's pings
// reach only its own VM, and nothing else (IPv6 here) crosses from one
// VRF's port to the other's on the shared bridge.
func TestOverlappingVRFs(t *testing.T) {
	requireTools(t)
	a, b := newLab(t)
	vm2 := map[*node]string{
		a: addVM(t, a, "vA2", "02:00:00:00:0a:02", a.vmIP, a.gateway),
		b: addVM(t, b, "vB2", "02:00:00:00:0b:02", b.vmIP, b.gateway),
	}
	type vrfSpec struct {
		id     uint32
		port   map[*node]string
		mac    map[*node]string
		labels map[*node]uint32
	}
	specs := []vrfSpec{
		{1, map[*node]string{a: "vA", b: "vB"}, map[*node]string{a: a.vmMAC, b: b.vmMAC}, map[*node]uint32{a: 100, b: 200}},
		{2, map[*node]string{a: "vA2", b: "vB2"}, map[*node]string{a: "02:00:00:00:0a:02", b: "02:00:00:00:0b:02"}, map[*node]uint32{a: 101, b: 201}},
	}
	for _, n := range []*node{a, b} {
		peer := b
		if n == b {
			peer = a
		}
		d := newTestDriver(t, n.ovs, Options{LocalAddress: n.underlay, ARPResponder: true})
		for _, s := range specs {
			cfg := n.vrfConfig()
			cfg.InstanceID = s.id
			v, err := d.NewVRF(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { v.Close() })
			if err := v.Plug(dataplane.LocalPort{LinuxIf: s.port[n]}, mustMAC(t, s.mac[n]), netip.PrefixFrom(n.vmIP.Addr(), 32), s.labels[n], dataplane.DirectionBoth); err != nil {
				t.Fatal(err)
			}
			if err := v.Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: peer.vmIP.Masked(), NextHop: peer.underlay, Label: s.labels[peer]}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	nPackets := func(label string) int { return b.ovs.flowPackets(t, "table=1,mpls,mpls_label="+label) }
	a.ping(t, b.vmIP.Addr())
	if got := nPackets("201"); got != 0 {
		t.Errorf("VRF 1 pings reached VRF 2's VM on B (%d packets on label 201)", got)
	}
	if nPackets("200") == 0 {
		t.Errorf("VRF 1 pings did not use label 200")
	}
	vmA := a.vm
	a.vm = vm2[a]
	a.ping(t, b.vmIP.Addr())
	a.vm = vmA
	if nPackets("201") == 0 {
		t.Errorf("VRF 2 pings did not use label 201")
	}

	// Nothing but the VRFs' IPv4 and ARP leaves a VM port: an IPv6
	// all-nodes ping from VRF 1's VM must not be answered by VRF 2's VM.
	// Both link-local addresses must have passed DAD, or the check
	// would pass for want of an answer.
	for _, vm := range []string{a.vm, vm2[a]} {
		for i := 0; strings.TrimSpace(sh(t, "ip", "-n", vm, "-6", "addr", "show", "dev", "eth0", "tentative")) != ""; i++ {
			if i == 200 {
				t.Fatalf("the link-local address of %s stays tentative", vm)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	ll := sh(t, "ip", "-n", vm2[a], "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	f := strings.Fields(ll)
	if len(f) < 4 {
		t.Fatalf("no link-local address on VRF 2's VM: %q", ll)
	}
	other := strings.Split(f[3], "/")[0]
	out, _ := exec.Command("ip", "netns", "exec", a.vm, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "1", "-I", "eth0", "ff02::1").CombinedOutput()
	if strings.Contains(string(out), other) {
		t.Errorf("IPv6 crossed from VRF 1's port to VRF 2's VM (%s answered):\n%s", other, out)
	}
}

// inNS runs fn on a locked OS thread moved into network namespace name:
// sockets fn creates live there.
func inNS(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked: Go discards it with the goroutine.
		return fmt.Errorf("returning to the original namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// tcpTransfer sends size bytes over TCP from namespace from to a listener
// on addr in namespace to, and checks they all arrive. This is what the
// userspace datapath's gotchas break (TX checksum offload, MTU): the lab
// turns offload off and uses MTU 1400. The deadline only guards against
// a hang.
func tcpTransfer(t *testing.T, from, to string, addr netip.AddrPort, size int) {
	t.Helper()
	var ln net.Listener
	if err := inNS(to, func() (err error) { ln, err = net.Listen("tcp", addr.String()); return }); err != nil {
		t.Fatalf("listen in %s: %v", to, err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}()
	var c net.Conn
	if err := inNS(from, func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 30*time.Second); return }); err != nil {
		t.Fatalf("TCP connect from %s to %s: %v", from, addr, err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write(make([]byte, size)); err != nil {
		c.Close()
		t.Fatalf("TCP send to %s: %v", addr, err)
	}
	c.Close()
	if n := <-got; n != int64(size) {
		t.Fatalf("TCP transfer to %s: %d bytes arrived, want %d", addr, n, size)
	}
}

// TestECMPTraffic: A reaches the anycast 10.2.2.10 through B and C (one
// select group, two buckets); TCP connections with different source
// ports are spread over both, and after B's next hop is removed
// everything goes to C.
func TestECMPTraffic(t *testing.T) {
	requireTools(t)
	a, b, c := newLab3(t)
	labels := map[*node]uint32{a: 100, b: 200, c: 300}
	vrfs := map[*node]dataplane.VRFDataplane{}
	for _, n := range []*node{a, b, c} {
		d := newTestDriver(t, n.ovs, Options{LocalAddress: n.underlay, ARPResponder: true})
		v, err := d.NewVRF(n.vrfConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		if err := v.Plug(dataplane.LocalPort{LinuxIf: n.vmPort}, mustMAC(t, n.vmMAC), netip.PrefixFrom(n.vmIP.Addr(), 32), labels[n], dataplane.DirectionBoth); err != nil {
			t.Fatal(err)
		}
		vrfs[n] = v
	}
	anycast := netip.MustParsePrefix("10.2.2.0/24")
	viaB := dataplane.VRFChange{Kind: dataplane.AddRoute, Prefix: anycast, NextHop: b.underlay, Label: 200, LBOrder: 1}
	viaC := dataplane.VRFChange{Kind: dataplane.AddRoute, Prefix: anycast, NextHop: c.underlay, Label: 300, LBOrder: 2}
	if err := vrfs[a].Apply([]dataplane.VRFChange{viaB, viaC}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		if err := vrfs[n].Apply([]dataplane.VRFChange{{Kind: dataplane.AddRoute, Prefix: a.vmIP.Masked(), NextHop: a.underlay, Label: 100}}); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up both tunnels (ARP for B and C on A's br-phy).
	for _, n := range []*node{b, c} {
		sh(t, "ip", "netns", "exec", a.ns, "ping", "-c", "1", "-W", "2", n.underlay.String())
	}
	inPackets := func(n *node) int {
		return n.ovs.flowPackets(t, fmt.Sprintf("table=1,mpls,mpls_label=%d", labels[n]))
	}
	a.ping(t, netip.MustParseAddr("10.2.2.10"))
	const conns = 16
	for i := 0; i < conns; i++ {
		tcpTransferECMP(t, a.vm, []string{b.vm, c.vm}, netip.MustParseAddrPort("10.2.2.10:5001"))
	}
	pb, pc := inPackets(b), inPackets(c)
	if pb == 0 || pc == 0 {
		t.Errorf("%d TCP connections were not spread over both next hops: %d packets via B, %d via C", conns, pb, pc)
	}

	// Withdraw B: the group keeps one bucket, everything goes to C.
	viaB.Kind = dataplane.RemoveRoute
	if err := vrfs[a].Apply([]dataplane.VRFChange{viaB}); err != nil {
		t.Fatal(err)
	}
	pb, pc = inPackets(b), inPackets(c)
	for i := 0; i < conns/2; i++ {
		tcpTransferECMP(t, a.vm, []string{b.vm, c.vm}, netip.MustParseAddrPort("10.2.2.10:5001"))
	}
	if nb, nc := inPackets(b), inPackets(c); nb != pb || nc == pc {
		t.Errorf("after B's withdrawal: B got %d more packets (want 0), C %d more (want > 0)", nb-pb, nc-pc)
	}
}

// tcpTransferECMP opens one TCP connection from namespace from to addr,
// which listeners in every namespace of to serve (an anycast address),
// and sends a few bytes.
func tcpTransferECMP(t *testing.T, from string, to []string, addr netip.AddrPort) {
	t.Helper()
	got := make(chan int64, len(to))
	for _, ns := range to {
		var ln net.Listener
		if err := inNS(ns, func() (err error) { ln, err = net.Listen("tcp", addr.String()); return }); err != nil {
			t.Fatalf("listen in %s: %v", ns, err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return // closed: the connection went to another listener
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			n, _ := io.Copy(io.Discard, c)
			got <- n
		}()
	}
	var c net.Conn
	if err := inNS(from, func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 30*time.Second); return }); err != nil {
		t.Fatalf("TCP connect from %s to %s: %v", from, addr, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("hello over ECMP")); err != nil {
		t.Fatalf("TCP send: %v", err)
	}
	c.Close()
	if n := <-got; n != 15 {
		t.Fatalf("TCP transfer: %d bytes arrived, want 15", n)
	}
}
