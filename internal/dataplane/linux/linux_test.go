package linux

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

func TestNewEVICreatesBridgeAndVXLAN(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{VXLANPort: 4790})
	e := newEVI(t, d, "evpn-test-1", 100, "")

	br := link(t, ns, e.brName)
	if br.Type() != "bridge" || !isUp(br) || br.Attrs().Alias != "bagpipe-evpn:evpn-test-1:100" {
		t.Errorf("bridge %s: type %s up %v alias %q", e.brName, br.Type(), isUp(br), br.Attrs().Alias)
	}
	l := link(t, ns, e.vxName)
	vx, ok := l.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s, want vxlan", e.vxName, l.Type())
	}
	src, _ := netip.AddrFromSlice(vx.SrcAddr)
	checks := []struct {
		what      string
		got, want any
	}{
		{"vni", vx.VxlanId, 100},
		{"dstport", vx.Port, 4790},
		{"local", src.Unmap(), addr("10.99.0.1")},
		{"learning", vx.Learning, false},
		{"proxy", vx.Proxy, true},
		{"master", vx.MasterIndex, br.Attrs().Index},
		{"up", isUp(vx), true},
		{"alias", vx.Alias, "bagpipe-evpn:evpn-test-1:100"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("vxlan %s: %s = %v, want %v", e.vxName, c.what, c.got, c.want)
		}
	}
	info := e.Info()
	if info["linux_bridge"] != e.brName || info["vxlan_if"] != e.vxName {
		t.Errorf("Info = %v", info)
	}
	if got := d.Info()["owned_interfaces"].([]string); len(got) != 2 {
		t.Errorf("driver Info owned_interfaces = %v, want 2 interfaces", got)
	}
}

func TestNamesFitAndDiffer(t *testing.T) {
	long := strings.Repeat("a", 60)
	ids := []string{long + "1", long + "2", "x", "net-0123456789abcdef"}
	seen := map[string]string{}
	for _, id := range ids {
		br, vx := ifNames(id)
		for _, n := range []string{br, vx} {
			if len(n) > ifNameMax {
				t.Errorf("%s: name %q has %d characters, more than %d", id, n, len(n), ifNameMax)
			}
			if other, dup := seen[n]; dup {
				t.Errorf("ids %q and %q both map to %q", other, id, n)
			}
			seen[n] = id
		}
	}
	// Both really exist side by side in the kernel.
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	a := newEVI(t, d, long+"1", 101, "")
	b := newEVI(t, d, long+"2", 102, "")
	for _, n := range []string{a.brName, a.vxName, b.brName, b.vxName} {
		if !exists(t, ns, n) {
			t.Errorf("%s missing", n)
		}
	}
}

func TestAliasRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		id    string
		vni   uint32
		owner string
	}{
		{"a", 1, "a"},
		{"with:colons:1", 16777215, "with:colons:1"},
		{strings.Repeat("z", 300), 7, ""}, // hashed
	} {
		al := aliasOf(tc.id, tc.vni)
		owner, vni, ok := parseAlias(al)
		if !ok || vni != tc.vni || len(al) > ifAliasMax {
			t.Errorf("aliasOf(%q) = %q: parse %q %d %v", tc.id, al, owner, vni, ok)
		}
		if tc.owner != "" && owner != tc.owner || tc.owner == "" && !strings.HasPrefix(owner, "#") {
			t.Errorf("aliasOf(%q): owner %q", tc.id, owner)
		}
	}
	if _, _, ok := parseAlias("something else"); ok {
		t.Error("foreign alias parsed as ours")
	}
}

func TestNameTakenByForeignInterface(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	brName, _ := ifNames("taken")
	bridge(t, ns, brName, "") // no alias: not ours
	if _, err := d.NewEVI(dataplane.EVIConfig{ExternalID: "taken", VNI: 5}); err == nil || !strings.Contains(err.Error(), "not owned by bagpipe") {
		t.Fatalf("NewEVI over a foreign interface: err = %v", err)
	}
	if !exists(t, ns, brName) {
		t.Error("foreign interface deleted")
	}
}

