package ovs

import (
	"net/netip"
	"strings"
	"testing"

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
