package linuxipvpn

import (
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

func TestDriverInitAndCleanup(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{VXLANPort: 4790})
	l := link(t, ns, DeviceName)
	vx, ok := l.(*netlink.Vxlan)
	switch {
	case !ok:
		t.Fatalf("%s is a %s, want vxlan", DeviceName, l.Type())
	case !vx.FlowBased || vx.Port != 4790 || vx.Learning:
		t.Errorf("%s: flow based %v port %d learning %v, want collect_md on 4790 without learning", DeviceName, vx.FlowBased, vx.Port, vx.Learning)
	case l.Attrs().Alias != DeviceAlias:
		t.Errorf("alias %q, want %q", l.Attrs().Alias, DeviceAlias)
	case l.Attrs().HardwareAddr.String() != "00:00:5e:00:43:64":
		t.Errorf("MAC %s, want bagpipe's GATEWAY_MAC", l.Attrs().HardwareAddr)
	case !isUp(l):
		t.Errorf("%s is down", DeviceName)
	}
	tx := link(t, ns, TXDeviceName)
	if mv, ok := tx.(*netlink.Macvlan); !ok || tx.Attrs().ParentIndex != l.Attrs().Index || tx.Attrs().Alias != DeviceAlias ||
		tx.Attrs().HardwareAddr.String() != "02:00:5e:00:43:64" || !isUp(tx) || mv.Mode != netlink.MACVLAN_MODE_BRIDGE {
		t.Errorf("%s: %+v, want an up macvlan of %s with MAC 02:00:5e:00:43:64 and our alias", TXDeviceName, tx.Attrs(), DeviceName)
	}
	out, err := exec.Command("ip", "netns", "exec", ns.name, "cat", "/proc/sys/net/ipv4/ip_forward").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ip_forward in the namespace = %q (%v), want 1", out, err)
	}
	if got := kernelRules(t, d); !slices.Equal(got, baseRules) {
		t.Errorf("our rules %q, want the drop rule and the moved local rule only", got)
	}
	if hasLocalRuleAt(t, d, 0) {
		t.Error("the pref 0 local rule is still there")
	}
	d.Close()

	// A second driver on the same namespace adopts the device (same index).
	d2 := newDriver(t, ns, Options{VXLANPort: 4790})
	if got := link(t, ns, DeviceName).Attrs().Index; got != l.Attrs().Index {
		t.Errorf("second driver recreated %s (index %d → %d)", DeviceName, l.Attrs().Index, got)
	}
	d2.Close()

	if err := Cleanup(ns.name); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	for _, name := range []string{DeviceName, TXDeviceName} {
		if _, err := ns.h.LinkByName(name); err == nil {
			t.Errorf("%s survived Cleanup", name)
		}
	}
	if !hasLocalRuleAt(t, d, 0) {
		t.Error("Cleanup did not restore the pref 0 local rule")
	}
	if hasLocalRuleAt(t, d, prefLocal) {
		t.Error("Cleanup left the moved local rule")
	}
	_, raw, err := openSockets(ns.name)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.close()
	rules, err := raw.rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.Protocol == rtProto {
			t.Errorf("Cleanup left our rule %s", r.rule)
		}
	}
}

// baseRules are the driver's rules without any VRF: the drop rule for
// unknown labels and the moved local-table rule.
var baseRules = []string{"1001: iif bagpipe-vx blackhole", "32765: lookup 255"}

// hasLocalRuleAt uses the raw socket of d, which survives nothing but the
// namespace; open a fresh one instead when d is closed.
func hasLocalRuleAt(t *testing.T, d *Driver, pref int) bool {
	t.Helper()
	_, raw, err := openSockets(d.opts.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.close()
	rules, err := raw.rules()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if r.rule == (rule{Pref: pref, Table: unix.RT_TABLE_LOCAL}) {
			return true
		}
	}
	return false
}

