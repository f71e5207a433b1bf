package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// This file builds IP VPN labs: compute nodes whose bagpipe-bgp runs the
// ovs IP VPN driver on a private Open vSwitch instance (userspace
// datapath) in the node's namespace, or the linux IP VPN driver.
//
// An OVS node is laid out as dataplanes.md §1c: the underlay interface
// eth0 is a port of the netdev bridge br-phy, which holds the node's
// underlay address (the userspace datapath routes and ARPs tunnels
// itself through it), and br-mpls is the driver's bridge. bagpipe-bgp
// and bagpipe-rest-attach find the instance through OVS_RUNDIR (the
// daemon has no option for the database or run directory; ovs-vsctl's
// default database is $OVS_RUNDIR/db.sock and ovs-ofctl finds
// $OVS_RUNDIR/BRIDGE.mgmt).

// ovsTools are the Open vSwitch programs an OVS node needs.
var ovsTools = []string{"ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ethtool"}

// ovsSchema is the database schema the openvswitch-switch package installs.
const ovsSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// requireOVS fails the test unless Open vSwitch (and ethtool) are
// installed.
func requireOVS(t *testing.T) {
	t.Helper()
	for _, tool := range ovsTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("e2e: %s is missing (%v): apt-get install openvswitch-switch ethtool (.ci/run does)", tool, err)
		}
	}
	if _, err := os.Stat(ovsSchema); err != nil {
		t.Fatalf("e2e: the OVS schema is missing (%v): apt-get install openvswitch-switch", err)
	}
}

// ovsInstance is a private ovsdb-server and ovs-vswitchd running in a
// node namespace, with all their files in dir.
type ovsInstance struct {
	dir, ns string
}

// env is the environment that points OVS clients at the instance.
func (o *ovsInstance) env() []string {
	return []string{"OVS_RUNDIR=" + o.dir, "OVS_DBDIR=" + o.dir, "OVS_LOGDIR=" + o.dir, "OVS_SYSCONFDIR=" + o.dir}
}

// run runs an OVS client command with the instance's environment and
// returns its output.
func (o *ovsInstance) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), o.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s (OVS instance of %s): %w: %s", name, strings.Join(args, " "), o.ns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// must is run failing the test on error.
func (o *ovsInstance) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := o.run(name, args...)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return out
}

// startOVS starts an instance in namespace ns; cleanup kills its daemons
// (by pidfile) and removes its directory, showing the end of the
// vswitchd log when the test failed.
func startOVS(t *testing.T, ns string) *ovsInstance {
	t.Helper()
	// A short directory: the unix sockets inside must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "e2eovs")
	if err != nil {
		t.Fatal(err)
	}
	o := &ovsInstance{dir: dir, ns: ns}
	t.Cleanup(func() {
		for _, p := range []string{"ovs-vswitchd", "ovsdb-server"} {
			killPidfile(filepath.Join(dir, p+".pid"))
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "ovs-vswitchd.log")); err == nil {
				t.Logf("ovs-vswitchd.log of %s (end):\n%s", ns, lastLines(string(b), 30))
			}
		}
		os.RemoveAll(dir)
	})
	o.must(t, "ovsdb-tool", "create", filepath.Join(dir, "conf.db"), ovsSchema)
	o.must(t, "ip", "netns", "exec", ns, "ovsdb-server", filepath.Join(dir, "conf.db"),
		"--remote=punix:"+filepath.Join(dir, "db.sock"), "--pidfile="+filepath.Join(dir, "ovsdb-server.pid"),
		"--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"), "--log-file="+filepath.Join(dir, "ovsdb-server.log"),
		"--detach", "--no-chdir")
	o.must(t, "ovs-vsctl", "--timeout=20", "--no-wait", "init")
	o.must(t, "ip", "netns", "exec", ns, "ovs-vswitchd", "unix:"+filepath.Join(dir, "db.sock"),
		"--pidfile="+filepath.Join(dir, "ovs-vswitchd.pid"), "--unixctl="+filepath.Join(dir, "ovs-vswitchd.ctl"),
		"--log-file="+filepath.Join(dir, "ovs-vswitchd.log"), "--detach", "--no-chdir")
	return o
}

