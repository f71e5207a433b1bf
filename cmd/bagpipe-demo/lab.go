package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// node is one bagpipe-bgp compute node of the lab.
type node struct {
	name    string
	addr    string
	apiPort int
	vpn     string // the E-VPN its VM port is in
	rt      string
	mac, ip string
}

func (n *node) api() string { return "http://127.0.0.1:" + strconv.Itoa(n.apiPort) }

type lab struct {
	dir   string
	bin   string
	out   io.Writer
	nodes []*node
	rr    string // "gobgpd" or "bagpipe-fakerr"
	procs []*exec.Cmd
}

const bgpPort = 17900

func (l *lab) say(format string, a ...any) { fmt.Fprintf(l.out, format+"\n", a...) }

// start runs a process in the background with its output in DIR/name.log
// and its pid in DIR/name.pid.
func (l *lab) start(name, path string, args ...string) error {
	logf, err := os.Create(filepath.Join(l.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", path, err)
	}
	l.procs = append(l.procs, cmd)
	return os.WriteFile(filepath.Join(l.dir, name+".pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// down kills every process whose pid file is in the directory.
func (l *lab) down() {
	pids, _ := filepath.Glob(filepath.Join(l.dir, "*.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				syscall.Kill(pid, syscall.SIGTERM)
				for i := 0; i < 50 && syscall.Kill(pid, 0) == nil; i++ {
					time.Sleep(100 * time.Millisecond)
				}
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		os.Remove(p)
	}
	for _, c := range l.procs {
		c.Wait()
	}
	l.procs = nil
}

func (l *lab) up(ctx context.Context) bool {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		l.say("cannot create %s: %v", l.dir, err)
		return false
	}
	l.nodes = []*node{
		{name: "A", addr: "127.0.0.2", apiPort: 18082, vpn: "net1", rt: "64512:100", mac: "02:00:00:00:00:0a", ip: "10.1.0.10"},
		{name: "B", addr: "127.0.0.3", apiPort: 18083, vpn: "net1", rt: "64512:100", mac: "02:00:00:00:00:0b", ip: "10.1.0.11"},
		{name: "C", addr: "127.0.0.4", apiPort: 18084, vpn: "net2", rt: "64512:200", mac: "02:00:00:00:00:0c", ip: "10.1.0.12"},
	}
	if gobgpd, err := exec.LookPath("gobgpd"); err == nil {
		l.rr = "gobgpd"
		conf := filepath.Join(l.dir, "gobgpd.toml")
		var b strings.Builder
		fmt.Fprintf(&b, "[global.config]\n  as = 64512\n  router-id = \"127.0.0.1\"\n  port = %d\n  local-address-list = [\"127.0.0.1\"]\n", bgpPort)
		for _, n := range l.nodes {
			fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = 64512\n", n.addr)
			fmt.Fprintf(&b, "  [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"127.0.0.1\"\n")
			fmt.Fprintf(&b, "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"127.0.0.1\"\n")
			for _, f := range []string{"l2vpn-evpn", "l3vpn-ipv4-unicast", "rtc"} {
				fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n", f)
			}
		}
		if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
			l.say("%v", err)
			return false
		}
		if err := l.start("gobgpd", gobgpd, "-f", conf, "-t", "toml", "--api-hosts", "127.0.0.1:17901", "-p", "--pprof-disable"); err != nil {
			l.say("%v", err)
			return false
		}
	} else {
		l.rr = "bagpipe-fakerr"
		l.nodes = l.nodes[:2] // fakerr joins exactly two speakers
		l.nodes[1].vpn, l.nodes[1].rt = "net1", "64512:100"
		if err := l.start("fakerr", filepath.Join(l.bin, "bagpipe-fakerr"), "--host", "127.0.0.1", "--port", strconv.Itoa(bgpPort)); err != nil {
			l.say("%v", err)
			return false
		}
	}
	l.say("Route reflector: %s on 127.0.0.1:%d", l.rr, bgpPort)
	for _, n := range l.nodes {
		conf := filepath.Join(l.dir, "bgp-"+n.name+".conf")
		text := fmt.Sprintf("[BGP]\nlocal_address = %s\npeers = 127.0.0.1\nmy_as = 64512\nbgp_port = %d\nconnect_retry = 1\n\n[API]\nhost = 127.0.0.1\nport = %d\n\n[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = dummy\n",
			n.addr, bgpPort, n.apiPort)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			l.say("%v", err)
			return false
		}
		if err := l.start("bagpipe-bgp-"+n.name, filepath.Join(l.bin, "bagpipe-bgp"), "--config-file", conf); err != nil {
			l.say("%v", err)
			return false
		}
		l.say("Node %s: bagpipe-bgp on %s, REST API %s (log %s)", n.name, n.addr, n.api(), filepath.Join(l.dir, "bagpipe-bgp-"+n.name+".log"))
	}
	for _, n := range l.nodes {
		if !l.wait(ctx, 30*time.Second, func() bool {
			v, err := getJSON(n.api() + "/looking-glass/summary/BGP_established_peers")
			return err == nil && v == 1.0
		}) {
			l.say("node %s did not establish its BGP session; see its log", n.name)
			return false
		}
	}
	l.say("All nodes have an established BGP session with the route reflector.\n")
	for _, n := range l.nodes {
		body := map[string]any{"vpn_type": "evpn", "vpn_instance_id": n.vpn, "mac_address": n.mac, "ip_address": n.ip,
			"local_port": "tap-vm-" + strings.ToLower(n.name), "import_rt": n.rt, "export_rt": n.rt}
		if err := postJSON(n.api()+"/attach_localport", body); err != nil {
			l.say("attach on node %s: %v", n.name, err)
			return false
		}
		l.say("Attached VM %s (%s) on node %s to E-VPN %s (route target %s)", n.mac, n.ip, n.name, n.vpn, n.rt)
	}
	return true
}

func (l *lab) wait(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// fdb returns the remote MACs an E-VPN instance of a node programmed
// (MAC → "vtep/vni"), read from the looking glass.
func fdb(n *node, vpn string) map[string]string {
	v, err := getJSON(n.api() + "/looking-glass/vpns/instances/" + vpn + "/dataplane/fdb")
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok && err == nil {
		for k, x := range m {
			out[k], _ = x.(string)
		}
	}
	return out
}

func (l *lab) runChecks(ctx context.Context) bool {
	l.say("\nChecks:")
	ok := true
	report := func(pass bool, format string, a ...any) {
		mark := "PASS"
		if !pass {
			mark, ok = "FAIL", false
		}
		l.say("  [%s] %s", mark, fmt.Sprintf(format, a...))
	}
	for _, n := range l.nodes {
		for _, m := range l.nodes {
			if m == n {
				continue
			}
			if m.vpn == n.vpn {
				got := l.wait(ctx, 20*time.Second, func() bool { return strings.HasPrefix(fdb(n, n.vpn)[m.mac], m.addr+"/") })
				report(got, "node %s learned VM %s of node %s (same E-VPN %s) with VTEP %s", n.name, m.mac, m.name, n.vpn, m.addr)
			}
		}
	}
	time.Sleep(time.Second)
	for _, n := range l.nodes {
		for _, m := range l.nodes {
			if m == n || m.vpn == n.vpn {
				continue
			}
			_, leaked := fdb(n, n.vpn)[m.mac]
			report(!leaked, "node %s did not learn VM %s of node %s (other E-VPN %s)", n.name, m.mac, m.name, m.vpn)
		}
	}
	if ok {
		l.say("\nAll checks passed.")
	} else {
		l.say("\nSome checks FAILED; logs are in %s", l.dir)
	}
	return ok
}

func (l *lab) printNext() {
	a := l.nodes[0]
	l.say("\nWhat to look at next:")
	l.say("  curl -s %s/looking-glass/summary", a.api())
	l.say("  curl -s %s/looking-glass/bgp/peers/127.0.0.1", a.api())
	l.say("  curl -s %s/looking-glass/vpns/instances/%s/best_routes", a.api(), a.vpn)
	l.say("  curl -s %s/looking-glass/vpns/instances/%s/dataplane", a.api(), a.vpn)
	if l.rr == "gobgpd" {
		l.say("  gobgp -p 17901 global rib -a evpn      # the route reflector's view")
	}
	l.say("  logs and configurations: %s", l.dir)
}

func getJSON(url string) (any, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var v any
	return v, json.Unmarshal(b, &v)
}

func postJSON(url string, body any) error {
	b, _ := json.Marshal(body)
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %s", resp.Status, out)
	}
	return nil
}
