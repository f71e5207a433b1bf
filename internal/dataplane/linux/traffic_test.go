package linux

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestTrafficBetweenTwoNodes builds two "compute nodes" (namespaces joined
// by a veth underlay 10.99.0.1/.2), one EVI on each with the same VNI, and
// a "VM" namespace per node plugged into its EVI. The remote MAC, flood
// and IP entries are applied as the E-VPN instance would on receiving the
// other node's routes, and VM A pings VM B: the programmed state forwards
// real packets (ARP answered by the VXLAN proxy, unicast by the fdb).
func TestTrafficBetweenTwoNodes(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test runs ping with \"ip netns exec\": %v (install iproute2)", err)
	}
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatalf("this test needs ping: %v (install iputils-ping)", err)
	}
	const vni = 4242
	type side struct {
		node, vm *testNS
		underlay string
		vmIP     string
		vmMAC    route.MAC
		e        *evi
	}
	a := &side{node: newNS(t), vm: newNS(t), underlay: "10.99.0.1", vmIP: "10.1.0.1", vmMAC: mac("02:00:0a:01:00:01")}
	b := &side{node: newNS(t), vm: newNS(t), underlay: "10.99.0.2", vmIP: "10.1.0.2", vmMAC: mac("02:00:0a:01:00:02")}

	veth(t, a.node, "ul", "ul", b.node)
	for _, s := range []*side{a, b} {
		setAddr(t, s.node, "ul", s.underlay+"/24")
		veth(t, s.node, "tap-vm", "eth0", s.vm)
		if err := s.vm.h.LinkSetHardwareAddr(link(t, s.vm, "eth0"), net.HardwareAddr(s.vmMAC[:])); err != nil {
			t.Fatal(err)
		}
		setAddr(t, s.vm, "eth0", s.vmIP+"/24")
		d := newDriver(t, s.node, Options{LocalAddress: addr(s.underlay)})
		s.e = newEVI(t, d, "traffic", vni, "")
		if err := s.e.Plug(port("tap-vm"), s.vmMAC, addr(s.vmIP)); err != nil {
			t.Fatal(err)
		}
	}
	for _, pair := range [][2]*side{{a, b}, {b, a}} {
		local, remote := pair[0], pair[1]
		apply(t, local.e,
			dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: remote.vmMAC, VTEP: addr(remote.underlay), VNI: vni},
			dataplane.EVIChange{Kind: dataplane.AddRemoteIP, MAC: remote.vmMAC, IP: addr(remote.vmIP)},
			addFlood(remote.underlay, vni),
		)
	}
	out, err := exec.Command("ip", "netns", "exec", a.vm.name, "ping", "-c", "3", "-W", "2", b.vmIP).CombinedOutput()
	if err != nil {
		t.Fatalf("ping VM A → VM B over VXLAN failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	for _, s := range []*side{a, b} {
		if st := link(t, s.node, s.e.vxName).Attrs().Statistics; st == nil || st.TxPackets == 0 || st.RxPackets == 0 {
			t.Errorf("%s: the VXLAN device carried no traffic: %+v", s.node.name, st)
		}
	}

	// And the VXLAN proxy answered ARP: VM A's neighbour for B has B's MAC.
	neigh, err := a.vm.h.NeighList(link(t, a.vm, "eth0").Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range neigh {
		if n.IP.String() == b.vmIP && n.HardwareAddr.String() == b.vmMAC.String() {
			found = true
		}
	}
	if !found {
		t.Errorf("VM A has no ARP entry %s → %s: %v", b.vmIP, b.vmMAC, neigh)
	}
}

func setAddr(t testing.TB, ns *testNS, ifname, cidr string) {
	t.Helper()
	l := link(t, ns, ifname)
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.h.AddrAdd(l, a); err != nil {
		t.Fatalf("adding %s to %s: %v", cidr, ifname, err)
	}
	if err := ns.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkApplyRemoteMACs programs 50,000 remote MACs (fdb entries on the
// VXLAN device) in batches of 1,000 through Apply, in a fresh EVI each
// iteration, and reports fdb entries per second.
func BenchmarkApplyRemoteMACs(b *testing.B) {
	const total, batch = 50000, 1000
	ns := newNS(b)
	d := newDriver(b, ns, Options{})
	changes := make([]dataplane.EVIChange, total)
	for i := range changes {
		m := route.MAC{0x02, 0xbe, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		vtep := [4]byte{10, 99, 1, byte(1 + i%200)} // 200 remote VTEPs
		changes[i] = dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: m, VTEP: netip.AddrFrom4(vtep), VNI: 77}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e := newEVI(b, d, "bench", 77, "")
		b.StartTimer()
		for i := 0; i < total; i += batch {
			if err := e.Apply(changes[i : i+batch]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if got := e.fdb.len(); got != total {
			b.Fatalf("%d entries, want %d", got, total)
		}
		if err := e.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "fdb_entries/s")
}

// BenchmarkReconcile50k measures one reconcile of an EVI holding 50,000
// remote MACs (one fdb dump plus two neighbour dumps, nothing to repair).
func BenchmarkReconcile50k(b *testing.B) {
	const total = 50000
	ns := newNS(b)
	d := newDriver(b, ns, Options{})
	e := newEVI(b, d, "bench-rec", 78, "")
	changes := make([]dataplane.EVIChange, total)
	for i := range changes {
		m := route.MAC{0x02, 0xbf, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		changes[i] = dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: m, VTEP: netip.AddrFrom4([4]byte{10, 99, 2, byte(1 + i%200)}), VNI: 78}
	}
	if err := e.Apply(changes); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := e.reconcile(nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if e.repairs != 0 {
		b.Fatalf("%d repairs on a consistent EVI", e.repairs)
	}
}
