package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/lab"
)

// prefix starts the name of every namespace of the demo; down deletes
// them all.
const prefix = "bpdemo-"

// ctlName is the machine (namespace prefix+ctlName) of the controller.
const ctlName = "ctl"

// ctlAddr is the controller's underlay address; it listens on
// 0.0.0.0:ctlPort of its namespace, so that the agents reach it over the
// underlay and the CLI run in its namespace reaches it with its default
// URL (127.0.0.1:9696).
var ctlAddr = lab.NodeAddr(253)

// ctlPort is the controller's REST port (Neutron's).
const ctlPort = 9696

// subnet is the subnet of both demo networks: they overlap on purpose.
const subnet = "10.10.0.0/24"

// node is one compute node of the lab, in its own namespace, running
// bagpipe-bgp and bagpipe-agent; its host name (binding:host_id) is its
// namespace name.
type node struct {
	name string
	ns   string
	addr netip.Addr
	conf string
	http *http.Client
}

// vm is a fake VM: the namespace that "bagpipe port create --netns" makes
// for a port bound to its node.
type vm struct {
	name    string // port name, and namespace prefix+name
	ns      string
	network string
	ip      netip.Addr
	node    *node
}

type demoLab struct {
	dir   string
	bin   string
	out   io.Writer
	nodes []*node
	vms   []*vm
	rr    string // "gobgpd" or "bagpipe-fakerr"
	// rrChoice is --rr: "auto", "gobgpd" or "fakerr".
	rrChoice string
	ctlNS    string
	ctl      *http.Client // reaches the controller through its namespace
	// netIDs are the network ids by name.
	netIDs map[string]string
	procs  []*exec.Cmd
}

func (l *demoLab) say(format string, a ...any) { fmt.Fprintf(l.out, format+"\n", a...) }

// ctlURL is the controller's URL on the underlay.
func ctlURL() string { return "http://" + ctlAddr.String() + ":" + strconv.Itoa(ctlPort) }

// dataDir is the controller's embedded etcd data directory.
func (l *demoLab) dataDir() string { return filepath.Join(l.dir, "controller-data") }

// exe is the path of one of our programs.
func (l *demoLab) exe(name string) string { return filepath.Join(l.bin, name) }

