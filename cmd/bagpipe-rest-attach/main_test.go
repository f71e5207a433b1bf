package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/cli"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// vmPort is what the VM side of a netns port looks like.
type vmPort struct {
	mac, addr, gateway string
	mtu                int
}

// readVM reads interface ifname of namespace vm with netlink.
func readVM(t *testing.T, vm, ifname string) vmPort {
	t.Helper()
	h, err := netns.GetFromName(vm)
	if err != nil {
		t.Fatalf("VM namespace %s is not visible from the test: %v", vm, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in namespace %s: %v", ifname, vm, err)
	}
	p := vmPort{mac: l.Attrs().HardwareAddr.String(), mtu: l.Attrs().MTU}
	addrs, _ := nh.AddrList(l, netlink.FAMILY_V4)
	if len(addrs) == 1 {
		p.addr = addrs[0].IPNet.String()
	}
	routes, _ := nh.RouteList(l, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			p.gateway = r.Gw.String()
		}
	}
	return p
}

// linkIn reports whether interface name exists in namespace ns ("" for
// the test's own).
func linkIn(t *testing.T, ns, name string) bool {
	t.Helper()
	if ns == "" {
		_, err := netlink.LinkByName(name)
		return err == nil
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	_, err = nh.LinkByName(name)
	return err == nil
}

func nsExists(name string) bool {
	h, err := netns.GetFromName(name)
	if err == nil {
		h.Close()
	}
	return err == nil
}

// checkNetnsAttachDetach attaches an E-VPN netns port with
// bagpipe-rest-attach against d, checks the VM namespace, the host side
// (in d's namespace) and the looking glass, then detaches and checks that
// the veth pair and the namespace are gone.
func checkNetnsAttachDetach(t *testing.T, d *daemon, vm, id string) {
	host := cli.HostIfName(vm)
	cleanupNetnsPort(t, vm, host)
	args := []string{"--network-type", "evpn", "--port", "netns", "--netns", vm, "--vpn-instance-id", id, "--ip", "10.77.0.5", "--rt", "64512:77"}
	out, status := d.attach(t, append([]string{"--attach"}, args...)...)
	if status != 0 || !strings.Contains(out, "response: 200 null") {
		t.Fatalf("attach: status %d:\n%s", status, out)
	}
	got := readVM(t, vm, "tovpn")
	want := vmPort{mac: got.mac, addr: "10.77.0.5/24", gateway: "10.77.0.254", mtu: 1420}
	if got != want || got.mac == "" {
		t.Errorf("VM port %+v, want %+v", got, want)
	}
	wantReq := `{"import_rt": ["64512:77"], "export_rt": ["64512:77"], "local_port": {"linuxif": "` + host + `"}, "vpn_instance_id": "` + id + `", "vpn_type": "evpn", "gateway_ip": "10.77.0.254", "mac_address": "` + got.mac + `", "ip_address": "10.77.0.5/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`
	if r := requestLine(t, out); r != wantReq {
		t.Errorf("request\n got: %s\nwant: %s", r, wantReq)
	}
	if !linkIn(t, d.node, host) {
		t.Errorf("host side %s is not in the daemon's namespace %q", host, d.node)
	}
	if d.node != "" && linkIn(t, "", host) {
		t.Errorf("host side %s landed in the test's namespace, not in %s", host, d.node)
	}
	if lg := d.lg(t, "vpns", "instances"); !strings.Contains(lg, "* "+id+" (...)") {
		t.Errorf("looking glass vpns instances lacks %s:\n%s", id, lg)
	}
	ports := d.lg(t, "vpns", "instances", id, "ports")
	for _, s := range []string{host + ": ", "mac_address: " + got.mac, "ip_address: 10.77.0.5"} {
		if !strings.Contains(ports, s) {
			t.Errorf("looking glass ports lacks %q:\n%s", s, ports)
		}
	}

	out, status = d.attach(t, append([]string{"--detach"}, args...)...)
	if status != 0 || !strings.Contains(out, "response: 200 null") || !strings.Contains(out, "Removed namespace "+vm) {
		t.Fatalf("detach: status %d:\n%s", status, out)
	}
	if linkIn(t, d.node, host) {
		t.Errorf("host side %s still exists after detach", host)
	}
	if nsExists(vm) {
		t.Errorf("VM namespace %s still exists after detach", vm)
	}
	if lg := d.lg(t, "vpns", "instances"); strings.Contains(lg, id) {
		t.Errorf("instance %s still in the looking glass after its last detach:\n%s", id, lg)
	}
}

// TestNetnsPortEVPN: --port netns against a real bagpipe-bgp.
func TestNetnsPortEVPN(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, "")
	checkNetnsAttachDetach(t, d, uniqueName("ratvm"), uniqueName("ratevpn"))
}

// TestNetnsPortInsideNodeNamespace: bagpipe-bgp and bagpipe-rest-attach
// both run under "ip netns exec NODE" (a private mount namespace): the VM
// namespace must persist after the tool exits and the veth's host side
// must be in NODE.
func TestNetnsPortInsideNodeNamespace(t *testing.T) {
	requireRoot(t)
	node := uniqueName("ratnode")
	addNamespace(t, node)
	d := startDaemon(t, node)
	checkNetnsAttachDetach(t, d, uniqueName("ratvmn"), uniqueName("ratnevpn"))
}

