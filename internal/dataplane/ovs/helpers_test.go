package ovs

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// These tests start private Open vSwitch instances (userspace datapath)
// in throwaway network namespaces: they need root and the
// openvswitch-switch package, and fail, never skip, without them. Every
// daemon is killed by pidfile and every namespace deleted on cleanup.

var nsSeq atomic.Int64

// requireTools fails the test unless we are root and every tool exists.
func requireTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("these tests need root (network namespaces and Open vSwitch daemons)")
	}
	for _, tool := range []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip", "ping", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install openvswitch-switch, iproute2, iputils-ping and ethtool (.ci/run does): %v", tool, err)
		}
	}
}

// sh runs a command and fails the test with its output on error.
func sh(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newNS creates a named network namespace with lo up, deleted on cleanup.
func newNS(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("bpovs%d-%d", os.Getpid(), nsSeq.Add(1))
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v %s", name, err, out)
		}
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// ovsInstance is a private ovsdb-server + ovs-vswitchd (ovs-inst.sh).
type ovsInstance struct {
	dir, ns string
}

func (o *ovsInstance) db() string { return "unix:" + filepath.Join(o.dir, "db.sock") }

// vsctl runs ovs-vsctl against the instance.
func (o *ovsInstance) vsctl(t testing.TB, args ...string) string {
	t.Helper()
	return strings.TrimSpace(sh(t, "ovs-vsctl", append([]string{"--timeout=20", "--db=" + o.db()}, args...)...))
}

// ofctl runs ovs-ofctl -O OpenFlow15 against the instance.
func (o *ovsInstance) ofctl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("ovs-ofctl", append([]string{"-O", "OpenFlow15"}, args...)...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// trace runs ofproto/trace on bridge br for flow.
func (o *ovsInstance) trace(t testing.TB, br, flow string) string {
	t.Helper()
	return sh(t, "ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl"), "ofproto/trace", br, flow)
}

// startOVS starts an instance in namespace ns (ovs-inst.sh from Go).
func startOVS(t testing.TB, ns string) *ovsInstance {
	t.Helper()
	dir, err := os.MkdirTemp("", "bpovs")
	if err != nil {
		t.Fatal(err)
	}
	o := &ovsInstance{dir: dir, ns: ns}
	t.Cleanup(func() {
		for _, p := range []string{"ovs-vswitchd", "ovsdb-server"} {
			killPidfile(t, filepath.Join(dir, p+".pid"))
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "ovs-vswitchd.log")); err == nil {
				t.Logf("ovs-vswitchd.log (%s):\n%s", ns, tail(string(log), 40))
			}
		}
		os.RemoveAll(dir)
	})
	sh(t, "ovsdb-tool", "create", filepath.Join(dir, "conf.db"), "/usr/share/openvswitch/vswitch.ovsschema")
	o.daemon(t, "ovsdb-server", filepath.Join(dir, "conf.db"), "--remote=punix:"+filepath.Join(dir, "db.sock"),
		"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
		"--log-file="+filepath.Join(dir, "ovsdb-server.log"), "--detach", "--no-chdir")
	sh(t, "ovs-vsctl", "--db="+o.db(), "--no-wait", "init")
	o.startVswitchd(t)
	return o
}

// daemon starts a detaching OVS daemon in the instance's namespace.
func (o *ovsInstance) daemon(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", o.ns, name}, args...)...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.dir, "OVS_DBDIR="+o.dir, "OVS_LOGDIR="+o.dir, "OVS_SYSCONFDIR="+o.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("starting %s: %v\n%s", name, err, out)
	}
}

// startVswitchd starts ovs-vswitchd on the instance's database.
func (o *ovsInstance) startVswitchd(t testing.TB) {
	t.Helper()
	o.daemon(t, "ovs-vswitchd", o.db(), "--pidfile="+filepath.Join(o.dir, "ovs-vswitchd.pid"),
		"--unixctl="+filepath.Join(o.dir, "ovs-vswitchd.ctl"), "--log-file="+filepath.Join(o.dir, "ovs-vswitchd.log"),
		"--detach", "--no-chdir")
}

