package linux

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
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
// it) without leaving the test's thread in it.
func newNS(t testing.TB) *testNS {
	t.Helper()
	n := testenv.NewNetns(t, "bgpt")
	tn := &testNS{name: n.Name, h: n.Handle, fd: n.Fd}
	return tn
}

// newDriver starts a driver in ns without periodic reconcile; Close runs
// on cleanup.
func newDriver(t testing.TB, ns *testNS, opts Options) *Driver {
	t.Helper()
	opts.NetNS = ns.name
	if !opts.LocalAddress.IsValid() {
		opts.LocalAddress = netip.MustParseAddr("10.99.0.1")
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = -1
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func newEVI(t testing.TB, d *Driver, id string, vni uint32, linuxbr string) *evi {
	t.Helper()
	dp, err := d.NewEVI(dataplane.EVIConfig{InstanceID: 1, ExternalID: id, VNI: vni, LinuxBridge: linuxbr})
	if err != nil {
		t.Fatalf("NewEVI(%s, %d): %v", id, vni, err)
	}
	return dp.(*evi)
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

func bridge(t testing.TB, ns *testNS, name, alias string) netlink.Link {
	t.Helper()
	if err := ns.h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatalf("creating bridge %s: %v", name, err)
	}
	l := link(t, ns, name)
	if alias != "" {
		if err := ns.h.LinkSetAlias(l, alias); err != nil {
			t.Fatal(err)
		}
	}
	return link(t, ns, name)
}

func link(t testing.TB, ns *testNS, name string) netlink.Link {
	t.Helper()
	l, err := ns.h.LinkByName(name)
	if err != nil {
		t.Fatalf("interface %s: %v", name, err)
	}
	return l
}

func exists(t testing.TB, ns *testNS, name string) bool {
	t.Helper()
	_, err := ns.h.LinkByName(name)
	if err != nil && !isNotFound(err) {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return err == nil
}

func mac(s string) route.MAC {
	m, err := route.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func port(name string) dataplane.LocalPort { return dataplane.LocalPort{LinuxIf: name} }

// fdbEntry is a dumped VXLAN fdb entry.
type fdbEntry struct {
	mac   string
	dst   string
	vni   int
	state int
	flags int
}

// vxlanFDB dumps the self fdb entries of a VXLAN device, sorted.
func vxlanFDB(t testing.TB, ns *testNS, vx string) []fdbEntry {
	t.Helper()
	idx := link(t, ns, vx).Attrs().Index
	list, err := dumpRetry(func() ([]netlink.Neigh, error) { return ns.h.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		t.Fatalf("fdb dump: %v", err)
	}
	var out []fdbEntry
	for _, n := range list {
		if n.Flags&netlink.NTF_SELF == 0 || n.IP == nil {
			continue
		}
		out = append(out, fdbEntry{mac: n.HardwareAddr.String(), dst: n.IP.String(), vni: n.VNI, state: n.State, flags: n.Flags})
	}
	slices.SortFunc(out, func(a, b fdbEntry) int {
		if c := compare(a.mac, b.mac); c != 0 {
			return c
		}
		return compare(a.dst, b.dst)
	})
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// portFDB returns the master fdb entries (MAC → state) of a port.
func portFDB(t testing.TB, ns *testNS, name string) map[string]int {
	t.Helper()
	idx := link(t, ns, name).Attrs().Index
	list, err := dumpRetry(func() ([]netlink.Neigh, error) { return ns.h.NeighList(idx, unix.AF_BRIDGE) })
	if err != nil {
		t.Fatalf("fdb dump: %v", err)
	}
	out := map[string]int{}
	for _, n := range list {
		if n.MasterIndex != 0 && n.State&netlink.NUD_NOARP != 0 {
			out[n.HardwareAddr.String()] = n.State
		}
	}
	return out
}

// neighbours returns the permanent IPv4 neighbours (IP → MAC) of a device.
func neighbours(t testing.TB, ns *testNS, name string) map[string]string {
	t.Helper()
	idx := link(t, ns, name).Attrs().Index
	list, err := dumpRetry(func() ([]netlink.Neigh, error) { return ns.h.NeighList(idx, unix.AF_INET) })
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

func apply(t testing.TB, e *evi, changes ...dataplane.EVIChange) {
	t.Helper()
	if err := e.Apply(changes); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func addMAC(m, vtep string, vni uint32) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: mac(m), VTEP: addr(vtep), VNI: vni}
}

func delMAC(m, vtep string, vni uint32) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.RemoveRemoteMAC, MAC: mac(m), VTEP: addr(vtep), VNI: vni}
}

func addFlood(vtep string, vni uint32) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.AddFlood, VTEP: addr(vtep), VNI: vni}
}

func delFlood(vtep string, vni uint32) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.RemoveFlood, VTEP: addr(vtep), VNI: vni}
}

func addIP(ip, m string) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.AddRemoteIP, MAC: mac(m), IP: addr(ip)}
}

func delIP(ip, m string) dataplane.EVIChange {
	return dataplane.EVIChange{Kind: dataplane.RemoveRemoteIP, MAC: mac(m), IP: addr(ip)}
}