// TestOptionErrors: usage errors exit 2, API errors exit 1 with the
// code, reason and description.
func TestOptionErrors(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, "")
	out, status := d.attach(t, "--attach", "--network-type", "evpn", "--port", "tap0", "--ip", "10.0.0.1")
	if status != 2 || !strings.Contains(out, "Need to specify --mac") {
		t.Errorf("evpn without --mac: status %d:\n%s", status, out)
	}
	out, status = d.attach(t, "--detach", "--network-type", "evpn", "--port", "tap0", "--ip", "10.0.0.1", "--mac", "52:54:00:00:00:01", "--vpn-instance-id", uniqueName("nosuch"))
	if status != 1 || !strings.Contains(out, "could not be found") || !strings.Contains(out, "error 4") {
		t.Errorf("detach from an unknown instance: status %d:\n%s", status, out)
	}
}

// upstreamWrapper runs upstream's rest_attach.main() (Debian's
// python3-networking-bagpipe) with two things patched in the Python
// process only, nothing on disk: the configuration file it reads [API]
// port from (/etc/bagpipe-bgp/bgp.conf, which we must not create) and
// urllib's request body, which upstream passes as str (a TypeError on
// Python 3).
const upstreamWrapper = `
import sys, urllib.request
from oslo_config import cfg
conf = sys.argv[1]
orig_call = cfg.ConfigOpts.__call__
def call(self, *a, **kw):
    kw['default_config_files'] = [conf]
    return orig_call(self, *a, **kw)
cfg.ConfigOpts.__call__ = call
OrigRequest = urllib.request.Request
class Request(OrigRequest):
    def __init__(self, url, data=None, *a, **kw):
        if isinstance(data, str):
            data = data.encode()
        super().__init__(url, data, *a, **kw)
urllib.request.Request = Request
from networking_bagpipe.bagpipe_bgp.cli import rest_attach
sys.argv = ['bagpipe-rest-attach'] + sys.argv[2:]
sys.exit(rest_attach.main())
`

// runUpstream runs upstream's bagpipe-rest-attach against d.
func runUpstream(t *testing.T, d *daemon, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	const py = "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("%s is needed to run upstream's bagpipe-rest-attach (apt-get install python3-networking-bagpipe): %v", py, err)
	}
	wrapper := filepath.Join(t.TempDir(), "upstream_rest_attach.py")
	if err := os.WriteFile(wrapper, []byte(upstreamWrapper), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, append([]string{wrapper, d.conf}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("cannot run upstream's tool: %v", err)
	}
	if strings.Contains(e.String(), "ModuleNotFoundError") {
		t.Fatalf("upstream's tool is not installed (apt-get install python3-networking-bagpipe):\n%s", e.String())
	}
	return o.String(), e.String(), status
}

// TestUpstreamClient: upstream's own bagpipe-rest-attach works against
// our daemon, and sends the same request as ours for the same options.
func TestUpstreamClient(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, "")
	id := uniqueName("upevpn")
	args := []string{"--network-type", "evpn", "--port", "tapup0", "--mac", "52:54:00:aa:00:01", "--ip", "10.78.0.5", "--vpn-instance-id", id, "--rt", "64512:78", "--vni", "4242", "--local-pref", "150"}

	out, errOut, status := runUpstream(t, d, append([]string{"--attach"}, args...)...)
	if status != 0 || !strings.Contains(out, "response: 200 b'null'") {
		t.Fatalf("upstream attach: status %d:\n%s\n%s", status, out, errOut)
	}
	ours, ourStatus := d.attach(t, append([]string{"--attach"}, args...)...)
	if ourStatus != 0 {
		t.Fatalf("our attach (a refresh of the same endpoint): status %d:\n%s", ourStatus, ours)
	}
	if up, go_ := requestLine(t, out), requestLine(t, ours); up != go_ {
		t.Errorf("requests differ\nupstream: %s\n     ours: %s", up, go_)
	}
	ports := d.lg(t, "vpns", "instances", id, "ports")
	if !strings.Contains(ports, "tapup0: ") || !strings.Contains(ports, "52:54:00:aa:00:01") {
		t.Errorf("looking glass after upstream's attach:\n%s", ports)
	}
	out, errOut, status = runUpstream(t, d, append([]string{"--detach"}, args...)...)
	if status != 0 || !strings.Contains(out, "response: 200 b'null'") {
		t.Fatalf("upstream detach: status %d:\n%s\n%s", status, out, errOut)
	}
	if lg := d.lg(t, "vpns", "instances"); strings.Contains(lg, id) {
		t.Errorf("instance %s still present after upstream's detach:\n%s", id, lg)
	}

	// ipvpn: 200 once an IP VPN driver exists; until then a clean 4xx.
	ipArgs := []string{"--network-type", "ipvpn", "--port", "tapup1", "--ip", "10.79.0.5", "--vpn-instance-id", uniqueName("upipvpn")}
	out, errOut, status = runUpstream(t, d, append([]string{"--attach"}, ipArgs...)...)
	switch {
	case status == 0 && strings.Contains(out, "response: 200"):
		if out, errOut, status = runUpstream(t, d, append([]string{"--detach"}, ipArgs...)...); status != 0 {
			t.Errorf("upstream ipvpn detach: status %d:\n%s\n%s", status, out, errOut)
		}
	case status == 1 && strings.Contains(errOut, "error 4"):
		t.Logf("ipvpn attach refused cleanly: %s", strings.TrimSpace(errOut))
	default:
		t.Errorf("upstream ipvpn attach: status %d, want 200 or a 4xx:\n%s\n%s", status, out, errOut)
	}
}
