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

// node is one bagpipe-bgp compute node of the lab, in its own namespace.
type node struct {
	name string
	ns   string
	addr netip.Addr
	conf string
	http *http.Client
}

// vm is a fake VM: a namespace made by bagpipe-rest-attach --port netns.
type vm struct {
	lab.VM
	name string
	node *node
}

type demoLab struct {
	dir   string
	bin   string
	out   io.Writer
	nodes []*node
	vms   []*vm
	rr    string // "gobgpd" or "bagpipe-fakerr"
	procs []*exec.Cmd
}

func (l *demoLab) say(format string, a ...any) { fmt.Fprintf(l.out, format+"\n", a...) }

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
// deletes every namespace of the demo (the VMs' too).
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
}

// up builds the underlay, starts the route reflector and the nodes, and
// attaches the VMs.
func (l *demoLab) up(ctx context.Context) bool {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		l.say("cannot create %s: %v", l.dir, err)
		return false
	}
	u, err := lab.NewUnderlay(prefix)
	if err != nil {
		l.say("%v", err)
		return false
	}
	rrNS, err := u.AddMachine("rr", lab.RRAddr)
	if err != nil {
		l.say("%v", err)
		return false
	}
	names := []string{"A", "B", "C"}
	gobgpd, lookErr := exec.LookPath("gobgpd")
	if lookErr != nil {
		names = names[:2] // fakerr joins exactly two speakers
	}
	var addrs []netip.Addr
	for i, name := range names {
		n := &node{name: name, addr: lab.NodeAddr(i + 1)}
		if n.ns, err = u.AddMachine(name, n.addr); err != nil {
			l.say("%v", err)
			return false
		}
		n.http = lab.HTTPClient(n.ns, 10*time.Second)
		l.nodes = append(l.nodes, n)
		addrs = append(addrs, n.addr)
	}
	l.say("Underlay: switch namespace %s (bridge %s), 10.201.0.0/24", u.Switch, lab.SwitchBridge)
	if lookErr == nil {
		l.rr = "gobgpd"
		conf := filepath.Join(l.dir, "gobgpd.toml")
		if err := os.WriteFile(conf, []byte(lab.GoBGPConf(lab.RRAddr, addrs)), 0o644); err != nil {
			l.say("%v", err)
			return false
		}
		err = l.start("gobgpd", rrNS, gobgpd, lab.GoBGPArgs(conf)...)
	} else {
		l.rr = "bagpipe-fakerr"
		err = l.start("fakerr", rrNS, filepath.Join(l.bin, "bagpipe-fakerr"), "--host", lab.RRAddr.String(), "--port", "179")
	}
	if err != nil {
		l.say("%v", err)
		return false
	}
	l.say("Route reflector: %s in namespace %s, %s:179", l.rr, rrNS, lab.RRAddr)
	for _, n := range l.nodes {
		n.conf = filepath.Join(l.dir, "bgp-"+n.name+".conf")
		if err := os.WriteFile(n.conf, []byte(lab.BagpipeConf(n.addr, lab.RRAddr, "linux")), 0o644); err != nil {
			l.say("%v", err)
			return false
		}
		if err := l.start("bagpipe-bgp-"+n.name, n.ns, filepath.Join(l.bin, "bagpipe-bgp"), "--config-file", n.conf); err != nil {
			l.say("%v", err)
			return false
		}
		l.say("Node %s: namespace %s, bagpipe-bgp on %s (linux E-VPN driver), REST API 127.0.0.1:%d in the namespace, log %s",
			n.name, n.ns, n.addr, lab.APIPort, filepath.Join(l.dir, "bagpipe-bgp-"+n.name+".log"))
	}
	for _, n := range l.nodes {
		if !l.wait(ctx, 60*time.Second, func() bool {
			var v any
			return n.getJSON("/looking-glass/summary/BGP_established_peers", &v) == nil && v == 1.0
		}) {
			l.say("node %s did not establish its BGP session; see its log", n.name)
			return false
		}
	}
	l.say("All nodes have an established BGP session with the route reflector.\n")
	last := l.nodes[len(l.nodes)-1]
	l.vms = []*vm{
		l.newVM("vm1", l.nodes[0], "net1", "64512:100", "10.10.0.1/24"),
		l.newVM("vm2", l.nodes[1], "net1", "64512:100", "10.10.0.2/24"),
		l.newVM("vm3", l.nodes[1], "net2", "64512:200", "10.10.0.3/24"),
		l.newVM("vm4", last, "net2", "64512:200", "10.10.0.4/24"),
	}
	if last == l.nodes[1] { // two nodes: net2 spans A and B too
		l.vms[3].node, l.vms[3].Node, l.vms[3].ConfigFile = l.nodes[0], l.nodes[0].ns, l.nodes[0].conf
	}
	restAttach := filepath.Join(l.bin, "bagpipe-rest-attach")
	for _, v := range l.vms {
		if out, err := v.RestAttach(restAttach, true); err != nil {
			l.say("attaching %s: %v", v.name, err)
			return false
		} else if err := os.WriteFile(filepath.Join(l.dir, "rest-attach-"+v.name+".log"), []byte(out), 0o644); err != nil {
			l.say("%v", err)
		}
		l.say("VM %s (namespace %s, %s) on node %s in E-VPN %s (route target %s):\n  ip netns exec %s bagpipe-rest-attach %s",
			v.name, v.NS, v.IP, v.node.name, v.Network, v.RT, v.node.ns, strings.Join(v.RestAttachArgs(true), " "))
	}
	return true
}

