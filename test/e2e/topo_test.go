// Package e2e runs bagpipe-bgp end to end, the way upstream's fullstack
// tests do (reference §10.2): compute nodes and a route reflector in
// network namespaces joined by an underlay switch, the E-VPN linux
// dataplane, fake VMs made by bagpipe-rest-attach --port netns, and
// pings between them. The tests need root, ip, ping, nsenter and gobgpd;
// they fail (never skip) when one is missing.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// Generous deadlines: these are not timed tests.
const (
	startTimeout = 60 * time.Second
	stateTimeout = 60 * time.Second
)

// prefixBase starts every namespace name of these tests.
const prefixBase = "e2e"

// topo is a lab: an underlay switch, a route reflector and compute nodes.
type topo struct {
	t      *testing.T // the running test or step, for failures
	root   *testing.T // the top-level test: owns the processes
	bin    string     // directory of our binaries
	u      *lab.Underlay
	rrNS   string
	nodes  []*node
	prefix string
}

// node is a compute node running bagpipe-bgp in its namespace.
type node struct {
	tp   *topo
	name string
	ns   string
	addr netip.Addr
	conf string
	proc *testenv.Process
	http *http.Client
}

// requireEnv fails the test unless we are root with the tools the lab
// needs (and gobgpd when rr is "gobgpd").
func requireEnv(t *testing.T, rr string) {
	t.Helper()
	if err := lab.CheckTools(); err != nil {
		t.Fatalf("e2e: %v", err)
	}
	if rr == "gobgpd" {
		if _, err := exec.LookPath("gobgpd"); err != nil {
			t.Fatalf("e2e: gobgpd is missing (%v): apt-get install gobgpd", err)
		}
	}
}

// newTopo builds the lab: switch, route reflector ("gobgpd" or
// "bagpipe-fakerr") at 10.201.0.254, and one node per name at 10.201.0.1,
// .2, ..., each running bagpipe-bgp with the linux E-VPN driver and the
// extra [DATAPLANE_DRIVER_EVPN] option lines evpnExtra; it waits
// until every node's BGP session is established. Everything is removed at
// cleanup, even when the test fails.
func newTopo(t *testing.T, rr, evpnExtra string, names ...string) *topo {
	t.Helper()
	requireEnv(t, rr)
	tp := newLabSkeleton(t)
	var err error
	var addrs []netip.Addr
	for i, name := range names {
		n := &node{tp: tp, name: name, addr: lab.NodeAddr(i + 1)}
		if n.ns, err = tp.u.AddMachine(name, n.addr); err != nil {
			t.Fatal(err)
		}
		n.http = lab.HTTPClient(n.ns, 10*time.Second)
		tp.nodes = append(tp.nodes, n)
		addrs = append(addrs, n.addr)
	}
	dir := t.TempDir()
	switch rr {
	case "gobgpd":
		conf := filepath.Join(dir, "gobgpd.toml")
		if err := os.WriteFile(conf, []byte(lab.GoBGPConf(lab.RRAddr, addrs)), 0o644); err != nil {
			t.Fatal(err)
		}
		gobgpd, _ := exec.LookPath("gobgpd")
		testenv.StartProcess(t, "ip", append([]string{"netns", "exec", tp.rrNS, gobgpd}, lab.GoBGPArgs(conf)...), nil)
	case "bagpipe-fakerr":
		testenv.StartProcess(t, "ip", []string{"netns", "exec", tp.rrNS, filepath.Join(tp.bin, "bagpipe-fakerr"),
			"--host", lab.RRAddr.String(), "--port", "179"}, nil)
	default:
		t.Fatalf("e2e: unknown route reflector %q", rr)
	}
	for _, n := range tp.nodes {
		n.conf = filepath.Join(dir, "bgp-"+n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(lab.BagpipeConf(n.addr, lab.RRAddr, "linux")+evpnExtra), 0o644); err != nil {
			t.Fatal(err)
		}
		n.start()
	}
	for _, n := range tp.nodes {
		n.waitEstablished()
	}
	return tp
}

// start runs bagpipe-bgp in the node's namespace.
func (n *node) start() {
	n.tp.t.Helper()
	n.proc = testenv.StartProcess(n.tp.root, "ip", []string{"netns", "exec", n.ns,
		filepath.Join(n.tp.bin, "bagpipe-bgp"), "--config-file", n.conf}, nil)
}