func TestPortInUseByClassicVXLAN(t *testing.T) {
	ns := newNS(t)
	la := netlink.NewLinkAttrs()
	la.Name = "vx-evpn"
	if err := ns.h.LinkAdd(&netlink.Vxlan{LinkAttrs: la, VxlanId: 5000, Port: 4789}); err != nil {
		t.Fatal(err)
	}
	if err := ns.h.LinkSetUp(link(t, ns, "vx-evpn")); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{NetNS: ns.name, VXLANPort: 4789, ReconcileInterval: -1, Log: quietLog()})
	if !errors.Is(err, unix.EADDRINUSE) || !strings.Contains(err.Error(), "vxlan_dst_port") {
		t.Fatalf("New on a port held by a classic VXLAN device: %v, want EADDRINUSE explained", err)
	}
	d := newDriver(t, ns, Options{VXLANPort: 4790})
	if !isUp(link(t, ns, DeviceName)) {
		t.Error("on another port the device should come up")
	}
	_ = d
}

func TestVRFStateAndClose(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	v := newVRF(t, d, 1, "10.1.1.1")
	if v.table != 1001 {
		t.Fatalf("table %d, want 1001", v.table)
	}
	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	apply(t, v, addRoute("10.2.2.0/24", "10.98.0.2", 400))
	tap := link(t, ns, "tap-a")
	if !isUp(tap) {
		t.Error("Plug did not bring the port up")
	}
	vxIdx := link(t, ns, TXDeviceName).Attrs().Index
	// Label 300 is delivered by table 1000 + 65536 + 300.
	wantRules := []string{"1000: iif tap-a lookup 1001", "1000: tun_id 300 lookup 66836", "1001: iif bagpipe-vx blackhole", "32765: lookup 255"}
	if got := kernelRules(t, d); !slices.Equal(got, wantRules) {
		t.Errorf("rules\n got %q\nwant %q", got, wantRules)
	}
	if lt := d.LabelTable(300); lt != 66836 {
		t.Errorf("LabelTable(300) = %d, want 66836", lt)
	}
	wantLabel := map[string]string{"0.0.0.0/0": "table 66836 0.0.0.0/0 type 1 [" + itoa(tap.Attrs().Index) + " 10.1.1.10 0 invalid IP]"}
	if got := tableRoutes(t, d, 66836); !mapsEqual(got, wantLabel) {
		t.Errorf("label table 66836\n got %v\nwant %v", got, wantLabel)
	}
	want := map[string]string{
		"0.0.0.0/0":    "table 1001 0.0.0.0/0 type 7",
		"10.1.1.1/32":  "table 1001 10.1.1.1/32 type 2",
		"10.1.1.10/32": "table 1001 10.1.1.10/32 type 1 [" + itoa(tap.Attrs().Index) + " invalid IP 0 invalid IP]",
		"10.2.2.0/24":  "table 1001 10.2.2.0/24 type 1 [" + itoa(vxIdx) + " 10.98.0.2 400 10.98.0.2]",
	}
	if got := tableRoutes(t, d, 1001); !mapsEqual(got, want) {
		t.Errorf("table 1001\n got %v\nwant %v", got, want)
	}
	if got := neighbours(t, ns, "tap-a"); got["10.1.1.10"] != "02:00:00:00:00:0a" {
		t.Errorf("port neighbours %v, want 10.1.1.10 → 02:00:00:00:00:0a", got)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 1 || got["10.98.0.2"] != "00:00:5e:00:43:64" {
		t.Errorf("%s neighbours %v, want 10.98.0.2 → GATEWAY_MAC", DeviceName, got)
	}
	info := v.Info()
	if lt, _ := info["label_tables"].(map[uint32]int); info["table"] != 1001 || info["routes"] != 1 || len(info["rules"].([]string)) != 2 ||
		len(lt) != 1 || lt[300] != 66836 {
		t.Errorf("Info %v", info)
	}

	// Unplug removes the endpoint's route, neighbour and rules.
	if err := v.Unplug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth, true); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, d); !slices.Equal(got, baseRules) {
		t.Errorf("rules after unplug %q", got)
	}
	if got := tableRoutes(t, d, 66836); len(got) != 0 {
		t.Errorf("label table after unplug %v", got)
	}
	if got := tableRoutes(t, d, 1001); got["10.1.1.10/32"] != "" || len(got) != 3 {
		t.Errorf("table after unplug %v", got)
	}
	if got := neighbours(t, ns, "tap-a"); len(got) != 0 {
		t.Errorf("port neighbours after unplug %v", got)
	}

	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, d); !slices.Equal(got, baseRules) {
		t.Errorf("rules after Close %q", got)
	}
	if got := tableRoutes(t, d, 66836); len(got) != 0 {
		t.Errorf("label table after Close %v", got)
	}
	if got := tableRoutes(t, d, 1001); len(got) != 0 {
		t.Errorf("table after Close %v", got)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 0 {
		t.Errorf("%s neighbours after Close %v", DeviceName, got)
	}
	if got := neighbours(t, ns, "tap-a"); len(got) != 0 {
		t.Errorf("port neighbours after Close %v", got)
	}
	link(t, ns, "tap-a") // the VM interface stays
	if err := v.Apply(nil); err == nil {
		t.Error("Apply after Close succeeded")
	}
}