func (l *demoLab) newVM(name string, n *node, network, rt, ip string) *vm {
	return &vm{name: name, node: n, VM: lab.VM{Node: n.ns, NS: prefix + name, Network: network, RT: rt,
		IP: netip.MustParsePrefix(ip), ConfigFile: n.conf}}
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

// runChecks pings between the VMs: every pair in one E-VPN must answer
// (after a warm-up: the first packets wait for ARP and flooding), no pair
// across the two E-VPNs, although they share a subnet.
func (l *demoLab) runChecks(ctx context.Context) bool {
	l.say("\nChecks:")
	ok := true
	report := func(pass bool, format string, a ...any) {
		mark := "PASS"
		if !pass {
			mark, ok = "FAIL", false
		}
		l.say("  [%s] %s", mark, fmt.Sprintf(format, a...))
	}
	for _, v := range l.vms {
		for _, w := range l.vms {
			if v == w || v.Network != w.Network {
				continue
			}
			got := l.wait(ctx, 60*time.Second, func() bool { n, _ := lab.Ping(v.NS, w.IP.Addr(), 1, 1); return n == 1 })
			if got {
				n, _ := lab.Ping(v.NS, w.IP.Addr(), 3, 2)
				got = n == 3
			}
			report(got, "%s (node %s) pings %s (node %s), both in E-VPN %s", v.name, v.node.name, w.name, w.node.name, v.Network)
		}
	}
	for _, v := range l.vms {
		for _, w := range l.vms {
			if v.Network == w.Network {
				continue
			}
			n, _ := lab.Ping(v.NS, w.IP.Addr(), 2, 1)
			report(n == 0, "%s (%s) cannot reach %s (%s, node %s): other E-VPN, same subnet", v.name, v.Network, w.name, w.Network, w.node.name)
		}
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
	l.say("\nWhat to look at next (as root):")
	l.say("  ip netns exec %s ping %s", v1.NS, v2.IP.Addr())
	l.say("  ip netns exec %s %s vpns instances net1 dataplane", a.ns, filepath.Join(l.bin, "bagpipe-looking-glass"))
	l.say("  ip netns exec %s curl -s 127.0.0.1:%d/looking-glass/vpns/instances/net1/best_routes", a.ns, lab.APIPort)
	l.say("  ip -n %s -d link show type vxlan; bridge -n %s fdb show | grep dst", a.ns, a.ns)
	if l.rr == "gobgpd" {
		l.say("  ip netns exec %srr gobgp global rib -a evpn      # the route reflector's view", prefix)
	}
	l.say("  logs and configurations: %s", l.dir)
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
