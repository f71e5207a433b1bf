package ovs

import (
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// These tests need no OVS: they check the flow text the driver writes.

func TestRangeBlocks(t *testing.T) {
	cases := []struct {
		lo, hi int
		want   []block
	}{
		{80, 80, []block{{80, 0xffff}}},
		{80, 81, []block{{80, 0xfffe}}},
		{0, 65535, []block{{0, 0}}},
		{1, 6, []block{{1, 0xffff}, {2, 0xfffe}, {4, 0xfffe}, {6, 0xffff}}},
		{1024, 2047, []block{{1024, 0xfc00}}},
		{65534, 65535, []block{{65534, 0xfffe}}},
	}
	for _, c := range cases {
		if got := rangeBlocks(c.lo, c.hi); !slices.Equal(got, c.want) {
			t.Errorf("rangeBlocks(%d, %d) = %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

func TestClassifierMatches(t *testing.T) {
	cases := []struct {
		name    string
		c       dataplane.Classifier
		want    []string
		wantErr string
	}{
		{"any", dataplane.Classifier{}, []string{"ip"}, ""},
		{"tcp port", dataplane.Classifier{Protocol: 6, DestinationPort: dataplane.PortRange{Min: 80, Max: 80}},
			[]string{"tcp,tp_dst=80"}, ""},
		{"udp range and prefixes", dataplane.Classifier{Protocol: 17,
			SourcePrefix:      netip.MustParsePrefix("10.0.0.1/24"),
			DestinationPrefix: netip.MustParsePrefix("10.2.2.0/24"),
			SourcePort:        dataplane.PortRange{Min: 1000, Max: 1001},
			DestinationPort:   dataplane.PortRange{Min: 1, Max: 2}},
			[]string{"udp,nw_src=10.0.0.0/24,nw_dst=10.2.2.0/24,tp_src=0x3e8/0xfffe,tp_dst=1",
				"udp,nw_src=10.0.0.0/24,nw_dst=10.2.2.0/24,tp_src=0x3e8/0xfffe,tp_dst=2"}, ""},
		{"ports without protocol", dataplane.Classifier{DestinationPort: dataplane.PortRange{Min: 53}},
			[]string{"tcp,tp_dst=53", "udp,tp_dst=53"}, ""},
		{"icmp", dataplane.Classifier{Protocol: 1}, []string{"icmp"}, ""},
		{"other protocol", dataplane.Classifier{Protocol: 47}, []string{"ip,nw_proto=47"}, ""},
		{"ports with icmp", dataplane.Classifier{Protocol: 1, SourcePort: dataplane.PortRange{Min: 1}}, nil, "ports need TCP"},
		{"reversed range", dataplane.Classifier{Protocol: 6, SourcePort: dataplane.PortRange{Min: 9, Max: 2}}, nil, "below the minimum"},
		{"ipv6", dataplane.Classifier{DestinationPrefix: netip.MustParsePrefix("2001:db8::/32")}, nil, "only IPv4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := classifierMatches(c.c)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestPrefixPriorityAndMatch(t *testing.T) {
	cases := []struct {
		p     string
		prio  int
		match string
	}{
		{"10.2.2.0/24", 0x9000 - 104, "nw_dst=10.2.2.0/24"},
		{"10.2.2.7/32", 0x9000 - 96, "nw_dst=10.2.2.7/32"},
		{"10.2.2.7/16", 0x9000 - 112, "nw_dst=10.2.0.0/16"},
		{"0.0.0.0/0", 0x9000 - 128, ""},
	}
	for _, c := range cases {
		p := netip.MustParsePrefix(c.p)
		if got := prefixPriority(p); got != c.prio {
			t.Errorf("prefixPriority(%s) = %#x, want %#x", p, got, c.prio)
		}
		if got := prefixMatch(p); got != c.match {
			t.Errorf("prefixMatch(%s) = %q, want %q", p, got, c.match)
		}
	}
	if FallbackPriority != 0x8F00 {
		t.Errorf("FallbackPriority = %#x, want 0x8F00", FallbackPriority)
	}
}

// fakeDriver is a Driver with port numbers set, for flow-text tests.
func fakeDriver(opts Options) *Driver {
	if opts.HashMethod == "" {
		opts.HashMethod = "dp_hash"
	}
	return &Driver{opts: opts, log: slog.New(slog.NewTextHandler(io.Discard, nil)), useGRE: opts.MPLSInterface == "",
		inTable: 0, encapIn: 1, vrfTable: 2, mplsInPort: 5, vxlanPort: 6, mplsIfPort: 5,
		mplsIfMAC: "02:00:00:00:ff:01", ofports: map[string]int{}, vrfs: map[uint32]*VRF{},
		macs: map[netip.Addr]route.MAC{netip.MustParseAddr("10.200.0.2"): {0x02, 0, 0, 0, 0xff, 0x02}}}
}

func TestGroupSpec(t *testing.T) {
	local := netip.MustParseAddr("10.200.0.1")
	pe2, pe3 := netip.MustParseAddr("10.200.0.2"), netip.MustParseAddr("10.200.0.3")
	cases := []struct {
		name    string
		opts    Options
		members []member
		want    string
	}{
		{"gre ecmp ordered by lb order", Options{LocalAddress: local},
			[]member{{nextHop: pe3, label: 201, lbOrder: 7}, {nextHop: pe2, label: 200, lbOrder: 3}},
			"group_id=9,type=select,selection_method=dp_hash" +
				",bucket=bucket_id:3,actions=push_mpls:0x8847,set_field:200->mpls_label,set_field:10.200.0.2->tun_dst,output:5" +
				",bucket=bucket_id:7,actions=push_mpls:0x8847,set_field:201->mpls_label,set_field:10.200.0.3->tun_dst,output:5"},
		{"equal lb orders get distinct bucket ids", Options{LocalAddress: local},
			[]member{{nextHop: pe3, label: 201}, {nextHop: pe2, label: 200}},
			"group_id=9,type=select,selection_method=dp_hash" +
				",bucket=bucket_id:0,actions=push_mpls:0x8847,set_field:200->mpls_label,set_field:10.200.0.2->tun_dst,output:5" +
				",bucket=bucket_id:1,actions=push_mpls:0x8847,set_field:201->mpls_label,set_field:10.200.0.3->tun_dst,output:5"},
		{"vxlan and local next hop, hash fields", Options{LocalAddress: local, VXLANEncap: true, HashMethod: "hash",
			HashMethodParam: 42, HashFields: []string{"ip_src", "ip_dst"}},
			[]member{{nextHop: pe2, label: 200, vxlan: true, lbOrder: 1}, {nextHop: local, label: 100, lbOrder: 2},
				{nextHop: local, label: 100, vxlan: true, lbOrder: 3}},
			"group_id=9,type=select,selection_method=hash,selection_method_param=42,fields(ip_src,ip_dst)" +
				",bucket=bucket_id:1,actions=set_field:200->tun_id,set_field:10.200.0.2->tun_dst,output:6" +
				",bucket=bucket_id:2,actions=push_mpls:0x8847,set_field:100->mpls_label,resubmit(5,1)" +
				",bucket=bucket_id:3,actions=set_field:100->tun_id,resubmit(6,1)"},
		{"bare mpls", Options{LocalAddress: local, MPLSInterface: "eth1"},
			[]member{{nextHop: pe2, label: 200}},
			"group_id=9,type=select,selection_method=dp_hash" +
				",bucket=bucket_id:0,actions=push_mpls:0x8847,set_field:200->mpls_label,mod_dl_src:02:00:00:00:ff:01,mod_dl_dst:02:00:00:00:ff:02,output:5"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVRF(fakeDriver(c.opts), dataplane.VRFConfig{InstanceID: 1})
			got, err := v.groupSpec(9, netip.MustParsePrefix("10.2.2.0/24"), c.members)
			if err != nil || got != c.want {
				t.Fatalf("groupSpec:\n got %s (%v)\nwant %s", got, err, c.want)
			}
		})
	}
}

func TestRouteActionsDecTTL(t *testing.T) {
	v := newVRF(fakeDriver(Options{}), dataplane.VRFConfig{InstanceID: 1,
		GatewayIP: netip.MustParseAddr("10.1.1.1"), PrefixLen: 24})
	cases := []struct{ p, want string }{
		{"10.2.2.0/24", "dec_ttl,group:4"}, // elsewhere: routed
		{"10.1.1.20/32", "group:4"},        // inside the VRF subnet
		{"10.1.0.0/16", "dec_ttl,group:4"}, // contains the subnet, not inside it
		{"0.0.0.0/0", "dec_ttl,group:4"},
	}
	for _, c := range cases {
		if got := v.routeActions(netip.MustParsePrefix(c.p), 4); got != c.want {
			t.Errorf("routeActions(%s) = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestOptionsFromConfig(t *testing.T) {
	local := netip.MustParseAddr("192.0.2.1")
	o, err := OptionsFromConfig(map[string]string{
		"ovs_bridge": "br-x", "input_table": "3", "ovs_table_id_start": "10", "vxlan_encap": "true",
		"arp_responder": "true", "proxy_arp": "false", "gre_tunnel": "gre9", "gre_tunnel_options": "packet_type=legacy_l3,key=5",
		"hash_method": "hash", "hash_method_param": "18446744073709551615", "hash_fields": "ip_src, ip_dst",
		"mpls_over_gre": "auto", "mpls_interface": "*gre*",
	}, local)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{LocalAddress: local, Bridge: "br-x", InputTable: 3, TableStart: 10, VXLANEncap: true, ARPResponder: true,
		GRETunnel: "gre9", GRETunnelOptions: []string{"packet_type=legacy_l3", "key=5"}, HashMethod: "hash",
		HashMethodParam: 1<<64 - 1, HashFields: []string{"ip_src", "ip_dst"}, MPLSOverGRE: "auto", MPLSInterface: "*gre*"}
	if !equalOptions(o, want) {
		t.Fatalf("got %+v\nwant %+v", o, want)
	}
	if _, err := OptionsFromConfig(map[string]string{"input_table": "x"}, local); err == nil {
		t.Error("bad input_table accepted")
	}
}

func equalOptions(a, b Options) bool {
	return slices.Equal(a.GRETunnelOptions, b.GRETunnelOptions) && slices.Equal(a.HashFields, b.HashFields) &&
		a.LocalAddress == b.LocalAddress && a.Bridge == b.Bridge && a.InputTable == b.InputTable &&
		a.TableStart == b.TableStart && a.VXLANEncap == b.VXLANEncap && a.ARPResponder == b.ARPResponder &&
		a.ProxyARP == b.ProxyARP && a.GRETunnel == b.GRETunnel && a.HashMethod == b.HashMethod &&
		a.HashMethodParam == b.HashMethodParam && a.MPLSOverGRE == b.MPLSOverGRE && a.MPLSInterface == b.MPLSInterface
}

// TestDecideEncap follows upstream's mpls_interface / mpls_over_gre rules.
func TestDecideEncap(t *testing.T) {
	cases := []struct {
		iface, overGRE string
		gre            bool
		encaps         []route.Encap
	}{
		{"", "auto", true, []route.Encap{route.EncapGRE, route.EncapDefault}},
		{"*gre*", "auto", true, []route.Encap{route.EncapGRE, route.EncapDefault}},
		{"eth1", "auto", false, []route.Encap{route.EncapMPLS, route.EncapDefault}},
		{"eth1", "True", true, []route.Encap{route.EncapGRE, route.EncapDefault}},
		{"eth1", "False", true, []route.Encap{route.EncapGRE, route.EncapDefault}}, // upstream quirk
	}
	for _, c := range cases {
		d := &Driver{opts: Options{MPLSInterface: c.iface, MPLSOverGRE: c.overGRE}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if err := d.decideEncap(); err != nil || d.useGRE != c.gre {
			t.Errorf("%q/%q: useGRE %t (%v), want %t", c.iface, c.overGRE, d.useGRE, err, c.gre)
		}
		if got := d.Encaps(); !slices.Equal(got, c.encaps) {
			t.Errorf("%q/%q: Encaps %v, want %v", c.iface, c.overGRE, got, c.encaps)
		}
		d.opts.VXLANEncap = true
		if got := d.Encaps(); !slices.Contains(got, route.EncapVXLAN) {
			t.Errorf("%q/%q: Encaps %v with vxlan_encap lacks VXLAN", c.iface, c.overGRE, got)
		}
	}
}

// TestApplyRefusesUnprogrammable: changes the driver cannot program are
// named in the error and leave no state (nothing reaches OVS here: the
// batch is empty once they are left out).
func TestApplyRefusesUnprogrammable(t *testing.T) {
	d := fakeDriver(Options{LocalAddress: netip.MustParseAddr("10.200.0.1"), VXLANEncap: true})
	d.r = &runner{ofctl: "/nonexistent/ovs-ofctl"}
	v := newVRF(d, dataplane.VRFConfig{InstanceID: 1})
	pe := netip.MustParseAddr("10.200.0.2")
	err := v.Apply([]dataplane.VRFChange{
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("2001:db8::/64"), NextHop: pe, Label: 1},
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.0.0.0/8"), NextHop: pe, Label: 1 << 20},
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.0.0.0/8"), NextHop: pe, Label: 1 << 24, Encap: route.EncapVXLAN},
		{Kind: dataplane.AddRoute, Prefix: netip.MustParsePrefix("10.0.0.0/8"), NextHop: netip.MustParseAddr("2001:db8::1"), Label: 1},
		{Kind: 9, Prefix: netip.MustParsePrefix("10.0.0.0/8"), NextHop: pe, Label: 1},
	})
	for _, want := range []string{"2001:db8::/64: only IPv4", "MPLS label 1048576 does not fit 20 bits",
		"VNI 16777216 does not fit 24 bits", "next hop 2001:db8::1 is not IPv4", "unknown change kind 9"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if len(v.routes) != 0 {
		t.Errorf("routes kept: %v", v.routes)
	}
}

func TestStaleDropFlows(t *testing.T) {
	dump := `OFPST_FLOW reply (OF1.5) (xid=0x2):
 cookie=0x3, duration=1.2s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=36863,in_port=9,dl_vlan=4 actions=drop
 cookie=0x0, duration=1.2s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=36863,in_port=5 actions=drop
 cookie=0x4, duration=1.2s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=36863,in_port=7 actions=output:1
 cookie=0x4, duration=1.2s, table=0, n_packets=0, n_bytes=0, idle_age=1, priority=36864,ip,in_port=7 actions=drop
 cookie=0x0, duration=2.1s, table=0, n_packets=3, n_bytes=250, idle_age=0, priority=0 actions=NORMAL`
	want := []string{"flow delete_strict table=0,priority=36863,in_port=9,dl_vlan=4"}
	if got := staleDropFlows(dump, 0); !slices.Equal(got, want) {
		t.Errorf("staleDropFlows = %q, want %q", got, want)
	}
}

func TestVersionBelow(t *testing.T) {
	cases := []struct {
		v    string
		want bool
	}{{"3.1.0", false}, {"2.8.0", false}, {"2.7.9", true}, {"1.11", true}, {"", false}, {"x", false}}
	for _, c := range cases {
		if got := versionBelow(c.v, 2, 8); got != c.want {
			t.Errorf("versionBelow(%q, 2, 8) = %t, want %t", c.v, got, c.want)
		}
	}
}