func TestDirections(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	veth(t, ns, "tap-b", "eth1", vm)
	v := newVRF(t, d, 2, "10.1.1.1")
	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionToPort); err != nil {
		t.Fatal(err)
	}
	if err := v.Plug(port("tap-b"), mac("02:00:00:00:00:0b"), pfx("10.1.1.11/32"), 301, dataplane.DirectionFromPort); err != nil {
		t.Fatal(err)
	}
	want := []string{"1000: iif tap-b lookup 1002", "1000: tun_id 300 lookup 66836", "1001: iif bagpipe-vx blackhole", "32765: lookup 255"}
	if got := kernelRules(t, d); !slices.Equal(got, want) {
		t.Errorf("rules\n got %q\nwant %q", got, want)
	}
	got := tableRoutes(t, d, 1002)
	if got["10.1.1.10/32"] == "" || got["10.1.1.11/32"] != "" {
		t.Errorf("to-port endpoints are routed, from-port ones not: %v", got)
	}
}

func TestECMPAndDefault(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	v := newVRF(t, d, 3, "10.1.1.1")
	vx := itoa(link(t, ns, TXDeviceName).Attrs().Index)
	apply(t, v, addRoute("10.9.0.0/16", "10.98.0.3", 500), addRoute("10.9.0.0/16", "10.98.0.2", 501))
	routes, err := d.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 1003}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	var mp *netlink.Route
	for i := range routes {
		if routes[i].Dst != nil && routes[i].Dst.String() == "10.9.0.0/16" {
			mp = &routes[i]
		}
	}
	if mp == nil || len(mp.MultiPath) != 2 {
		t.Fatalf("10.9.0.0/16 is not a two-member multipath route: %+v", mp)
	}
	wantMP := "table 1003 10.9.0.0/16 type 1 [" + vx + " 10.98.0.2 501 10.98.0.2] [" + vx + " 10.98.0.3 500 10.98.0.3]"
	if got := tableRoutes(t, d, 1003)["10.9.0.0/16"]; got != wantMP {
		t.Errorf("ECMP route\n got %s\nwant %s", got, wantMP)
	}
	apply(t, v, delRoute("10.9.0.0/16", "10.98.0.3", 500))
	want1 := "table 1003 10.9.0.0/16 type 1 [" + vx + " 10.98.0.2 501 10.98.0.2]"
	if got := tableRoutes(t, d, 1003)["10.9.0.0/16"]; got != want1 {
		t.Errorf("after removing one member\n got %s\nwant %s", got, want1)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 1 || got["10.98.0.2"] == "" {
		t.Errorf("PE neighbours %v, want only 10.98.0.2", got)
	}
	// A label change of a member rewrites it.
	apply(t, v, addRoute("10.9.0.0/16", "10.98.0.2", 777))
	if got := tableRoutes(t, d, 1003)["10.9.0.0/16"]; !strings.Contains(got, " 777 ") {
		t.Errorf("label change not applied: %s", got)
	}
	apply(t, v, delRoute("10.9.0.0/16", "10.98.0.2", 777))
	if got := tableRoutes(t, d, 1003)["10.9.0.0/16"]; got != "" {
		t.Errorf("route left after its last member went: %s", got)
	}

	// The default route replaces the unreachable default and restores it.
	apply(t, v, addRoute("0.0.0.0/0", "10.98.0.4", 600))
	if got := tableRoutes(t, d, 1003)["0.0.0.0/0"]; got != "table 1003 0.0.0.0/0 type 1 ["+vx+" 10.98.0.4 600 10.98.0.4]" {
		t.Errorf("default route %s", got)
	}
	apply(t, v, delRoute("0.0.0.0/0", "10.98.0.4", 600))
	if got := tableRoutes(t, d, 1003)["0.0.0.0/0"]; got != "table 1003 0.0.0.0/0 type 7" {
		t.Errorf("default after removal %s, want unreachable", got)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 0 {
		t.Errorf("PE neighbours left %v", got)
	}

	// A next hop that is this node goes via the placeholder gateway.
	apply(t, v, addRoute("10.7.0.0/16", "10.98.0.1", 700))
	if got := tableRoutes(t, d, 1003)["10.7.0.0/16"]; got != "table 1003 10.7.0.0/16 type 1 ["+vx+" 169.254.0.1 700 10.98.0.1]" {
		t.Errorf("local next hop: %s", got)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 1 || got["169.254.0.1"] != "00:00:5e:00:43:64" {
		t.Errorf("neighbours for the local next hop %v", got)
	}
	apply(t, v, delRoute("10.7.0.0/16", "10.98.0.1", 700))
	if got := neighbours(t, ns, TXDeviceName); len(got) != 0 {
		t.Errorf("neighbours left %v", got)
	}

	// Bad changes are refused.

	for _, c := range []dataplane.VRFChange{
		addRoute("10.8.0.0/16", "10.98.0.2", 1<<24),
		{Kind: dataplane.AddRoute, Prefix: pfx("10.8.0.0/16"), NextHop: addr("10.98.0.2"), Label: 5, Encap: 10},
		addRoute("2001:db8::/32", "10.98.0.2", 5),
	} {
		if err := v.Apply([]dataplane.VRFChange{c}); err == nil {
			t.Errorf("Apply(%+v) accepted", c)
		}
	}
}

func TestClassifier(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	v := newVRF(t, d, 4, "10.1.1.1")
	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	c := dataplane.Classifier{SourcePrefix: pfx("10.1.1.0/24"), DestinationPrefix: pfx("10.5.0.0/16"),
		DestinationPort: dataplane.PortRange{Min: 80, Max: 90}, SourcePort: dataplane.PortRange{Min: 1000}, Protocol: 6}
	if err := v.AddClassifier(c, 7); err != nil {
		t.Fatal(err)
	}
	want := "900: from 10.1.1.0/24 to 10.5.0.0/16 iif tap-a ipproto 6 sport 1000-1000 dport 80-90 lookup 1007"
	if got := kernelRules(t, d); !slices.Contains(got, want) {
		t.Errorf("rules %q lack %q", got, want)
	}
	if err := v.UpdateFallback(&dataplane.Fallback{SrcMAC: "x"}); err != nil {
		t.Errorf("UpdateFallback: %v", err)
	}
	if err := v.RemoveClassifier(c, 7); err != nil {
		t.Fatal(err)
	}
	if got := kernelRules(t, d); slices.Contains(got, want) {
		t.Errorf("classifier rule left: %q", got)
	}
}

func TestReconcileRepairs(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	v := newVRF(t, d, 5, "10.1.1.1")
	if err := v.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	apply(t, v, addRoute("10.2.2.0/24", "10.98.0.2", 400))
	before := tableRoutes(t, d, 1005)
	labelBefore := tableRoutes(t, d, 66836)
	rulesBefore := kernelRules(t, d)
	tapNeigh := neighbours(t, ns, "tap-a")

	// Break things by hand: a route, a rule, the label delivery, the drop
	// rule, both neighbours; add stray routes.
	for _, args := range [][]string{
		{"route", "del", "10.2.2.0/24", "table", "1005"},
		{"rule", "del", "pref", "1000", "tun_id", "300"},
		{"route", "del", "default", "table", "66836"},
		{"route", "add", "10.67.0.0/16", "dev", "tap-a", "table", "66836"},
		{"rule", "del", "pref", "1001"},
		{"neigh", "del", "10.1.1.10", "dev", "tap-a"},
		{"neigh", "del", "10.98.0.2", "dev", TXDeviceName},
		{"route", "add", "10.66.0.0/16", "dev", "tap-a", "table", "1005"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	if err := d.Reconcile(); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if got := tableRoutes(t, d, 1005); !mapsEqual(got, before) {
		t.Errorf("table after reconcile\n got %v\nwant %v", got, before)
	}
	if got := kernelRules(t, d); !slices.Equal(got, rulesBefore) {
		t.Errorf("rules after reconcile %q, want %q", got, rulesBefore)
	}
	if got := tableRoutes(t, d, 66836); len(labelBefore) != 1 || !mapsEqual(got, labelBefore) {
		t.Errorf("label table after reconcile\n got %v\nwant %v", got, labelBefore)
	}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, tapNeigh) {
		t.Errorf("port neighbours after reconcile %v, want %v", got, tapNeigh)
	}
	if got := neighbours(t, ns, TXDeviceName); got["10.98.0.2"] != "00:00:5e:00:43:64" {
		t.Errorf("PE neighbour not restored: %v", got)
	}
	if d.Repairs() < 7 {
		t.Errorf("Repairs() = %d, want ≥ 7", d.Repairs())
	}

	// The port recreated under the same name (new index): its route,
	// neighbour and rule follow.
	if err := ns.h.LinkDel(link(t, ns, "tap-a")); err != nil {
		t.Fatal(err)
	}
	veth(t, ns, "tap-a", "eth0", vm)
	if err := d.Reconcile(); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	idx := itoa(link(t, ns, "tap-a").Attrs().Index)
	if got := tableRoutes(t, d, 1005)["10.1.1.10/32"]; got != "table 1005 10.1.1.10/32 type 1 ["+idx+" invalid IP 0 invalid IP]" {
		t.Errorf("endpoint route after the port was recreated: %q", got)
	}
	if got := tableRoutes(t, d, 66836)["0.0.0.0/0"]; got != "table 66836 0.0.0.0/0 type 1 ["+idx+" 10.1.1.10 0 invalid IP]" {
		t.Errorf("label delivery after the port was recreated: %q", got)
	}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, tapNeigh) {
		t.Errorf("port neighbours after the port was recreated %v, want %v", got, tapNeigh)
	}
	if got := kernelRules(t, d); !slices.Equal(got, rulesBefore) {
		t.Errorf("rules after the port was recreated %q, want %q", got, rulesBefore)
	}

	// The device deleted by hand: recreated, remote routes rewritten.
	if err := ns.h.LinkDel(link(t, ns, DeviceName)); err != nil {
		t.Fatal(err)
	}
	if err := d.Reconcile(); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	vx := itoa(link(t, ns, TXDeviceName).Attrs().Index)
	if got := tableRoutes(t, d, 1005)["10.2.2.0/24"]; got != "table 1005 10.2.2.0/24 type 1 ["+vx+" 10.98.0.2 400 10.98.0.2]" {
		t.Errorf("remote route after device recreation: %q", got)
	}
}

func TestAdoptionAndResetState(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	veth(t, ns, "tap-a", "eth0", vm)
	d1 := newDriver(t, ns, Options{})
	v1 := newVRF(t, d1, 6, "10.1.1.1")
	if err := v1.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	// A second MAC on the port, with its own label 302, is not plugged
	// again after the restart.
	if err := v1.Plug(port("tap-a"), mac("02:00:00:00:00:0b"), pfx("10.1.1.11/32"), 302, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	apply(t, v1, addRoute("10.2.2.0/24", "10.98.0.2", 400), addRoute("10.3.3.0/24", "10.98.0.3", 401))
	stale := newVRF(t, d1, 8, "10.8.8.1") // nobody claims it after the restart
	apply(t, stale, addRoute("10.8.0.0/16", "10.98.0.2", 800))
	before := tableRoutes(t, d1, 1006)
	label300, label302 := tableRoutes(t, d1, 66836), tableRoutes(t, d1, 66838)
	if len(label300) != 1 || len(label302) != 1 {
		t.Fatalf("label tables before the restart: %v, %v; want a default route each", label300, label302)
	}
	d1.Close()

	// Restart: routes survive the driver and the new one keeps them while
	// the instances come back.
	d2 := newDriver(t, ns, Options{})
	if err := d2.ResetState(); err != nil {
		t.Fatal(err)
	}
	if got := tableRoutes(t, d2, 1006); !mapsEqual(got, before) {
		t.Fatalf("ResetState during the grace touched an adoptable table\n got %v\nwant %v", got, before)
	}
	if got := tableRoutes(t, d2, 66838); !mapsEqual(got, label302) {
		t.Fatalf("ResetState during the grace touched an adoptable label table\n got %v\nwant %v", got, label302)
	}
	v2 := newVRF(t, d2, 6, "10.1.1.1")
	if !v2.adopted {
		t.Error("the VRF did not adopt its table")
	}
	if err := v2.Plug(port("tap-a"), mac("02:00:00:00:00:0a"), pfx("10.1.1.10/32"), 300, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	apply(t, v2, addRoute("10.2.2.0/24", "10.98.0.2", 400)) // 10.3.3.0/24 not re-advertised
	if err := d2.Reconcile(); err != nil {
		t.Fatal(err)
	}
	// 10.1.1.11 was not plugged again: its route is kept during the grace.
	if got := tableRoutes(t, d2, 1006); !mapsEqual(got, before) {
		t.Fatalf("reconcile during the grace dropped adopted routes\n got %v\nwant %v", got, before)
	}
	if got := tableRoutes(t, d2, 66836); !mapsEqual(got, label300) {
		t.Fatalf("the re-plugged label's table\n got %v\nwant %v", got, label300)
	}
	if got := tableRoutes(t, d2, 66838); !mapsEqual(got, label302) {
		t.Fatalf("reconcile during the grace dropped an adoptable label table\n got %v\nwant %v", got, label302)
	}
	if got := tableRoutes(t, d2, 1008); len(got) == 0 {
		t.Fatal("the unclaimed table went before the grace ended")
	}
	if err := d2.EndGrace(); err != nil {
		t.Fatal(err)
	}
	got := tableRoutes(t, d2, 1006)
	if got["10.3.3.0/24"] != "" || got["10.2.2.0/24"] == "" || got["10.1.1.10/32"] == "" {
		t.Errorf("after the grace: %v, want 10.3.3.0/24 gone and the re-added routes kept", got)
	}
	if got := tableRoutes(t, d2, 1008); len(got) != 0 {
		t.Errorf("unclaimed table 1008 kept after the grace: %v", got)
	}
	if got := tableRoutes(t, d2, 66838); len(got) != 0 {
		t.Errorf("unclaimed label table 66838 kept after the grace: %v", got)
	}
	if got := tableRoutes(t, d2, 66836); !mapsEqual(got, label300) {
		t.Errorf("claimed label table after the grace\n got %v\nwant %v", got, label300)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 1 || got["10.98.0.2"] == "" {
		t.Errorf("PE neighbours after the grace %v, want only 10.98.0.2", got)
	}
	wantRules := []string{"1000: iif tap-a lookup 1006", "1000: tun_id 300 lookup 66836", "1001: iif bagpipe-vx blackhole", "32765: lookup 255"}
	if got := kernelRules(t, d2); !slices.Equal(got, wantRules) {
		t.Errorf("rules %q, want %q", got, wantRules)
	}

	// No grace: ResetState removes every unclaimed object.
	d2.Close()
	d3 := newDriver(t, ns, Options{AdoptGrace: -1})
	if err := d3.ResetState(); err != nil {
		t.Fatal(err)
	}
	if got := tableRoutes(t, d3, 1006); len(got) != 0 {
		t.Errorf("ResetState without grace kept %v", got)
	}
	if got := tableRoutes(t, d3, 66836); len(got) != 0 {
		t.Errorf("ResetState without grace kept the label table %v", got)
	}
	if got := kernelRules(t, d3); !slices.Equal(got, baseRules) {
		t.Errorf("ResetState without grace kept rules %q", got)
	}
	if got := neighbours(t, ns, "tap-a"); len(got) != 0 {
		t.Errorf("ResetState kept the endpoint neighbour %v", got)
	}
	if got := neighbours(t, ns, TXDeviceName); len(got) != 0 {
		t.Errorf("ResetState kept PE neighbours %v", got)
	}
}

func TestDriverInfo(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{VXLANPort: 4791, TableBase: 5000})
	v := newVRF(t, d, 2, "10.1.1.1")
	if v.table != 5002 {
		t.Errorf("table %d, want 5002", v.table)
	}
	info := d.Info()
	if info["name"] != "linux" || info["vxlan_dst_port"] != 4791 || info["device"] != DeviceName || !slices.Equal(info["tables"].([]int), []int{5002}) {
		t.Errorf("Info %v", info)
	}
	if _, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 2, ExternalID: "dup"}); err == nil {
		t.Error("a second VRF on the same table was accepted")
	}
}

func TestOptionsFromConfig(t *testing.T) {
	for _, tc := range []struct {
		in      map[string]string
		port    int
		base    int
		wantErr bool
	}{
		{map[string]string{}, 0, 0, false},
		{map[string]string{"vxlan_dst_port": "4790"}, 4790, 0, false},
		{map[string]string{"table_base": "2000"}, 0, 2000, false},
		{map[string]string{"vxlan_dst_port": "0"}, 0, 0, true},
		{map[string]string{"vxlan_dst_port": "x"}, 0, 0, true},
		{map[string]string{"table_base": "255"}, 0, 0, true},
	} {
		o, err := OptionsFromConfig(Options{}, tc.in)
		if (err != nil) != tc.wantErr || o.VXLANPort != tc.port || o.TableBase != tc.base {
			t.Errorf("OptionsFromConfig(%v) = %+v, %v", tc.in, o, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestReconcileConcurrentWithApply runs reconciles while routes are added
// and removed: a reconcile works from a dump taken before it reads the
// desired state, so it may rewrite entries, but must never leave the
// kernel different from the desired state once both are done.
func TestReconcileConcurrentWithApply(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	v := newVRF(t, d, 9, "10.1.1.1")
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := d.Reconcile(); err != nil {
				errc <- err
				return
			}
		}
	}()
	for round := range 20 {
		var batch []dataplane.VRFChange
		for i := range 100 {
			p := "10.50." + itoa(round) + "." + itoa(i) + "/32"
			batch = append(batch, addRoute(p, "10.98.0."+itoa(2+i%3), uint32(1000+i)))
			if round > 0 && i%2 == 0 {
				batch = append(batch, delRoute("10.50."+itoa(round-1)+"."+itoa(i)+"/32", "10.98.0."+itoa(2+i%3), uint32(1000+i)))
			}
		}
		apply(t, v, batch...)
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatalf("concurrent Reconcile: %v", err)
	}
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	got := tableRoutes(t, d, 1009)
	v.mu.Lock()
	want := len(v.routes) + 2
	for p := range v.routes {
		k, _ := v.desiredRoute(p)
		if got[p.String()] != k.sig() {
			t.Errorf("%s: kernel %q, want %q", p, got[p.String()], k.sig())
		}
	}
	v.mu.Unlock()
	if len(got) != want || want != 20*100-19*50+2 {
		t.Errorf("table holds %d routes, desired %d (want %d)", len(got), want, 20*100-19*50+2)
	}
}