// start runs a program in namespace ns in the background with its output
// in DIR/name.log and its pid in DIR/name.pid ("ip netns exec" execs the
// program: the pid is the program's).
func (l *demoLab) start(name, ns, path string, args ...string) error {
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := lab.Command(ns, path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches the demo only: it tears down in order
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s in namespace %s: %w", path, ns, err)
	}
	l.procs = append(l.procs, cmd)
	return os.WriteFile(filepath.Join(l.dir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// down kills every process whose pid file is in the directory, then
// deletes every namespace of the demo (the VMs' too, and with them the
// processes still running there) and the controller's data.
func (l *demoLab) down() {
	pids, _ := filepath.Glob(filepath.Join(l.dir, "*.pid"))
	var alive []int
	for _, p := range pids {
		if b, err := os.ReadFile(p); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				alive = append(alive, pid)
			}
		}
		os.Remove(p)
	}
	lab.StopPIDs(alive, 5*time.Second)
	for _, c := range l.procs {
		c.Wait()
	}
	l.procs = nil
	if err := lab.DeleteNamespaces(prefix, 5*time.Second); err != nil {
		l.say("warning: %v", err)
	}
	if err := os.RemoveAll(l.dataDir()); err != nil {
		l.say("warning: removing the controller's data: %v", err)
	}
}

// cli runs the bagpipe CLI in namespace ns against the controller, logs
// the command and its output to DIR/cli.log, and returns the output.
func (l *demoLab) cli(ns string, args ...string) (string, error) {
	full := append([]string{"--controller", ctlURL()}, args...)
	out, err := lab.Command(ns, l.exe("bagpipe"), full...).CombinedOutput()
	if f, ferr := os.OpenFile(filepath.Join(l.dir, "cli.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); ferr == nil {
		fmt.Fprintf(f, "$ ip netns exec %s bagpipe %s\n%s\n", ns, strings.Join(full, " "), out)
		f.Close()
	}
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s bagpipe %s: %w:\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// up builds the underlay, starts the route reflector, the controller and
// the nodes (bagpipe-bgp and bagpipe-agent each), then creates the
// networks and the VMs' ports with the CLI.
func (l *demoLab) up(ctx context.Context) bool {
	if err := l.upErr(ctx); err != nil {
		if ctx.Err() != nil {
			l.say("Interrupted while bringing the lab up.")
			return false
		}
		l.say("%v\nLogs are in %s", err, l.dir)
		return false
	}
	return true
}

func (l *demoLab) upErr(ctx context.Context) error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", l.dir, err)
	}
	os.Remove(filepath.Join(l.dir, "cli.log"))
	l.netIDs = map[string]string{}
	u, err := lab.NewUnderlay(prefix)
	if err != nil {
		return err
	}
	rrNS, err := u.AddMachine("rr", lab.RRAddr)
	if err != nil {
		return err
	}
	if l.ctlNS, err = u.AddMachine(ctlName, ctlAddr); err != nil {
		return err
	}
	l.ctl = lab.HTTPClient(l.ctlNS, 10*time.Second)
	names := []string{"A", "B", "C"}
	var gobgpd string
	useGoBGP := false
	switch l.rrChoice {
	case "gobgpd":
		if gobgpd, err = exec.LookPath("gobgpd"); err != nil {
			return fmt.Errorf("--rr gobgpd: %w (apt-get install gobgpd, or use --rr fakerr)", err)
		}
		useGoBGP = true
	case "fakerr":
	default:
		gobgpd, err = exec.LookPath("gobgpd")
		useGoBGP = err == nil
	}
	if !useGoBGP {
		names = names[:2] // fakerr joins exactly two speakers
	}
	var addrs []netip.Addr
	for i, name := range names {
		n := &node{name: name, addr: lab.NodeAddr(i + 1)}
		if n.ns, err = u.AddMachine(name, n.addr); err != nil {
			return err
		}
		n.http = lab.HTTPClient(n.ns, 10*time.Second)
		l.nodes = append(l.nodes, n)
		addrs = append(addrs, n.addr)
	}
	l.say("Underlay: switch namespace %s (bridge %s), 10.201.0.0/24", u.Switch, lab.SwitchBridge)

	if useGoBGP {
		l.rr = "gobgpd"
		conf := filepath.Join(l.dir, "gobgpd.toml")
		if err := os.WriteFile(conf, []byte(lab.GoBGPConf(lab.RRAddr, addrs)), 0o644); err != nil {
			return err
		}
		err = l.start("gobgpd", rrNS, gobgpd, lab.GoBGPArgs(conf)...)
	} else {
		l.rr = "bagpipe-fakerr"
		err = l.start("fakerr", rrNS, l.exe("bagpipe-fakerr"), "--host", lab.RRAddr.String(), "--port", "179")
	}
	if err != nil {
		return err
	}
	l.say("Route reflector: %s in namespace %s, %s:179", l.rr, rrNS, lab.RRAddr)

	if err := l.start("bagpipe-controller", l.ctlNS, l.exe("bagpipe-controller"),
		"--listen", "0.0.0.0:"+strconv.Itoa(ctlPort), "--data-dir", l.dataDir()); err != nil {
		return err
	}
	if !l.wait(ctx, 60*time.Second, func() bool {
		resp, err := l.ctl.Get(ctlURL() + "/v2.0/networks")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		return fmt.Errorf("bagpipe-controller did not answer on %s; see %s", ctlURL(), filepath.Join(l.dir, "bagpipe-controller.log"))
	}
	l.say("Controller: bagpipe-controller in namespace %s, %s (embedded etcd, data in %s)", l.ctlNS, ctlURL(), l.dataDir())

	for _, n := range l.nodes {
		n.conf = filepath.Join(l.dir, "bgp-"+n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(lab.BagpipeConf(n.addr, lab.RRAddr, "linux")), 0o644); err != nil {
			return err
		}
		if err := l.start("bagpipe-bgp-"+n.name, n.ns, l.exe("bagpipe-bgp"), "--config-file", n.conf); err != nil {
			return err
		}
		if err := l.start("bagpipe-agent-"+n.name, n.ns, l.exe("bagpipe-agent"), "--host", n.ns,
			"--controller", ctlURL(), "--bagpipe-bgp", "http://127.0.0.1:"+strconv.Itoa(lab.APIPort), "--ping-interval", "2s"); err != nil {
			return err
		}
		l.say("Node %s: namespace %s (host %s), %s: bagpipe-bgp (linux E-VPN driver, REST API 127.0.0.1:%d in the namespace) and bagpipe-agent",
			n.name, n.ns, n.ns, n.addr, lab.APIPort)
	}
	for _, n := range l.nodes {
		if !l.wait(ctx, 60*time.Second, func() bool {
			var v any
			return n.getJSON("/looking-glass/summary/BGP_established_peers", &v) == nil && v == 1.0
		}) {
			return fmt.Errorf("node %s did not establish its BGP session; see %s", n.name, filepath.Join(l.dir, "bagpipe-bgp-"+n.name+".log"))
		}
	}
	l.say("All nodes have an established BGP session with the route reflector.\n")

	for _, net := range []string{"net1", "net2"} {
		out, err := l.cli(l.ctlNS, "--json", "network", "create", net)
		if err != nil {
			return err
		}
		var created struct{ ID string }
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
			return fmt.Errorf("reading the id of network %s from the CLI's JSON %q: %v", net, out, err)
		}
		l.netIDs[net] = created.ID
		if _, err := l.cli(l.ctlNS, "subnet", "create", "--network", net, "--cidr", subnet, "--name", net+"-subnet"); err != nil {
			return err
		}
		l.say("Network %s (id %s), subnet %s:\n  ip netns exec %s bagpipe network create %s\n  ip netns exec %s bagpipe subnet create --network %s --cidr %s",
			net, created.ID, subnet, l.ctlNS, net, l.ctlNS, net, subnet)
	}
	last := l.nodes[len(l.nodes)-1]
	if last == l.nodes[1] { // two nodes: net2 spans A and B too
		last = l.nodes[0]
	}
	l.vms = []*vm{
		l.newVM("vm1", l.nodes[0], "net1", "10.10.0.11"),
		l.newVM("vm2", l.nodes[1], "net1", "10.10.0.12"),
		l.newVM("vm3", l.nodes[1], "net2", "10.10.0.13"),
		l.newVM("vm4", last, "net2", "10.10.0.14"),
	}
	for _, v := range l.vms {
		args := []string{"port", "create", "--network", v.network, "--name", v.name, "--ip", v.ip.String(), "--host", v.node.ns, "--netns", v.ns}
		if _, err := l.cli(v.node.ns, append([]string{"--json"}, args...)...); err != nil {
			return fmt.Errorf("creating the port of %s: %w", v.name, err)
		}
		l.say("VM %s (namespace %s, %s) on node %s in network %s:\n  ip netns exec %s bagpipe --controller %s %s",
			v.name, v.ns, v.ip, v.node.name, v.network, v.node.ns, ctlURL(), strings.Join(args, " "))
	}
	return nil
}

func (l *demoLab) newVM(name string, n *node, network, ip string) *vm {
	return &vm{name: name, ns: prefix + name, network: network, ip: netip.MustParseAddr(ip), node: n}
}

func (l *demoLab) wait(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// portStatuses reads the status of every port, by name, from the
// controller.
func (l *demoLab) portStatuses() (map[string]string, error) {
	resp, err := l.ctl.Get(ctlURL() + "/v2.0/ports?fields=name&fields=status&fields=id")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Ports []struct{ ID, Name, Status string }
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing ports: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("listing ports: %w", err)
	}
	out := map[string]string{}
	for _, p := range body.Ports {
		out[p.Name] = p.Status
	}
	return out, nil
}

// runChecks waits for every port to be ACTIVE (its agent attached it to
// bagpipe-bgp), then pings between the VMs: every pair in one network
// must answer (after a warm-up: the first packets wait for ARP and
// flooding), no pair across the two networks, although they share a
// subnet.
func (l *demoLab) runChecks(ctx context.Context) bool {
	l.say("\nChecks:")
	ok := true
	report := func(pass bool, format string, a ...any) {
		if ctx.Err() != nil {
			return // interrupted: the check did not run to its end
		}
		mark := "PASS"
		if !pass {
			mark, ok = "FAIL", false
		}
		l.say("  [%s] %s", mark, fmt.Sprintf(format, a...))
	}
	for _, v := range l.vms {
		var status string
		active := l.wait(ctx, 60*time.Second, func() bool {
			st, err := l.portStatuses()
			status = st[v.name]
			return err == nil && status == "ACTIVE"
		})
		report(active, "port %s is ACTIVE: attached by the agent of %s (status %s)", v.name, v.node.ns, status)
	}
	for _, v := range l.vms {
		for _, w := range l.vms {
			if v == w || v.network != w.network || ctx.Err() != nil {
				continue
			}
			got := l.wait(ctx, 60*time.Second, func() bool { n, _ := lab.Ping(v.ns, w.ip, 1, 1); return n == 1 })
			if got {
				n, _ := lab.Ping(v.ns, w.ip, 3, 2)
				got = n == 3
			}
			report(got, "%s (node %s) pings %s (node %s), both in network %s", v.name, v.node.name, w.name, w.node.name, v.network)
		}
	}
	for _, v := range l.vms {
		for _, w := range l.vms {
			if v.network == w.network || ctx.Err() != nil {
				continue
			}
			n, _ := lab.Ping(v.ns, w.ip, 2, 1)
			report(n == 0, "%s (%s) cannot reach %s (%s, node %s): other network, same subnet", v.name, v.network, w.name, w.network, w.node.name)
		}
	}
	if ctx.Err() != nil {
		l.say("\nInterrupted: the checks did not all run.")
		return false
	}
	if ok {
		l.say("\nAll checks passed.")
	} else {
		l.say("\nSome checks FAILED; logs are in %s", l.dir)
	}
	return ok
}

func (l *demoLab) printNext() {
	a, v1, v2 := l.nodes[0], l.vms[0], l.vms[1]
	cli := "ip netns exec " + l.ctlNS + " bagpipe"
	l.say("\nWhat to look at next (as root, with the demo's programs first in PATH and the controller's URL set):")
	l.say("  export PATH=%s:$PATH BAGPIPE_CONTROLLER=%s", l.bin, ctlURL())
	l.say("  controller: %s in namespace %s, reachable from the node namespaces (bagpipe --controller URL)", ctlURL(), l.ctlNS)
	l.say("  %s network list", cli)
	l.say("  %s port list", cli)
	l.say("  %s port show %s", cli, v1.name)
	l.say("  ip netns exec %s curl -s 127.0.0.1:%d/v1/hosts/%s/attachments   # what the agent of node %s applies",
		l.ctlNS, ctlPort, a.ns, a.name)
	l.say("  ip netns exec %s ping %s", v1.ns, v2.ip)
	l.say("  ip netns exec %s bagpipe-looking-glass summary", a.ns)
	l.say("  ip netns exec %s bagpipe-looking-glass vpns instances   # instances are evpn_<network id>", a.ns)
	l.say("  ip netns exec %s bagpipe-looking-glass vpns instances evpn_%s   # net1", a.ns, l.netIDs["net1"])
	l.say("  ip netns exec %s bagpipe-looking-glass vpns instances evpn_%s dataplane", a.ns, l.netIDs["net1"])
	l.say("  ip -n %s -d link show type vxlan; bridge -n %s fdb show | grep dst", a.ns, a.ns)
	if l.rr == "gobgpd" {
		l.say("  ip netns exec %srr gobgp global rib -a evpn      # the route reflector's view", prefix)
	}
	n := l.nodes[len(l.nodes)-1]
	l.say("  ip netns exec %s bagpipe port create --network net1 --name vm5 --host %s --netns %svm5   # a new VM",
		n.ns, n.ns, prefix)
	l.say("  ip netns exec %svm5 ping %s", prefix, v2.ip)
	l.say("  ip netns exec %s bagpipe port delete vm5 --netns %svm5", n.ns, prefix)
	l.say("  logs and configurations: %s (cli.log: every CLI command the demo ran)", l.dir)
}

// getJSON reads a looking glass path of the node through its namespace.
func (n *node) getJSON(path string, v any) error {
	resp, err := n.http.Get("http://127.0.0.1:" + strconv.Itoa(lab.APIPort) + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}