// waitEstablished waits for the node's BGP session with the reflector.
func (n *node) waitEstablished() {
	t := n.tp.t
	t.Helper()
	testenv.WaitFor(t, startTimeout, "node "+n.name+"'s BGP session to be established", func() (bool, error) {
		if n.proc.Exited() {
			t.Fatalf("e2e: bagpipe-bgp of node %s exited:\n%s", n.name, n.proc.Log())
		}
		var v any
		if err := n.getJSON("/looking-glass/summary/BGP_established_peers", &v); err != nil {
			return false, err
		}
		return v == 1.0, fmt.Errorf("BGP_established_peers = %v", v)
	})
}

// url is the node's REST API URL for path, as reached from inside its
// namespace.
func (n *node) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", lab.APIPort, path)
}

// get returns the status and body of GET path.
func (n *node) get(path string) (int, []byte, error) {
	resp, err := n.http.Get(n.url(path))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getJSON decodes the body of GET path (which must answer 200) into v.
func (n *node) getJSON(path string, v any) error {
	code, b, err := n.get(path)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET %s: %d: %s", path, code, b)
	}
	return json.Unmarshal(b, v)
}

// post sends body to path with Accept: application/json.
func (n *node) post(path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, n.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// dataplaneInfo is what the linux driver shows of an instance in the
// looking glass.
type dataplaneInfo struct {
	Bridge string `json:"linux_bridge"`
	VXLAN  string `json:"vxlan_if"`
	VNI    int    `json:"vni"`
	// Adopted: the bridge and VXLAN device were left by an earlier run
	// of bagpipe-bgp and taken over.
	Adopted bool `json:"adopted"`
}

// dataplane returns the looking glass dataplane view of an instance.
func (n *node) dataplane(instance string) dataplaneInfo {
	n.tp.t.Helper()
	var d dataplaneInfo
	if err := n.getJSON("/looking-glass/vpns/instances/"+instance+"/dataplane", &d); err != nil {
		n.tp.t.Fatalf("e2e: node %s: %v", n.name, err)
	}
	if d.Bridge == "" || d.VXLAN == "" || d.VNI == 0 {
		n.tp.t.Fatalf("e2e: node %s: instance %s dataplane info lacks the bridge, VXLAN device or VNI: %+v", n.name, instance, d)
	}
	return d
}

// netlink opens a netlink handle in the node's namespace.
func (n *node) netlink() *netlink.Handle {
	n.tp.t.Helper()
	ns, err := netns.GetFromName(n.ns)
	if err != nil {
		n.tp.t.Fatalf("e2e: opening namespace %s: %v", n.ns, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		n.tp.t.Fatalf("e2e: netlink in namespace %s: %v", n.ns, err)
	}
	n.tp.t.Cleanup(h.Close)
	return h
}

// fdbEntry is one bridge fdb entry, made comparable.
type fdbEntry struct {
	Dev   string
	MAC   string
	Dst   string // remote VTEP, "" for a local entry
	VNI   int
	State int
	Flags int
}

func (e fdbEntry) String() string {
	return fmt.Sprintf("%s dev %s dst %s vni %d state %#x flags %#x", e.MAC, e.Dev, e.Dst, e.VNI, e.State, e.Flags)
}

// fdb dumps the node's bridge fdb. With static, only the permanent and
// static unicast entries (what the driver programs), not the ones the
// bridges learn from traffic, which come and go, nor the multicast
// addresses the kernel adds for the interfaces.
func (n *node) fdb(h *netlink.Handle, static bool) ([]fdbEntry, error) {
	neighs, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("listing the bridge fdb of node %s: %w", n.name, err)
	}
	names := map[int]string{}
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing the links of node %s: %w", n.name, err)
	}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []fdbEntry
	for _, ne := range neighs {
		if static && ne.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) == 0 {
			continue
		}
		if static && len(ne.HardwareAddr) > 0 && ne.HardwareAddr[0]&1 != 0 {
			continue // multicast addresses the interfaces join (IPv6), not the driver's
		}
		e := fdbEntry{Dev: names[ne.LinkIndex], MAC: ne.HardwareAddr.String(), VNI: ne.VNI, State: ne.State, Flags: ne.Flags}
		if ne.IP != nil {
			e.Dst = ne.IP.String()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// findFDB returns the fdb entries of dev for mac.
func findFDB(entries []fdbEntry, dev, mac string) []fdbEntry {
	var out []fdbEntry
	for _, e := range entries {
		if e.Dev == dev && e.MAC == mac {
			out = append(out, e)
		}
	}
	return out
}

// vm returns a VM of the lab on node n: namespace prefix+name, in E-VPN
// network with route target rt, address ip (a /24), MAC mac ("" for the
// veth's random one).
func (n *node) vm(name, network, rt, ip, mac string) lab.VM {
	return lab.VM{Node: n.ns, NS: n.tp.prefix + name, Network: network, RT: rt,
		IP: netip.MustParsePrefix(ip), MAC: mac, ConfigFile: n.conf}
}

// attach runs bagpipe-rest-attach --attach (or --detach) for vm.
func (tp *topo) restAttach(vm lab.VM, attach bool) {
	tp.t.Helper()
	out, err := vm.RestAttach(filepath.Join(tp.bin, "bagpipe-rest-attach"), attach)
	if err != nil {
		tp.t.Fatalf("e2e: %v", err)
	}
	tp.t.Logf("bagpipe-rest-attach (%s on %s):\n%s", vm.NS, vm.Node, out)
}

// mac returns the VM's MAC, from the namespace when not fixed.
func (tp *topo) mac(vm lab.VM) string {
	tp.t.Helper()
	if vm.MAC != "" {
		return vm.MAC
	}
	m, err := vm.ReadMAC()
	if err != nil {
		tp.t.Fatalf("e2e: %v", err)
	}
	return m
}

// waitPing waits until from pings to (one reply to ping -c 1: ARP and
// flooding warm up first), then requires ping -c 3 -W 2 to get all three
// replies.
func (tp *topo) waitPing(from lab.VM, to netip.Addr) {
	tp.t.Helper()
	var last string
	testenv.WaitFor(tp.t, stateTimeout, fmt.Sprintf("a first ping reply from %s to %s", from.NS, to), func() (bool, error) {
		got, out := lab.Ping(from.NS, to, 1, 1)
		last = out
		return got == 1, fmt.Errorf("ping: %s", strings.TrimSpace(out))
	})
	if got, out := lab.Ping(from.NS, to, 3, 2); got != 3 {
		tp.t.Fatalf("e2e: ping -c 3 from %s to %s after warm-up got %d replies:\n%s\n(first successful ping:\n%s)", from.NS, to, got, out, last)
	}
}

// noPing requires ping -c 2 -W 1 from one VM to an address to get no reply.
func (tp *topo) noPing(from lab.VM, to netip.Addr, why string) {
	tp.t.Helper()
	if got, out := lab.Ping(from.NS, to, 2, 1); got != 0 {
		tp.t.Errorf("e2e: %s: ping from %s to %s got %d replies, want none:\n%s", why, from.NS, to, got, out)
	}
}

// macOf parses a MAC for comparison with fdb entries.
func macOf(t *testing.T, s string) string {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatalf("e2e: bad MAC %q: %v", s, err)
	}
	return m.String()
}

// newLabSkeleton builds what every lab starts with: the test binaries, a
// private namespace prefix (stale ones of earlier runs swept), the
// underlay switch and the route reflector's machine at lab.RRAddr. Its
// cleanup is registered first, so it runs after the processes and daemons
// the test starts later are stopped, and removes every namespace.
func newLabSkeleton(t *testing.T) *topo {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	if err := lab.SweepStale(prefixBase); err != nil {
		t.Logf("e2e: removing namespaces of earlier runs: %v", err)
	}
	prefix, err := lab.NewPrefix(prefixBase)
	if err != nil {
		t.Fatal(err)
	}
	tp := &topo{t: t, root: t, bin: bin, prefix: prefix}
	t.Cleanup(func() {
		if err := lab.DeleteNamespaces(prefix, 5*time.Second); err != nil {
			t.Errorf("e2e: cleanup: %v", err)
		}
		lab.ReleasePrefix(prefix)
		if left, _ := lab.Namespaces(prefix); len(left) > 0 {
			t.Errorf("e2e: cleanup left namespaces %v", left)
		}
	})
	if tp.u, err = lab.NewUnderlay(prefix); err != nil {
		t.Fatal(err)
	}
	if tp.rrNS, err = tp.u.AddMachine("rr", lab.RRAddr); err != nil {
		t.Fatal(err)
	}
	return tp
}