// killPidfile terminates the daemon whose pid is in file.
func killPidfile(file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if lab.Alive(pid) {
		lab.StopPIDs([]int{pid}, 3*time.Second)
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// setupOVSNode starts the node's OVS and moves its underlay address from
// eth0 to br-phy (eth0 becomes a port of br-phy), then creates br-mpls.
// TX checksum offload is turned off on both ends of the underlay veth:
// the userspace datapath does not complete partial checksums.
func (tp *topo) setupOVSNode(n *node) *ovsInstance {
	t := tp.t
	t.Helper()
	o := startOVS(tp.root, n.ns)
	addr := netip.PrefixFrom(n.addr, lab.UnderlaySubnet.Bits()).String()
	for _, c := range [][]string{
		{"ip", "netns", "exec", n.ns, "ethtool", "-K", lab.UplinkName, "tx", "off"},
		{"ip", "netns", "exec", tp.u.Switch, "ethtool", "-K", "p-" + n.name, "tx", "off"},
		{"ip", "-n", n.ns, "addr", "del", addr, "dev", lab.UplinkName},
		{"ovs-vsctl", "--timeout=20", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev"},
		{"ovs-vsctl", "--timeout=20", "add-port", "br-phy", lab.UplinkName},
		{"ip", "-n", n.ns, "addr", "add", addr, "dev", "br-phy"},
		{"ip", "-n", n.ns, "link", "set", "br-phy", "up"},
		{"ovs-vsctl", "--timeout=20", "add-br", "br-mpls", "--", "set", "bridge", "br-mpls", "datapath_type=netdev"},
	} {
		o.must(t, c[0], c[1:]...)
	}
	return o
}

// ofctl runs ovs-ofctl -O OpenFlow15 on the instance.
func (o *ovsInstance) ofctl(args ...string) (string, error) {
	return o.run("ovs-ofctl", append([]string{"-O", "OpenFlow15"}, args...)...)
}

// datapathFlows returns the flows of the instance's userspace datapath
// (dpctl/dump-flows; naming it spares the log a warning about the
// missing kernel datapaths).
func (o *ovsInstance) datapathFlows() (string, error) {
	return o.run("ovs-appctl", "-t", filepath.Join(o.dir, "ovs-vswitchd.ctl"), "dpctl/dump-flows", "netdev@ovs-netdev")
}

// groupRe finds the select group of a prefix flow's actions.
var groupRe = regexp.MustCompile(`group:(\d+)`)

// prefixGroup returns the id of the group the flow of br-mpls table
// table matching nw_dst=prefix outputs to, and that group's dump
// (ovs-ofctl dump-groups), whose buckets are its ECMP next hops.
func (o *ovsInstance) prefixGroup(table int, prefix string) (string, string, error) {
	flows, err := o.ofctl("dump-flows", "br-mpls", fmt.Sprintf("table=%d,ip,nw_dst=%s", table, prefix))
	if err != nil {
		return "", "", err
	}
	var id string
	for _, l := range strings.Split(flows, "\n") {
		if m := groupRe.FindStringSubmatch(l); m != nil && strings.Contains(l, "nw_dst="+prefix+" ") {
			id = m[1]
		}
	}
	if id == "" {
		return "", "", fmt.Errorf("no flow of table %d for nw_dst=%s outputs to a group:\n%s", table, prefix, flows)
	}
	groups, err := o.ofctl("dump-groups", "br-mpls", id)
	if err != nil {
		return "", "", err
	}
	for _, l := range strings.Split(groups, "\n") {
		if strings.Contains(l, "group_id="+id+",") {
			return id, l, nil
		}
	}
	return "", "", fmt.Errorf("group %s (of nw_dst=%s) is not in the dump:\n%s", id, prefix, groups)
}

// ipvpnNodeSpec describes a compute node of an IP VPN lab.
type ipvpnNodeSpec struct {
	name string
	// driver is the IP VPN dataplane driver: "ovs" or "linux".
	driver string
	// opts are extra [DATAPLANE_DRIVER_IPVPN] lines ("vxlan_encap = True\n").
	opts string
}

// ipvpnLab is a topo whose nodes run an IP VPN driver; ovs holds the OVS
// instance of each ovs node.
type ipvpnLab struct {
	*topo
	ovs map[*node]*ovsInstance
}

// newIPVPNLab builds a lab as newTopo does (switch, gobgpd route
// reflector, one node per spec at 10.201.0.1, .2, ...), with a private
// OVS for every ovs node, and starts bagpipe-bgp on each node with the
// E-VPN driver dummy and the IP VPN driver of its spec. It waits until
// every BGP session is established; everything (namespaces, OVS daemons,
// processes) is removed at cleanup, even when the test fails.
func newIPVPNLab(t *testing.T, specs ...ipvpnNodeSpec) *ipvpnLab {
	t.Helper()
	requireEnv(t, "gobgpd")
	for _, s := range specs {
		if s.driver == "ovs" {
			requireOVS(t)
		}
	}
	tp := newLabSkeleton(t)
	l := &ipvpnLab{topo: tp, ovs: map[*node]*ovsInstance{}}
	var err error
	var addrs []netip.Addr
	for i, s := range specs {
		n := &node{tp: tp, name: s.name, addr: lab.NodeAddr(i + 1)}
		if n.ns, err = tp.u.AddMachine(s.name, n.addr); err != nil {
			t.Fatal(err)
		}
		n.http = lab.HTTPClient(n.ns, 10*time.Second)
		tp.nodes = append(tp.nodes, n)
		addrs = append(addrs, n.addr)
		switch s.driver {
		case "ovs":
			l.ovs[n] = tp.setupOVSNode(n)
		case "linux":
		default:
			t.Fatalf("e2e: unknown IP VPN driver %q", s.driver)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "gobgpd.toml")
	if err := os.WriteFile(conf, []byte(lab.GoBGPConf(lab.RRAddr, addrs)), 0o644); err != nil {
		t.Fatal(err)
	}
	gobgpd, _ := exec.LookPath("gobgpd")
	testenv.StartProcess(t, "ip", append([]string{"netns", "exec", tp.rrNS, gobgpd}, lab.GoBGPArgs(conf)...), nil)
	for i, n := range tp.nodes {
		s := specs[i]
		n.conf = filepath.Join(dir, "bgp-"+n.name+".conf")
		text := lab.BagpipeConf(n.addr, lab.RRAddr, "dummy") +
			"[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = " + s.driver + "\n" + s.opts
		if s.driver == "ovs" {
			text += "ovs_bridge = br-mpls\narp_responder = True\n"
		}
		if err := os.WriteFile(n.conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		var env []string
		if o := l.ovs[n]; o != nil {
			env = o.env()
		}
		n.proc = testenv.StartProcess(t, "ip", []string{"netns", "exec", n.ns,
			filepath.Join(tp.bin, "bagpipe-bgp"), "--config-file", n.conf}, env)
	}
	for _, n := range tp.nodes {
		n.waitEstablished()
	}
	return l
}

// ipvpnVM is a fake VM in an IP VPN: a lab.VM (its Network is the VRF id,
// RT its import and export route target) on node n.
type ipvpnVM struct {
	lab.VM
	n *node
	// hostIf and nsIf name the node and namespace ends of the VM's veth
	// (--port netns:hostIf, --if2vpn nsIf); "": rest-attach's defaults
	// (lab.VM.HostIf, "tovpn"). One namespace can hold several ports.
	hostIf, nsIf string
}

// host returns the node end of the VM's veth.
func (vm ipvpnVM) host() string {
	if vm.hostIf != "" {
		return vm.hostIf
	}
	return vm.HostIf()
}

// inner returns the namespace end of the VM's veth.
func (vm ipvpnVM) inner() string {
	if vm.nsIf != "" {
		return vm.nsIf
	}
	return "tovpn"
}

// vm returns VM name (namespace prefix+name, at most 4 characters so that
// the host-side interface name stays unique within 15) on node n, in VRF
// vrf with route target rt ("": none, give --import-rt/--export-rt to
// restAttach), address ip (its gateway is the second to last address of
// the subnet, as bagpipe-rest-attach chooses) and MAC mac.
func (l *ipvpnLab) vm(n *node, name, vrf, rt, ip, mac string) ipvpnVM {
	return ipvpnVM{VM: lab.VM{Node: n.ns, NS: l.prefix + name, Network: vrf, RT: rt,
		IP: netip.MustParsePrefix(ip), MAC: mac, ConfigFile: n.conf}, n: n}
}

// restAttach runs bagpipe-rest-attach --port netns --network-type ipvpn
// in vm's node (with --ovs-preplug on an ovs node, whose OVS it reaches
// through OVS_RUNDIR) and extra arguments. After an attach it sets the
// VM's MTU to 1400 (the userspace tunnels do not fragment) and turns TX
// checksum offload off on both ends of its veth.
func (l *ipvpnLab) restAttach(vm ipvpnVM, attach bool, extra ...string) {
	t := l.t
	t.Helper()
	port := "netns"
	if vm.hostIf != "" {
		port += ":" + vm.hostIf
	}
	args := []string{"--port", port, "--netns", vm.NS}
	if vm.nsIf != "" {
		args = append(args, "--if2vpn", vm.nsIf)
	}
	l.runRestAttach(vm, attach, append(args, extra...)...)
	if !attach {
		return
	}
	for _, c := range [][]string{
		{"ip", "-n", vm.NS, "link", "set", vm.inner(), "mtu", "1400"},
		{"ip", "netns", "exec", vm.NS, "ethtool", "-K", vm.inner(), "tx", "off"},
		{"ip", "netns", "exec", vm.Node, "ethtool", "-K", vm.host(), "tx", "off"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("e2e: %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
}

// runRestAttach runs bagpipe-rest-attach --attach or --detach on vm's
// node for vm's IP VPN instance, with the port arguments and extra ones in
// portArgs; on an ovs node with --ovs-preplug and OVS's environment.
func (l *ipvpnLab) runRestAttach(vm ipvpnVM, attach bool, portArgs ...string) {
	t := l.t
	t.Helper()
	op := "--detach"
	if attach {
		op = "--attach"
	}
	args := []string{op, "--network-type", "ipvpn", "--vpn-instance-id", vm.Network,
		"--ip", vm.IP.String(), "--mac", vm.MAC, "--config-file", vm.ConfigFile}
	if vm.RT != "" {
		args = append(args, "--rt", vm.RT)
	}
	o := l.ovs[vm.n]
	if o != nil {
		args = append(args, "--ovs-preplug", "--ovs-bridge", "br-mpls")
	}
	args = append(args, portArgs...)
	cmd := lab.Command(vm.Node, filepath.Join(l.bin, "bagpipe-rest-attach"), args...)
	if o != nil {
		cmd.Env = append(os.Environ(), o.env()...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("e2e: bagpipe-rest-attach %s (on node %s): %v\n%s", strings.Join(args, " "), vm.n.name, err, out)
	}
	t.Logf("bagpipe-rest-attach %s (%s on %s):\n%s", op, vm.host(), vm.n.name, out)
}
