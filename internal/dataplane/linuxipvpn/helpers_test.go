package linuxipvpn

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"sort"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// These tests program a real kernel: they need root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN) and fail, never skip, when the kernel refuses. Every test
// works in throwaway network namespaces it deletes on cleanup.

// testNS is a throwaway named network namespace and a netlink handle in it.
type testNS struct {
	name string
	h    *netlink.Handle
	fd   netns.NsHandle
}

// newNS creates a named network namespace (so that "ip netns exec" finds
// it) without leaving the test's thread in it, and brings lo up.
func newNS(t testing.TB) *testNS {
	t.Helper()
	n := testenv.NewNetns(t, "bgpv")
	tn := &testNS{name: n.Name, h: n.Handle, fd: n.Fd}
	if err := tn.h.LinkSetUp(link(t, tn, "lo")); err != nil {
		t.Fatalf("lo up in %s: %v", tn.name, err)
	}
	return tn
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newDriver starts a driver in ns without periodic reconcile; Close runs
// on cleanup.
func newDriver(t testing.TB, ns *testNS, opts Options) *Driver {
	t.Helper()
	opts.NetNS = ns.name
	if !opts.LocalAddress.IsValid() {
		opts.LocalAddress = addr("10.98.0.1")
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = -1
	}
	if opts.Log == nil {
		opts.Log = quietLog()
	}
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newVRF(t testing.TB, d *Driver, id uint32, gw string) *vrf {
	t.Helper()
	dp, err := d.NewVRF(dataplane.VRFConfig{InstanceID: id, ExternalID: fmt.Sprintf("vpn-%d", id), Label: 100 + id, GatewayIP: addr(gw), PrefixLen: 24})
	if err != nil {
		t.Fatalf("NewVRF(%d): %v", id, err)
	}
	return dp.(*vrf)
}

// veth creates a veth pair in ns (the peer in peerNS if not nil).
func veth(t testing.TB, ns *testNS, name, peer string, peerNS *testNS) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}
	if peerNS != nil {
		v.PeerNamespace = netlink.NsFd(int(peerNS.fd))
	}
	if err := ns.h.LinkAdd(v); err != nil {
		t.Fatalf("creating veth %s/%s: %v", name, peer, err)
	}
}

func link(t testing.TB, ns *testNS, name string) netlink.Link {
	t.Helper()
	l, err := ns.h.LinkByName(name)
	if err != nil {
		t.Fatalf("interface %s in %s: %v", name, ns.name, err)
	}
	return l
}

func setAddr(t testing.TB, ns *testNS, name, cidr string) {
	t.Helper()
	l := link(t, ns, name)
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.h.AddrAdd(l, a); err != nil {
		t.Fatalf("address %s on %s: %v", cidr, name, err)
	}
	if err := ns.h.LinkSetUp(l); err != nil {
		t.Fatalf("%s up: %v", name, err)
	}
}

func mac(s string) route.MAC {
	m, err := route.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr          { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix         { return netip.MustParsePrefix(s) }
func port(n string) dataplane.LocalPort { return dataplane.LocalPort{LinuxIf: n} }

func addRoute(p, nh string, label uint32) dataplane.VRFChange {
	return dataplane.VRFChange{Kind: dataplane.AddRoute, Prefix: pfx(p), NextHop: addr(nh), Label: label, Encap: route.EncapVXLAN}
}

func delRoute(p, nh string, label uint32) dataplane.VRFChange {
	return dataplane.VRFChange{Kind: dataplane.RemoveRoute, Prefix: pfx(p), NextHop: addr(nh), Label: label, Encap: route.EncapVXLAN}
}

func apply(t testing.TB, v *vrf, changes ...dataplane.VRFChange) {
	t.Helper()
	if err := v.Apply(changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// kernelRules returns our rules (protocol 19) as strings, sorted.
func kernelRules(t testing.TB, d *Driver) []string {
	t.Helper()
	rules, err := d.raw.rules()
	if err != nil {
		t.Fatalf("rule dump: %v", err)
	}
	var out []string
	for _, r := range rules {
		if r.Protocol == rtProto {
			out = append(out, r.rule.String())
		}
	}
	sort.Strings(out)
	return out
}

// tableRoutes returns the routes of a table as signatures keyed by prefix.
func tableRoutes(t testing.TB, d *Driver, table int) map[string]string {
	t.Helper()
	routes, err := d.raw.routes(func(tb int) bool { return tb == table })
	if err != nil {
		t.Fatalf("route dump: %v", err)
	}
	out := map[string]string{}
	for _, r := range routes {
		out[r.Dst.String()] = r.sig()
	}
	return out
}

// neighbours returns the permanent IPv4 neighbours (IP → MAC) of a device.
func neighbours(t testing.TB, ns *testNS, name string) map[string]string {
	t.Helper()
	list, err := ns.h.NeighList(link(t, ns, name).Attrs().Index, unix.AF_INET)
	if err != nil {
		t.Fatalf("neighbour dump: %v", err)
	}
	out := map[string]string{}
	for _, n := range list {
		if n.State&netlink.NUD_PERMANENT != 0 {
			out[n.IP.String()] = n.HardwareAddr.String()
		}
	}
	return out
}

func isUp(l netlink.Link) bool { return l.Attrs().Flags&net.FlagUp != 0 }

// needTools fails the test if a command it runs is missing.
func needTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s: %v", tool, err)
		}
	}
}

func pfxFrom(a [4]byte, bits int) netip.Prefix { return netip.PrefixFrom(netip.AddrFrom4(a), bits) }