// restartVswitchd stops ovs-vswitchd and starts it again: bridges and
// ports come back from the database, flows and groups do not. It waits
// (a bounded number of tries) until the bridge answers OpenFlow again.
func (o *ovsInstance) restartVswitchd(t testing.TB, br string) {
	t.Helper()
	killPidfile(t, filepath.Join(o.dir, "ovs-vswitchd.pid"))
	o.startVswitchd(t)
	for i := 0; ; i++ {
		cmd := exec.Command("ovs-ofctl", "-O", "OpenFlow15", "dump-flows", br)
		cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.dir)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return
		}
		if i == 100 {
			t.Fatalf("bridge %s does not answer after an ovs-vswitchd restart: %v %s", br, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// killPidfile terminates the daemon whose pid is in file and waits for it.
func killPidfile(t testing.TB, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// addBridge creates a netdev bridge.
func (o *ovsInstance) addBridge(t testing.TB, br string) {
	t.Helper()
	o.vsctl(t, "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
}

// newTestDriver creates a driver on instance o with opts (bridge,
// database and run directory filled in) and resets its state.
func newTestDriver(t testing.TB, o *ovsInstance, opts Options) *Driver {
	t.Helper()
	if opts.Bridge == "" {
		opts.Bridge = "br-mpls"
	}
	opts.DB, opts.RunDir, opts.NetNS = o.db(), o.dir, o.ns
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := d.ResetState(); err != nil {
		t.Fatalf("ResetState: %v", err)
	}
	return d
}

func mustMAC(t testing.TB, s string) route.MAC {
	t.Helper()
	m, err := route.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// node is one "compute node" of a two-node lab: a namespace with its own
// OVS, br-phy holding the underlay with the node's IP, br-mpls for the
// driver, and a VM namespace whose eth0 is plugged through veth "v<n>".
type node struct {
	ns, vm   string
	ovs      *ovsInstance
	underlay netip.Addr
	vmIP     netip.Prefix
	vmMAC    string
	vmPort   string // the host side of the VM veth
	gateway  netip.Addr
}

// newNode describes node letter ("A") with its namespaces; setup builds
// it once its underlay interface "u<letter>" exists in n.ns.
func newNode(t *testing.T, letter string, underlay, vmIP, vmMAC, gw string) *node {
	return &node{ns: newNS(t), vm: newNS(t), underlay: netip.MustParseAddr(underlay),
		vmIP: netip.MustParsePrefix(vmIP), vmMAC: vmMAC, vmPort: "v" + letter, gateway: netip.MustParseAddr(gw)}
}

// setup plugs the VM, starts the node's OVS, puts the underlay on br-phy
// with the node's IP and creates br-mpls.
func (n *node) setup(t *testing.T) {
	t.Helper()
	u := "u" + n.vmPort[1:]
	sh(t, "ip", "-n", n.ns, "link", "set", u, "up")
	sh(t, "ip", "link", "add", n.vmPort, "netns", n.ns, "type", "veth", "peer", "name", "eth0", "netns", n.vm)
	sh(t, "ip", "-n", n.ns, "link", "set", n.vmPort, "up")
	sh(t, "ip", "-n", n.vm, "link", "set", "eth0", "address", n.vmMAC, "mtu", "1400", "up")
	sh(t, "ip", "-n", n.vm, "addr", "add", n.vmIP.String(), "dev", "eth0")
	sh(t, "ip", "-n", n.vm, "route", "add", "default", "via", n.gateway.String())
	// The userspace datapath does not complete partial checksums.
	sh(t, "ip", "netns", "exec", n.vm, "ethtool", "-K", "eth0", "tx", "off")
	sh(t, "ip", "netns", "exec", n.ns, "ethtool", "-K", n.vmPort, "tx", "off")
	sh(t, "ip", "netns", "exec", n.ns, "ethtool", "-K", u, "tx", "off")
	n.ovs = startOVS(t, n.ns)
	n.ovs.addBridge(t, "br-phy")
	n.ovs.vsctl(t, "add-port", "br-phy", u)
	sh(t, "ip", "-n", n.ns, "addr", "add", n.underlay.String()+"/24", "dev", "br-phy")
	sh(t, "ip", "-n", n.ns, "link", "set", "br-phy", "up")
	n.ovs.addBridge(t, "br-mpls")
}

// newLab builds two nodes A (10.200.0.1, VM 10.1.1.10/24) and B
// (10.200.0.2, VM 10.2.2.10/24) joined by an underlay veth.
func newLab(t *testing.T) (a, b *node) {
	t.Helper()
	a = newNode(t, "A", "10.200.0.1", "10.1.1.10/24", "02:00:00:00:0a:0a", "10.1.1.1")
	b = newNode(t, "B", "10.200.0.2", "10.2.2.10/24", "02:00:00:00:0b:0b", "10.2.2.1")
	sh(t, "ip", "link", "add", "uA", "netns", a.ns, "type", "veth", "peer", "name", "uB", "netns", b.ns)
	a.setup(t)
	b.setup(t)
	return a, b
}

// newLab3 builds nodes A, B and C on one underlay (a Linux bridge in its
// own namespace). B and C both host a VM with 10.2.2.10 (anycast), so A
// can reach it through either: an ECMP destination.
func newLab3(t *testing.T) (a, b, c *node) {
	t.Helper()
	sw := newNS(t)
	sh(t, "ip", "-n", sw, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", sw, "link", "set", "br0", "up")
	a = newNode(t, "A", "10.200.0.1", "10.1.1.10/24", "02:00:00:00:0a:0a", "10.1.1.1")
	b = newNode(t, "B", "10.200.0.2", "10.2.2.10/24", "02:00:00:00:0b:0b", "10.2.2.1")
	c = newNode(t, "C", "10.200.0.3", "10.2.2.10/24", "02:00:00:00:0c:0c", "10.2.2.1")
	for _, n := range []*node{a, b, c} {
		l := n.vmPort[1:]
		sh(t, "ip", "link", "add", "u"+l, "netns", n.ns, "type", "veth", "peer", "name", "s"+l, "netns", sw)
		sh(t, "ip", "-n", sw, "link", "set", "s"+l, "master", "br0", "up")
		sh(t, "ip", "netns", "exec", sw, "ethtool", "-K", "s"+l, "tx", "off")
		n.setup(t)
	}
	return a, b, c
}

// vrfConfig is node n's VRF 1 with local label.
func (n *node) vrfConfig() dataplane.VRFConfig {
	return dataplane.VRFConfig{InstanceID: 1, ExternalID: "vpn-" + n.ns, Label: 0, LocalAddress: n.underlay,
		GatewayIP: n.gateway, PrefixLen: n.vmIP.Bits()}
}

// ping pings dst from n's VM: a warm-up round first (the first packet to
// a new tunnel destination is lost while OVS resolves ARP), then a round
// that must succeed. It returns the output of the successful round.
func (n *node) ping(t *testing.T, dst netip.Addr) string {
	t.Helper()
	var out []byte
	var err error
	for i := 0; i < 5; i++ {
		out, err = exec.Command("ip", "netns", "exec", n.vm, "ping", "-c", "2", "-i", "0.2", "-W", "2", dst.String()).CombinedOutput()
		if err == nil {
			return string(out)
		}
	}
	t.Fatalf("ping %s from %s: %v\n%s", dst, n.vm, err, out)
	return ""
}

// datapathFlow returns the datapath flow (dpctl/dump-flows) that
// contains every string of want, failing if there is none.
func (o *ovsInstance) datapathFlow(t testing.TB, want ...string) string {
	t.Helper()
	out := sh(t, "ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl"), "dpctl/dump-flows")
	for _, l := range strings.Split(out, "\n") {
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(l, w) }) {
			return l
		}
	}
	t.Fatalf("no datapath flow contains all of %q:\n%s", want, out)
	return ""
}

// flowPackets returns n_packets of the first br-mpls flow matching match,
// after a revalidation round (datapath statistics reach the OpenFlow
// rules then).
func (o *ovsInstance) flowPackets(t testing.TB, match string) int {
	t.Helper()
	sh(t, "ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl"), "revalidator/wait")
	out := o.ofctl(t, "dump-flows", "br-mpls", match)
	i := strings.Index(out, "n_packets=")
	if i < 0 {
		t.Fatalf("no flow matches %q:\n%s", match, out)
	}
	var n int
	fmt.Sscan(out[i+len("n_packets="):], &n)
	return n
}