func TestPlugUnplug(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "plug", 200, "")
	veth(t, ns, "vm0", "vm0p", nil)
	m1 := mac("02:00:00:00:00:01")

	if err := e.Plug(port("vm0"), m1, addr("10.1.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := e.Plug(port("vm0"), m1, addr("10.1.0.2")); err != nil {
		t.Fatal(err)
	}
	vm0 := link(t, ns, "vm0")
	if vm0.Attrs().MasterIndex != e.brIndex || !isUp(vm0) {
		t.Errorf("vm0: master %d (bridge %d) up %v", vm0.Attrs().MasterIndex, e.brIndex, isUp(vm0))
	}
	if got := portFDB(t, ns, "vm0"); got["02:00:00:00:00:01"] != netlink.NUD_NOARP {
		t.Errorf("static fdb on vm0 = %v, want 02:00:00:00:00:01 static (NOARP)", got)
	}
	// One endpoint of the MAC goes: the entry stays for the other one.
	if err := e.Unplug(port("vm0"), m1, addr("10.1.0.1"), false); err != nil {
		t.Fatal(err)
	}
	if got := portFDB(t, ns, "vm0"); len(got) != 1 {
		t.Errorf("after the first unplug: fdb %v, want the entry kept", got)
	}
	if err := e.Unplug(port("vm0"), m1, addr("10.1.0.2"), true); err != nil {
		t.Fatal(err)
	}
	vm0 = link(t, ns, "vm0")
	if vm0.Attrs().MasterIndex != 0 {
		t.Errorf("vm0 still in a bridge (master %d) after the last unplug", vm0.Attrs().MasterIndex)
	}
	if got := portFDB(t, ns, "vm0"); len(got) != 0 {
		t.Errorf("static fdb left on vm0: %v", got)
	}

	err := e.Plug(port("nosuchif"), m1, netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Plug of a missing interface: err = %v", err)
	}
}

func TestApplyRemoteState(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "apply", 300, "")
	const m1, m2 = "02:00:00:00:01:01", "02:00:00:00:01:02"

	apply(t, e,
		addMAC(m1, "10.99.0.2", 300),
		addMAC(m2, "10.99.0.3", 5000), // asymmetric VNI
		addFlood("10.99.0.2", 300),
		addFlood("10.99.0.3", 300),
		addIP("10.1.0.11", m1),
	)
	perm, self := netlink.NUD_PERMANENT, netlink.NTF_SELF
	want := []fdbEntry{
		{"00:00:00:00:00:00", "10.99.0.2", 0, perm, self}, // VNI omitted by the kernel when it is the device's
		{"00:00:00:00:00:00", "10.99.0.3", 0, perm, self},
		{m1, "10.99.0.2", 0, perm, self},
		{m2, "10.99.0.3", 5000, perm, self},
	}
	if got := vxlanFDB(t, ns, e.vxName); !slices.Equal(got, want) {
		t.Errorf("fdb after adds:\n got %v\nwant %v", got, want)
	}
	if got := neighbours(t, ns, e.vxName); len(got) != 1 || got["10.1.0.11"] != m1 {
		t.Errorf("neighbours = %v", got)
	}

	// MAC move: Add(new) then Remove(old) keeps the new entry.
	apply(t, e, addMAC(m1, "10.99.0.3", 300), delMAC(m1, "10.99.0.2", 300))
	// A stale remove for a destination never programmed is harmless.
	apply(t, e, delMAC(m2, "10.99.0.9", 5000), delFlood("10.99.0.2", 300))
	want = []fdbEntry{
		{"00:00:00:00:00:00", "10.99.0.3", 0, perm, self},
		{m1, "10.99.0.3", 0, perm, self},
		{m2, "10.99.0.3", 5000, perm, self},
	}
	if got := vxlanFDB(t, ns, e.vxName); !slices.Equal(got, want) {
		t.Errorf("fdb after move:\n got %v\nwant %v", got, want)
	}

	// IP move: new MAC added before the old one is removed.
	apply(t, e, addIP("10.1.0.11", m2), delIP("10.1.0.11", m1))
	if got := neighbours(t, ns, e.vxName); got["10.1.0.11"] != m2 {
		t.Errorf("neighbour after IP move = %v, want %s", got, m2)
	}
	apply(t, e, delIP("10.1.0.11", m2), delMAC(m1, "10.99.0.3", 300), delMAC(m2, "10.99.0.3", 5000), delFlood("10.99.0.3", 300))
	if got := neighbours(t, ns, e.vxName); len(got) != 0 {
		t.Errorf("neighbours left: %v", got)
	}
	if got := vxlanFDB(t, ns, e.vxName); len(got) != 0 {
		t.Errorf("fdb left: %v", got)
	}

	// A bad change fails alone; the rest of the batch is applied.
	err := e.Apply([]dataplane.EVIChange{
		{Kind: dataplane.AddRemoteMAC, MAC: mac(m1)}, // no VTEP
		addMAC(m2, "10.99.0.4", 300),
	})
	if err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("Apply with a bad change: err = %v", err)
	}
	if got := vxlanFDB(t, ns, e.vxName); len(got) != 1 || got[0].mac != m2 {
		t.Errorf("fdb after a partly failed batch: %v", got)
	}
}

