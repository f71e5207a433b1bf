package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// Route targets of the two E-VPNs; both use the subnet 10.10.0.0/24.
const (
	rt1 = "64512:100"
	rt2 = "64512:200"
)

// vxlanPort is the VXLAN port the driver uses by default (IANA, RFC 7348).
const vxlanPort = 4789

// TestEVPNLinux is the end-to-end scenario on one lab (gobgpd
// route reflector, nodes A and B, linux driver): E-VPN net1 has vmA on A
// and vmB on B, E-VPN net2 reuses the same subnet with vmD on A and vmC
// on B. Node B attaches net2 first, so that the two nodes allocate
// different VNIs to each network and traffic needs the VNI of the routes.
// The steps run in order and share the lab; a failed step stops the test.
func TestEVPNLinux(t *testing.T) {
	tp := newTopo(t, "gobgpd", "", "A", "B")
	a, b := tp.nodes[0], tp.nodes[1]
	vmA := a.vm("vmA", "net1", rt1, "10.10.0.1/24", "02:00:0a:0a:00:01")
	vmB := b.vm("vmB", "net1", rt1, "10.10.0.2/24", "02:00:0a:0a:00:02")
	vmC := b.vm("vmC", "net2", rt2, "10.10.0.3/24", "") // MAC read from the namespace
	vmD := a.vm("vmD", "net2", rt2, "10.10.0.4/24", "02:00:0a:0a:00:04")
	for _, vm := range []lab.VM{vmA, vmD, vmC, vmB} {
		tp.restAttach(vm, true)
	}
	ipOf := func(vm lab.VM) netip.Addr { return vm.IP.Addr() }

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"ping", func(t *testing.T) {
			tp.waitPing(vmA, ipOf(vmB))
			tp.waitPing(vmB, ipOf(vmA))
			tp.waitPing(vmC, ipOf(vmD))
			tp.waitPing(vmD, ipOf(vmC))
		}},
		{"kernel-state", func(t *testing.T) {
			checkKernelState(t, tp, vmB)
		}},
		{"isolation", func(t *testing.T) {
			checkIsolation(t, tp, vmA, vmB, vmC, vmD)
		}},
		{"bad-requests", func(t *testing.T) {
			checkBadRequests(t, tp)
		}},
		{"detach-reattach", func(t *testing.T) {
			checkDetachReattach(t, tp, vmA, vmB)
		}},
		{"restart-replay", func(t *testing.T) {
			checkRestart(t, tp, []lab.VM{vmC, vmB}, vmA, vmD)
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

// TestEVPNLinuxFakeRR is the two-VM ping with bagpipe-fakerr instead of a
// route reflector, and with another VXLAN port (vxlan_dst_port).
func TestEVPNLinuxFakeRR(t *testing.T) {
	const port = 4790
	tp := newTopo(t, "bagpipe-fakerr", fmt.Sprintf("vxlan_dst_port = %d\n", port), "A", "B")
	a, b := tp.nodes[0], tp.nodes[1]
	vmA := a.vm("vmA", "net1", rt1, "10.10.0.1/24", "02:00:0a:0a:00:01")
	vmB := b.vm("vmB", "net1", rt1, "10.10.0.2/24", "02:00:0a:0a:00:02")
	tp.restAttach(vmA, true)
	tp.restAttach(vmB, true)
	tp.waitPing(vmA, vmB.IP.Addr())
	tp.waitPing(vmB, vmA.IP.Addr())
	for _, n := range tp.nodes {
		d := n.dataplane("net1")
		link, err := n.netlink().LinkByName(d.VXLAN)
		if err != nil {
			t.Fatalf("node %s: %v", n.name, err)
		}
		if vx, ok := link.(*netlink.Vxlan); !ok || vx.Port != port {
			t.Errorf("node %s: VXLAN device %s is %+v, want port %d", n.name, d.VXLAN, link, port)
		}
	}
}

// checkKernelState reads node A's namespace with netlink and compares it
// with what the linux driver promises (reference §7.5) for E-VPN net1:
// bridge and VXLAN device (names within IFNAMSIZ, the VNI A allocated,
// port 4789, no learning, enslaved to the bridge), a fdb entry of vmB's
// MAC towards B with B's VNI, the all-zero flooding entry towards B, and
// a permanent neighbour for vmB's IP.
func checkKernelState(t *testing.T, tp *topo, vmB lab.VM) {
	a, b := tp.nodes[0], tp.nodes[1]
	da, db := a.dataplane("net1"), b.dataplane("net1")
	h := a.netlink()
	for _, name := range []string{da.Bridge, da.VXLAN} {
		if len(name) > unix.IFNAMSIZ-1 {
			t.Errorf("interface name %q is longer than %d characters", name, unix.IFNAMSIZ-1)
		}
	}
	br, err := h.LinkByName(da.Bridge)
	if err != nil {
		t.Fatalf("bridge %s of net1 on node A: %v", da.Bridge, err)
	}
	if br.Type() != "bridge" {
		t.Errorf("%s is a %s, want a bridge", da.Bridge, br.Type())
	}
	link, err := h.LinkByName(da.VXLAN)
	if err != nil {
		t.Fatalf("VXLAN device %s of net1 on node A: %v", da.VXLAN, err)
	}
	vx, ok := link.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("%s is a %s, want vxlan", da.VXLAN, link.Type())
	}
	if vx.VxlanId != da.VNI || vx.Port != vxlanPort || vx.Learning || vx.SrcAddr.String() != a.addr.String() {
		t.Errorf("VXLAN device %s: id %d port %d learning %v local %v; want id %d port %d learning false local %s",
			vx.Name, vx.VxlanId, vx.Port, vx.Learning, vx.SrcAddr, da.VNI, vxlanPort, a.addr)
	}
	if vx.MasterIndex != br.Attrs().Index {
		t.Errorf("VXLAN device %s has master index %d, want bridge %s (%d)", vx.Name, vx.MasterIndex, br.Attrs().Name, br.Attrs().Index)
	}
	if da.VNI == db.VNI {
		t.Errorf("nodes A and B both allocated VNI %d to net1; the test wants them different (B attaches net2 first)", da.VNI)
	}
	macB := macOf(t, vmB.MAC)
	want := []struct {
		what, mac string
	}{{"vmB's MAC", macB}, {"flooding (all-zero MAC)", "00:00:00:00:00:00"}}
	testenv.WaitFor(t, stateTimeout, "node A's fdb entries for vmB and flooding", func() (bool, error) {
		fdb, err := a.fdb(h, true)
		if err != nil {
			return false, err
		}
		for _, w := range want {
			got := findFDB(fdb, da.VXLAN, w.mac)
			if len(got) != 1 || got[0].Dst != b.addr.String() || got[0].VNI != db.VNI {
				return false, fmt.Errorf("%s on %s: %v, want one entry dst %s vni %d", w.what, da.VXLAN, got, b.addr, db.VNI)
			}
			if got[0].State&netlink.NUD_PERMANENT == 0 {
				return false, fmt.Errorf("%s: %v is not permanent", w.what, got[0])
			}
		}
		return true, nil
	})
	neighs, err := h.NeighList(vx.Index, unix.AF_INET)
	if err != nil {
		t.Fatalf("neighbours of %s: %v", vx.Name, err)
	}
	found := false
	for _, n := range neighs {
		if n.IP.String() == vmB.IP.Addr().String() {
			found = true
			if n.HardwareAddr.String() != macB || n.State&netlink.NUD_PERMANENT == 0 {
				t.Errorf("neighbour %s on %s: lladdr %s state %#x, want %s permanent", n.IP, vx.Name, n.HardwareAddr, n.State, macB)
			}
		}
	}
	if !found {
		t.Errorf("no neighbour entry for vmB's %s on %s: %v", vmB.IP.Addr(), vx.Name, neighs)
	}
}

// checkIsolation: the VMs of net2 use the same subnet as net1's; no VM
// reaches a VM of the other E-VPN, on the same node or across, and vmC's
// MAC is only in net2's fdb on node A.
func checkIsolation(t *testing.T, tp *topo, vmA, vmB, vmC, vmD lab.VM) {
	a := tp.nodes[0]
	tp.noPing(vmA, vmC.IP.Addr(), "net1 to net2 across nodes")
	tp.noPing(vmA, vmD.IP.Addr(), "net1 to net2 on the same node")
	tp.noPing(vmC, vmA.IP.Addr(), "net2 to net1 across nodes")
	tp.noPing(vmB, vmD.IP.Addr(), "net1 to net2 across nodes")
	macC := macOf(t, tp.mac(vmC))
	d1, d2 := a.dataplane("net1"), a.dataplane("net2")
	fdb, err := a.fdb(a.netlink(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(findFDB(fdb, d1.VXLAN, macC), findFDB(fdb, d1.Bridge, macC)...); len(got) != 0 {
		t.Errorf("vmC (net2) is in net1's fdb on node A: %v", got)
	}
	remote := 0
	for _, e := range findFDB(fdb, d2.VXLAN, macC) {
		if e.Dst == tp.nodes[1].addr.String() {
			remote++
		}
	}
	if remote != 1 {
		t.Errorf("vmC should have one entry towards node B in net2's fdb on node A (%s), found %v", d2.VXLAN, findFDB(fdb, d2.VXLAN, macC))
	}
}

// badRequest is an attach request node A must refuse.
type badRequest struct {
	name   string
	body   string
	detail string // the error description must contain it
}

// checkBadRequests posts invalid attach requests to node A: each gets
// 400 with the reference §2.5 message, and neither the looking glass's
// instance list nor the kernel's fdb and links change.
func checkBadRequests(t *testing.T, tp *topo) {
	a := tp.nodes[0]
	vni2 := a.dataplane("net2").VNI
	good := map[string]any{
		"vpn_type": "evpn", "vpn_instance_id": "net9", "mac_address": "02:00:0a:0a:00:09",
		"ip_address": "10.10.0.9/24", "local_port": map[string]any{"linuxif": "nosuchif9"},
		"import_rt": []string{"64512:900"}, "export_rt": []string{"64512:900"},
	}
	with := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range good {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	cases := []badRequest{
		{"malformed JSON", `{"vpn_type": "evpn", "vpn_instance_id": `, "No local port details received"},
		{"empty body", ``, "No local port details received"},
		{"missing vpn_type", with("vpn_type", nil), "API error: missing instance_type"},
		{"missing import_rt", with("import_rt", nil), "API error: Missing parameter: 'import_rt'"},
		{"missing mac_address", with("mac_address", nil), "API error: Missing parameter: 'mac_address'"},
		{"missing local_port", with("local_port", nil), "API error: Missing parameter: 'local_port'"},
		{"bad MAC", with("mac_address", "02:00:0a:0a:00:zz"), "is not valid"},
		{"bad IP", with("ip_address", "10.10.0.300/24"), "is not valid"},
		{"bad RT", with("import_rt", []string{"64512:x"}), "API error: Malformed route target in 'import_rt'"},
		{"unknown vpn_type", with("vpn_type", "l2vpn"), "API error: unknown vpn_type: l2vpn"},
		{"VNI clash", with("vni", vni2), fmt.Sprintf("API error: A VPN instance using vni %d already exists.", vni2)},
	}
	h := a.netlink()
	before := snapshot(t, a, h)
	for _, c := range cases {
		code, body, err := a.post("/attach_localport", []byte(c.body))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var e struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		}
		if jerr := json.Unmarshal(body, &e); code != 400 || jerr != nil || e.Code != 400 || !strings.Contains(e.Description, c.detail) {
			t.Errorf("%s: got %d %s, want 400 with a description containing %q", c.name, code, body, c.detail)
		}
		if after := snapshot(t, a, h); after != before {
			t.Fatalf("%s changed node A's state:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
}

// snapshot renders what a refused request must not change: the looking
// glass's instance list, the links and the static fdb entries of node A.
func snapshot(t *testing.T, n *node, h *netlink.Handle) string {
	t.Helper()
	code, lg, err := n.get("/looking-glass/vpns/instances")
	if err != nil || code != 200 {
		t.Fatalf("looking glass instances: %d %v", code, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "instances: %s\n", lg)
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		fmt.Fprintf(&b, "link %s %s master %d\n", l.Attrs().Name, l.Type(), l.Attrs().MasterIndex)
	}
	fdb, err := n.fdb(h, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range fdb {
		fmt.Fprintf(&b, "fdb %s\n", e)
	}
	return b.String()
}

// checkDetachReattach detaches vmB with bagpipe-rest-attach: node A's fdb
// entry for vmB goes and vmA cannot reach it; attaching it again restores
// the ping.
func checkDetachReattach(t *testing.T, tp *topo, vmA, vmB lab.VM) {
	a := tp.nodes[0]
	d1 := a.dataplane("net1")
	h := a.netlink()
	macB := macOf(t, vmB.MAC)
	tp.restAttach(vmB, false)
	testenv.WaitFor(t, stateTimeout, "node A to remove vmB's fdb entry", func() (bool, error) {
		fdb, err := a.fdb(h, true)
		if err != nil {
			return false, err
		}
		got := findFDB(fdb, d1.VXLAN, macB)
		return len(got) == 0, fmt.Errorf("still there: %v", got)
	})
	tp.noPing(vmA, vmB.IP.Addr(), "vmB detached")
	tp.restAttach(vmB, true)
	tp.waitPing(vmA, vmB.IP.Addr())
	tp.waitPing(vmB, vmA.IP.Addr())
}

// checkRestart kills node B's bagpipe-bgp with SIGKILL and starts it
// again; as the agent does when /ping changes, the test replays B's
// attachments (same requests, same order): the new process adopts the
// interfaces the killed one left when their instance keeps its VNI, and
// the VMs ping again.
func checkRestart(t *testing.T, tp *topo, onB []lab.VM, vmA, vmD lab.VM) {
	b := tp.nodes[1]
	code, ping1, err := b.get("/ping")
	if err != nil || code != 200 {
		t.Fatalf("GET /ping on node B: %d %v", code, err)
	}
	before := map[string]dataplaneInfo{}
	for _, vm := range onB {
		before[vm.Network] = b.dataplane(vm.Network)
	}
	b.proc.Kill()
	b.start()
	b.waitEstablished()
	code, ping2, err := b.get("/ping")
	if err != nil || code != 200 {
		t.Fatalf("GET /ping on node B after the restart: %d %v", code, err)
	}
	if string(ping1) == string(ping2) {
		t.Fatalf("/ping of node B did not change across the restart: %s", ping1)
	}
	for _, vm := range onB {
		body, _ := json.Marshal(map[string]any{
			"vpn_type": "evpn", "vpn_instance_id": vm.Network, "mac_address": tp.mac(vm),
			"ip_address": vm.IP.String(), "gateway_ip": "10.10.0.254",
			"local_port": map[string]string{"linuxif": vm.HostIf()},
			"import_rt":  []string{vm.RT}, "export_rt": []string{vm.RT},
		})
		code, resp, err := b.post("/attach_localport", body)
		if err != nil || code != 200 {
			t.Fatalf("replaying %s on node B: %d %s %v", body, code, resp, err)
		}
	}
	for _, vm := range onB {
		// Same VNI as before the kill: the interfaces are taken over;
		// another VNI (net1 got a new one at its re-attach, the restarted
		// allocator gives the first free one again): they are recreated.
		d := b.dataplane(vm.Network)
		if old := before[vm.Network]; d.Adopted != (old.VNI == d.VNI) {
			t.Errorf("node B's %s: before the kill %+v, after the replay %+v: want adopted exactly when the VNI is unchanged", vm.Network, old, d)
		}
	}
	vmB, vmC := onB[1], onB[0]
	tp.waitPing(vmA, vmB.IP.Addr())
	tp.waitPing(vmB, vmA.IP.Addr())
	tp.waitPing(vmC, vmD.IP.Addr())
}
