package linux

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// TestVPNManagerEndToEnd drives the driver from the real VPN layer: two
// VPN managers ("node A" and "node B", each with this driver in its own
// namespace) share one route engine, so each E-VPN instance imports the
// other's type-2 and type-3 routes exactly as it would over BGP. After
// one attach per node, the VMs ping each other; after the detaches, the
// nodes hold no bagpipe interface.
func TestVPNManagerEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("ping"); err != nil {
		t.Fatalf("this test needs ping: %v (install iputils-ping)", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := engine.New(quiet)
	go eng.Run(ctx)

	type node struct {
		ns, vm *testNS
		addr   string
		vmIP   string
		vmMAC  route.MAC
		drv    *Driver
		m      *vpn.Manager
	}
	a := &node{ns: newNS(t), vm: newNS(t), addr: "10.99.0.1", vmIP: "10.1.0.1", vmMAC: mac("02:00:0b:01:00:01")}
	b := &node{ns: newNS(t), vm: newNS(t), addr: "10.99.0.2", vmIP: "10.1.0.2", vmMAC: mac("02:00:0b:01:00:02")}
	veth(t, a.ns, "ul", "ul", b.ns)
	rt := route.NewRT(64512, 1)
	for i, n := range []*node{a, b} {
		setAddr(t, n.ns, "ul", n.addr+"/24")
		veth(t, n.ns, "tap-vm", "eth0", n.vm)
		if err := n.vm.h.LinkSetHardwareAddr(link(t, n.vm, "eth0"), net.HardwareAddr(n.vmMAC[:])); err != nil {
			t.Fatal(err)
		}
		setAddr(t, n.vm, "eth0", n.vmIP+"/24")
		n.drv = newDriver(t, n.ns, Options{LocalAddress: addr(n.addr), Log: quiet})
		m, err := vpn.NewManager(vpn.ManagerConfig{Engine: eng, LocalAddress: addr(n.addr), DataplaneLocalAddress: addr(n.addr),
			EVPNDriver: n.drv, Hostname: []string{"node-a", "node-b"}[i], Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		n.m = m
		t.Cleanup(func() { m.Stop(context.Background()) })
		err = m.Attach(context.Background(), vpn.AttachRequest{
			Type: vpn.EVPN, InstanceID: "net-e2e", MAC: n.vmMAC, IP: netip.PrefixFrom(addr(n.vmIP), 32),
			LocalPort: dataplane.LocalPort{LinuxIf: "tap-vm"}, ImportRTs: []route.RT{rt}, ExportRTs: []route.RT{rt},
		})
		if err != nil {
			t.Fatalf("attach on %s: %v", n.addr, err)
		}
	}
	settle := func() {
		for range 2 {
			eng.Sync()
			for _, n := range []*node{a, b} {
				if _, _, err := n.m.InstanceRoutes(context.Background(), "net-e2e"); err != nil {
					var ve *vpn.Error
					if !errors.As(err, &ve) || ve.Status != 404 {
						t.Fatal(err)
					}
				}
			}
		}
	}
	settle()

	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		local, remote := pair[0], pair[1]
		bridge, vx := ifNames("net-e2e")
		if link(t, local.ns, "tap-vm").Attrs().MasterIndex != link(t, local.ns, bridge).Attrs().Index {
			t.Errorf("%s: tap-vm not in %s", local.addr, bridge)
		}
		var unicast, flood bool
		for _, e := range vxlanFDB(t, local.ns, vx) {
			if e.dst != remote.addr {
				t.Errorf("%s: fdb entry %+v points elsewhere than %s", local.addr, e, remote.addr)
			}
			unicast = unicast || e.mac == remote.vmMAC.String()
			flood = flood || e.mac == "00:00:00:00:00:00"
		}
		if !unicast || !flood {
			t.Errorf("%s: fdb %v: want the remote MAC and a flood entry toward %s", local.addr, vxlanFDB(t, local.ns, vx), remote.addr)
		}
		if got := neighbours(t, local.ns, vx); got[remote.vmIP] != remote.vmMAC.String() {
			t.Errorf("%s: neighbours %v, want %s → %s", local.addr, got, remote.vmIP, remote.vmMAC)
		}
	}
	out, err := exec.Command("ip", "netns", "exec", a.vm.name, "ping", "-c", "2", "-W", "2", b.vmIP).CombinedOutput()
	if err != nil {
		t.Fatalf("ping between VMs attached through the VPN manager failed: %v\n%s", err, out)
	}

	for _, n := range []*node{a, b} {
		err := n.m.Detach(context.Background(), vpn.DetachRequest{Type: vpn.EVPN, InstanceID: "net-e2e", MAC: n.vmMAC,
			IP: netip.PrefixFrom(addr(n.vmIP), 32), LocalPort: dataplane.LocalPort{LinuxIf: "tap-vm"}})
		if err != nil {
			t.Fatalf("detach on %s: %v", n.addr, err)
		}
	}
	settle()
	for _, n := range []*node{a, b} {
		// The devices go in the background (teardown.go): wait for them.
		if err := n.drv.WaitTeardown(); err != nil {
			t.Errorf("%s: WaitTeardown: %v", n.addr, err)
		}
		bridge, vx := ifNames("net-e2e")
		if exists(t, n.ns, bridge) || exists(t, n.ns, vx) {
			t.Errorf("%s: interfaces left after the last detach", n.addr)
		}
		if !exists(t, n.ns, "tap-vm") || link(t, n.ns, "tap-vm").Attrs().MasterIndex != 0 {
			t.Errorf("%s: tap-vm deleted or still enslaved", n.addr)
		}
	}
}