func TestCloseRemovesOnlyOwnState(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "close", 400, "")
	veth(t, ns, "vm1", "vm1p", nil)
	bridge(t, ns, "foreign0", "")
	bridge(t, ns, "foreign1", "someone-else:x:1")
	if err := e.Plug(port("vm1"), mac("02:00:00:00:02:01"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetGatewayPort("vm1p"); err != nil {
		t.Fatal(err)
	}
	apply(t, e, addMAC("02:00:00:00:02:02", "10.99.0.2", 400), addFlood("10.99.0.2", 400), addIP("10.1.0.2", "02:00:00:00:02:02"))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// The devices go in the background (teardown.go): wait for them.
	if err := d.WaitTeardown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{e.brName, e.vxName} {
		if exists(t, ns, n) {
			t.Errorf("%s left after Close", n)
		}
	}
	for _, n := range []string{"vm1", "vm1p", "foreign0", "foreign1"} {
		if !exists(t, ns, n) {
			t.Errorf("%s deleted by Close", n)
		}
	}
	if m := link(t, ns, "vm1").Attrs().MasterIndex; m != 0 {
		t.Errorf("vm1 still enslaved (master %d)", m)
	}
	if err := e.Apply([]dataplane.EVIChange{addFlood("10.99.0.2", 400)}); err == nil {
		t.Error("Apply after Close succeeded")
	}
	if len(d.evis) != 0 || len(d.names) != 0 {
		t.Errorf("driver still tracks %v %v", d.evis, d.names)
	}
}

func TestLinuxBridgeMode(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	lbr := bridge(t, ns, "brq-lb0", "")
	veth(t, ns, "tap0", "tap0p", nil)
	if err := ns.h.LinkSetMaster(link(t, ns, "tap0"), lbr); err != nil {
		t.Fatal(err)
	}

	// Our VXLAN device in the agent's bridge.
	e := newEVI(t, d, "lb-own", 500, "brq-lb0")
	if e.brName != "brq-lb0" || link(t, ns, e.vxName).Attrs().MasterIndex != lbr.Attrs().Index {
		t.Fatalf("vxlan %s not in brq-lb0", e.vxName)
	}
	if err := e.Plug(port("tap0"), mac("02:00:00:00:03:01"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if got := portFDB(t, ns, "tap0"); len(got) != 1 {
		t.Errorf("static fdb on tap0 = %v", got)
	}
	if err := e.Unplug(port("tap0"), mac("02:00:00:00:03:01"), netip.Addr{}, true); err != nil {
		t.Fatal(err)
	}
	if link(t, ns, "tap0").Attrs().MasterIndex != lbr.Attrs().Index {
		t.Error("Unplug took tap0 out of a bridge that is not ours")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if exists(t, ns, e.vxName) || !exists(t, ns, "brq-lb0") || !exists(t, ns, "tap0") {
		t.Error("Close in linuxbr mode: want our vxlan gone, the bridge and tap kept")
	}

	// A VXLAN port of the bridge with our VNI (linuxbridge agent's) is reused.
	agentVX := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vxlan-501", MasterIndex: lbr.Attrs().Index}, VxlanId: 501, Port: 4789}
	if err := ns.h.LinkAdd(agentVX); err != nil {
		t.Fatal(err)
	}
	if err := ns.h.LinkSetMaster(link(t, ns, "vxlan-501"), lbr); err != nil {
		t.Fatal(err)
	}
	e = newEVI(t, d, "lb-reuse", 501, "brq-lb0")
	if e.vxName != "vxlan-501" || e.ownVXLAN {
		t.Fatalf("vxlan %s own %v, want vxlan-501 reused", e.vxName, e.ownVXLAN)
	}
	apply(t, e, addMAC("02:00:00:00:03:02", "10.99.0.2", 501), addFlood("10.99.0.2", 501))
	if got := vxlanFDB(t, ns, "vxlan-501"); len(got) != 2 {
		t.Errorf("fdb on reused vxlan = %v", got)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if !exists(t, ns, "vxlan-501") || !exists(t, ns, "brq-lb0") {
		t.Fatal("Close deleted the reused vxlan or the agent's bridge")
	}
	if got := vxlanFDB(t, ns, "vxlan-501"); len(got) != 0 {
		t.Errorf("entries left on the reused vxlan: %v", got)
	}

	if _, err := d.NewEVI(dataplane.EVIConfig{ExternalID: "lb-missing", VNI: 502, LinuxBridge: "brq-nope"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing linuxbr: err = %v", err)
	}
}

func TestRestartAdoptsDevices(t *testing.T) {
	ns := newNS(t)
	d1 := newDriver(t, ns, Options{})
	e1 := newEVI(t, d1, "adopt", 600, "")
	veth(t, ns, "vm2", "vm2p", nil)
	if err := e1.Plug(port("vm2"), mac("02:00:00:00:04:01"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	apply(t, e1, addMAC("02:00:00:00:04:02", "10.99.0.2", 600), addMAC("02:00:00:00:04:03", "10.99.0.3", 600),
		addFlood("10.99.0.2", 600), addFlood("10.99.0.3", 600), addIP("10.1.0.3", "02:00:00:00:04:03"))
	brIdx, vxIdx := e1.brIndex, e1.vxIndex
	d1.Close() // leaves the dataplane in place

	d2 := newDriver(t, ns, Options{})
	if got := d2.Info()["awaiting_adoption"]; got != 2 {
		t.Errorf("awaiting_adoption = %v, want 2", got)
	}
	// ResetState during the grace keeps the leftovers for their instance.
	if err := d2.ResetState(); err != nil {
		t.Fatal(err)
	}
	e2 := newEVI(t, d2, "adopt", 600, "")
	if !e2.adopted || e2.brIndex != brIdx || e2.vxIndex != vxIdx {
		t.Fatalf("adopted %v, ifindex bridge %d→%d vxlan %d→%d: want the same devices", e2.adopted, brIdx, e2.brIndex, vxIdx, e2.vxIndex)
	}
	if got := vxlanFDB(t, ns, e2.vxName); len(got) != 4 {
		t.Errorf("fdb after adoption = %v, want the 4 entries untouched", got)
	}
	// The instance rebuilds its state: one MAC and one flood entry remain.
	if err := e2.Plug(port("vm2"), mac("02:00:00:00:04:01"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	apply(t, e2, addMAC("02:00:00:00:04:02", "10.99.0.2", 600), addFlood("10.99.0.2", 600))
	if err := e2.reconcile(nil); err != nil {
		t.Fatal(err)
	}
	want := []fdbEntry{
		{"00:00:00:00:00:00", "10.99.0.2", 0, netlink.NUD_PERMANENT, netlink.NTF_SELF},
		{"02:00:00:00:04:02", "10.99.0.2", 0, netlink.NUD_PERMANENT, netlink.NTF_SELF},
	}
	if got := vxlanFDB(t, ns, e2.vxName); !slices.Equal(got, want) {
		t.Errorf("fdb after reconcile:\n got %v\nwant %v", got, want)
	}
	if got := neighbours(t, ns, e2.vxName); len(got) != 0 {
		t.Errorf("stale neighbours left: %v", got)
	}
	if link(t, ns, "vm2").Attrs().MasterIndex != brIdx {
		t.Error("vm2 left the bridge across the restart")
	}
	// The adopted port is released on its last unplug.
	if err := e2.Unplug(port("vm2"), mac("02:00:00:00:04:01"), netip.Addr{}, true); err != nil {
		t.Fatal(err)
	}
	if link(t, ns, "vm2").Attrs().MasterIndex != 0 {
		t.Error("adopted port vm2 not released on its last unplug")
	}
	d2.Close()

	// Same instance, new VNI: the VXLAN device is recreated, the bridge kept.
	d3 := newDriver(t, ns, Options{})
	e3 := newEVI(t, d3, "adopt", 601, "")
	vx := link(t, ns, e3.vxName).(*netlink.Vxlan)
	if e3.adopted || e3.brIndex != brIdx || vx.Index == vxIdx || vx.VxlanId != 601 {
		t.Errorf("VNI change: adopted %v bridge %d (was %d) vxlan %d (was %d) vni %d", e3.adopted, e3.brIndex, brIdx, vx.Index, vxIdx, vx.VxlanId)
	}
}

func TestResetStateRemovesUnclaimedOnly(t *testing.T) {
	ns := newNS(t)
	d1 := newDriver(t, ns, Options{})
	a := newEVI(t, d1, "keep", 700, "")
	b := newEVI(t, d1, "drop", 701, "")
	d1.Close()
	bridge(t, ns, "foreign2", "")
	veth(t, ns, "vm3", "vm3p", nil)
	if err := ns.h.LinkSetMaster(link(t, ns, "vm3"), link(t, ns, b.brName)); err != nil {
		t.Fatal(err)
	}

	d2 := newDriver(t, ns, Options{AdoptGrace: -1})
	newEVI(t, d2, "keep", 700, "")
	if err := d2.ResetState(); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{a.brName: true, a.vxName: true, b.brName: false, b.vxName: false, "foreign2": true, "vm3": true} {
		if got := exists(t, ns, n); got != want {
			t.Errorf("after ResetState: %s exists = %v, want %v", n, got, want)
		}
	}
	d2.Close()

	// bagpipe-bgp-cleanup: every owned interface goes, foreign ones stay.
	if err := Cleanup(ns.name); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]bool{a.brName: false, a.vxName: false, "foreign2": true, "vm3": true} {
		if got := exists(t, ns, n); got != want {
			t.Errorf("after Cleanup: %s exists = %v, want %v", n, got, want)
		}
	}
}

func TestAdoptGraceExpiry(t *testing.T) {
	ns := newNS(t)
	d1 := newDriver(t, ns, Options{})
	a := newEVI(t, d1, "late", 710, "")
	d1.Close()
	d2 := newDriver(t, ns, Options{})
	// The grace timer's action, run now.
	if err := d2.removeUnclaimed(true); err != nil {
		t.Fatal(err)
	}
	if exists(t, ns, a.brName) || exists(t, ns, a.vxName) {
		t.Error("unclaimed leftovers kept after the grace")
	}
}

func TestReconcileRepairs(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "repair", 800, "")
	veth(t, ns, "vm4", "vm4p", nil)
	const m1, m2 = "02:00:00:00:05:01", "02:00:00:00:05:02"
	if err := e.Plug(port("vm4"), mac("02:00:00:00:05:00"), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	apply(t, e, addMAC(m1, "10.99.0.2", 800), addFlood("10.99.0.2", 800), addIP("10.1.0.5", m1))
	wantFDB := vxlanFDB(t, ns, e.vxName)

	// By hand: delete an fdb entry and the neighbour, add a foreign
	// permanent entry.
	if err := ns.h.NeighDel(e.remoteFDB(mac(m1), dest{addr("10.99.0.2"), 800})); err != nil {
		t.Fatal(err)
	}
	if err := ns.h.NeighDel(e.remoteNeigh(addr("10.1.0.5"), mac(m1))); err != nil {
		t.Fatal(err)
	}
	if err := ns.h.NeighSet(e.remoteFDB(mac(m2), dest{addr("10.99.0.7"), 800})); err != nil {
		t.Fatal(err)
	}
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := vxlanFDB(t, ns, e.vxName); !slices.Equal(got, wantFDB) {
		t.Errorf("fdb after reconcile:\n got %v\nwant %v", got, wantFDB)
	}
	if got := neighbours(t, ns, e.vxName); got["10.1.0.5"] != m1 {
		t.Errorf("neighbour not restored: %v", got)
	}
	if e.repairs != 3 {
		t.Errorf("repairs = %d, want 3", e.repairs)
	}

	// By hand: delete the VXLAN device, then the bridge too.
	for _, n := range []string{e.vxName, e.brName} {
		if err := ns.h.LinkDel(link(t, ns, n)); err != nil {
			t.Fatal(err)
		}
		if err := d.Reconcile(); err != nil {
			t.Fatal(err)
		}
		vx, ok := link(t, ns, e.vxName).(*netlink.Vxlan)
		if !ok || vx.VxlanId != 800 || vx.MasterIndex != link(t, ns, e.brName).Attrs().Index || !isUp(vx) {
			t.Fatalf("after deleting %s: vxlan not restored: %+v", n, vx)
		}
		if got := vxlanFDB(t, ns, e.vxName); !slices.Equal(got, wantFDB) {
			t.Errorf("after deleting %s: fdb\n got %v\nwant %v", n, got, wantFDB)
		}
		if got := neighbours(t, ns, e.vxName); got["10.1.0.5"] != m1 {
			t.Errorf("after deleting %s: neighbours %v", n, got)
		}
		if link(t, ns, "vm4").Attrs().MasterIndex != e.brIndex {
			t.Errorf("after deleting %s: vm4 not back in the bridge", n)
		}
		if got := portFDB(t, ns, "vm4"); len(got) != 1 {
			t.Errorf("after deleting %s: static fdb on vm4 = %v", n, got)
		}
	}
	if d.Info()["repairs"].(uint64) < 5 {
		t.Errorf("driver repairs = %v", d.Info()["repairs"])
	}
	if e.Info()["last_reconcile"] == "" {
		t.Error("Info last_reconcile empty")
	}
}

// TestNeighbourFamilies checks IPv6 remote IPs land in the IPv6 table.
func TestNeighbourFamilies(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "v6", 900, "")
	apply(t, e, addIP("2001:db8::5", "02:00:00:00:06:01"))
	list, err := ns.h.NeighList(e.vxIndex, unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range list {
		if n.IP.String() == "2001:db8::5" && n.State == netlink.NUD_PERMANENT {
			found = true
		}
	}
	if !found {
		t.Errorf("IPv6 neighbour missing: %v", list)
	}
	if err := d.Reconcile(); err != nil || e.repairs != 0 {
		t.Errorf("reconcile of a consistent EVI: err %v repairs %d", err, e.repairs)
	}
}

// TestPeriodicReconcile lets the driver's own loop repair a deleted entry
// (no fixed sleep: it polls up to a generous deadline).
func TestPeriodicReconcile(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{ReconcileInterval: 20 * time.Millisecond})
	e := newEVI(t, d, "loop", 950, "")
	apply(t, e, addMAC("02:00:00:00:07:01", "10.99.0.2", 950))
	if err := ns.h.NeighDel(e.remoteFDB(mac("02:00:00:00:07:01"), dest{addr("10.99.0.2"), 950})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(vxlanFDB(t, ns, e.vxName)) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the periodic reconcile did not restore the entry")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReconcileSharedDump repairs two EVIs from one dump and leaves each
// EVI's entries to it.
func TestReconcileSharedDump(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	a := newEVI(t, d, "shared-a", 961, "")
	b := newEVI(t, d, "shared-b", 962, "")
	apply(t, a, addMAC("02:00:00:00:08:01", "10.99.0.2", 961), addFlood("10.99.0.2", 961))
	apply(t, b, addMAC("02:00:00:00:08:02", "10.99.0.3", 962), addFlood("10.99.0.3", 962))
	wantA, wantB := vxlanFDB(t, ns, a.vxName), vxlanFDB(t, ns, b.vxName)
	if err := ns.h.NeighDel(a.remoteFDB(mac("02:00:00:00:08:01"), dest{addr("10.99.0.2"), 961})); err != nil {
		t.Fatal(err)
	}
	if err := ns.h.NeighDel(b.remoteFDB(route.MAC{}, dest{addr("10.99.0.3"), 962})); err != nil {
		t.Fatal(err)
	}
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := vxlanFDB(t, ns, a.vxName); !slices.Equal(got, wantA) {
		t.Errorf("EVI a fdb:\n got %v\nwant %v", got, wantA)
	}
	if got := vxlanFDB(t, ns, b.vxName); !slices.Equal(got, wantB) {
		t.Errorf("EVI b fdb:\n got %v\nwant %v", got, wantB)
	}
	if a.repairs != 1 || b.repairs != 1 {
		t.Errorf("repairs a=%d b=%d, want 1 each", a.repairs, b.repairs)
	}
}

// TestNameClashWithLiveInstance simulates two ids hashing to the same
// names (astronomically unlikely): the second instance is refused and the
// first one's interfaces are left alone.
func TestNameClashWithLiveInstance(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	first := newEVI(t, d, "first", 970, "")
	br, vx := ifNames("second")
	d.mu.Lock()
	d.names[br], d.names[vx] = "first", "first" // pretend "second" hashes like "first"
	d.mu.Unlock()
	_, err := d.NewEVI(dataplane.EVIConfig{ExternalID: "second", VNI: 971})
	if err == nil || !strings.Contains(err.Error(), "hash clash") {
		t.Fatalf("NewEVI with clashing names: err = %v", err)
	}
	if !exists(t, ns, first.brName) || !exists(t, ns, first.vxName) {
		t.Error("the live instance's interfaces were touched")
	}
}

// TestAdoptedStaleEntriesWaitForRelearn: right after an adoption, a
// reconcile re-adds what is missing but keeps the earlier run's entries
// (the instance is still relearning its routes); once ReconcileInterval
// has passed, they go.
func TestAdoptedStaleEntriesWaitForRelearn(t *testing.T) {
	ns := newNS(t)
	d1 := newDriver(t, ns, Options{})
	e1 := newEVI(t, d1, "relearn", 980, "")
	apply(t, e1, addMAC("02:00:00:00:09:01", "10.99.0.2", 980), addIP("10.1.0.9", "02:00:00:00:09:01"))
	d1.Close()

	d2 := newDriver(t, ns, Options{ReconcileInterval: time.Hour})
	e2 := newEVI(t, d2, "relearn", 980, "")
	apply(t, e2, addFlood("10.99.0.2", 980))
	if err := e2.reconcile(nil); err != nil {
		t.Fatal(err)
	}
	if got := vxlanFDB(t, ns, e2.vxName); len(got) != 2 {
		t.Errorf("right after adoption: fdb %v, want the old MAC kept and the flood entry", got)
	}
	if got := neighbours(t, ns, e2.vxName); len(got) != 1 {
		t.Errorf("right after adoption: neighbours %v, want the old one kept", got)
	}
	e2.mu.Lock()
	e2.keepStaleUntil = time.Time{} // the interval has passed
	e2.mu.Unlock()
	if err := e2.reconcile(nil); err != nil {
		t.Fatal(err)
	}
	if got := vxlanFDB(t, ns, e2.vxName); len(got) != 1 || got[0].mac != "00:00:00:00:00:00" {
		t.Errorf("after the interval: fdb %v, want only the flood entry", got)
	}
	if got := neighbours(t, ns, e2.vxName); len(got) != 0 {
		t.Errorf("after the interval: neighbours %v", got)
	}
}
