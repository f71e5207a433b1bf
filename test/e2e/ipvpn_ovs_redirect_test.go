package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// Route targets of the traffic redirection test, as upstream's
// chain-traffic-redirect sample (reference §10.3) names them.
const (
	rtNet1    = "64512:1"
	rtNet2    = "64512:2"
	rtHop12   = "64512:120" // redirect RT net1 → service VM
	rtHop21   = "64512:210" // redirect RT net2 → service VM
	rtRedir12 = "64512:300" // readvertise "to" RT of x1
	rtRedir21 = "64512:400" // readvertise "to" RT of x2
)

// TestIPVPNTrafficRedirect is upstream's chain-traffic-redirect sample
// with one service VM (reference §5.6, §5.7): vm1 (net1, node A)
// and vm2 (net2, node B) do not import each other's routes; the service
// VM on node C has port x1 in VRF x1 (imports net1, readvertises net2's
// routes to 64512:300 and attracts TCP destination port 80 with redirect
// RT 64512:120, which net1 imports) and port x2 in VRF x2 (the mirror:
// net2 imports 64512:210, TCP source port 80); the service VM routes x1
// → x2 and x2 → x1. So TCP to vm2's port 80 works, through the service
// VM (its forwarded packet counter grows), while ping and TCP to port 81
// get nowhere.
//
// It runs on three ovs nodes (classifier flows in the VRF table) and on
// three linux nodes (classifier rules "iif <port> ... lookup <redirect
// VRF table>"). Both deliver the redirected packets, which carry the
// service VM port's label (the redirect VRF's default route), to that
// port by label, whatever their destination: x1's VRF does not route
// vm2's address.
func TestIPVPNTrafficRedirect(t *testing.T) {
	for _, driver := range []string{"ovs", "linux"} {
		t.Run(driver, func(t *testing.T) { testIPVPNTrafficRedirect(t, driver) })
	}
}

// testIPVPNTrafficRedirect is TestIPVPNTrafficRedirect on nodes running
// the IP VPN driver driver.
func testIPVPNTrafficRedirect(t *testing.T, driver string) {
	l := newIPVPNLab(t, ipvpnNodeSpec{"A", driver, ""}, ipvpnNodeSpec{"B", driver, ""}, ipvpnNodeSpec{"C", driver, ""})
	a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
	vm1 := l.vm(a, "vm1", "net1", rtNet1, "11.0.0.1/24", "02:00:0b:00:00:01")
	vm2 := l.vm(b, "vm2", "net2", rtNet2, "12.0.0.1/24", "02:00:0c:00:00:01")
	x1 := l.vm(c, "svm", "x1", "", "100.0.0.1/24", "02:00:64:00:00:01")
	x1.hostIf, x1.nsIf = "to-svm-x1", "x1"
	x2 := l.vm(c, "svm", "x2", "", "200.0.0.1/24", "02:00:c8:00:00:01")
	x2.hostIf, x2.nsIf = "to-svm-x2", "x2"

	l.restAttach(vm1, true, "--import-rt", rtHop12)
	l.restAttach(x1, true, "--import-rt", rtNet1, "--readv-from-rt", rtNet2, "--readv-to-rt", rtRedir12,
		"--redirect-rts", rtHop12, "--destination-port", "80")
	l.restAttach(x2, true, "--import-rt", rtNet2, "--readv-from-rt", rtNet1, "--readv-to-rt", rtRedir21,
		"--redirect-rts", rtHop21, "--source-port", "80")
	l.restAttach(vm2, true, "--import-rt", rtHop21)
	crossRouting(t, x1.NS, "x1", "100.0.0.254", "x2", "200.0.0.254")

	dst := vm2.IP.Addr()
	for _, port := range []uint16{80, 81} {
		ln := listenIn(t, vm2.NS, netip.AddrPortFrom(dst, port))
		go serveHello(ln)
	}
	fwd0 := forwarded(t, x1.NS)
	testenv.WaitFor(t, stateTimeout, "a TCP connection from vm1 to vm2's port 80 through the service VM", func() (bool, error) {
		err := tcpHello(vm1.NS, netip.AddrPortFrom(dst, 80))
		return err == nil, err
	})
	for i := 0; i < 3; i++ {
		if err := tcpHello(vm1.NS, netip.AddrPortFrom(dst, 80)); err != nil {
			t.Fatalf("after the first connection to port 80: %v", err)
		}
	}
	// Four connections: at least SYN, ACK, FIN, ACK each way through it.
	fwd := forwarded(t, x1.NS) - fwd0
	t.Logf("the service VM forwarded %d packets", fwd)
	if fwd < 4*6 {
		t.Errorf("the service VM forwarded %d packets during four TCP connections to port 80, want at least 24", fwd)
	}
	if err := tcpHello(vm1.NS, netip.AddrPortFrom(dst, 81)); err == nil {
		t.Errorf("TCP from vm1 to vm2's port 81 worked: only port 80 is redirected, nothing else routes net1 to net2")
	}
	l.noPing(vm1.VM, dst, "ping is not redirected and net1 does not import net2")
}

// crossRouting sets the service VM namespace ns up as upstream's
// setup-cross-routing does: what comes in on ifA leaves by ifB towards
// gwB and the reverse, with forwarding on and reverse-path filtering off
// (the namespace's main table has no route back to the sources).
func crossRouting(t *testing.T, ns, ifA, gwA, ifB, gwB string) {
	t.Helper()
	for _, c := range [][]string{
		{"ip", "-n", ns, "route", "replace", "table", "11", "default", "via", gwA, "dev", ifA},
		{"ip", "-n", ns, "route", "replace", "table", "12", "default", "via", gwB, "dev", ifB},
		{"ip", "-n", ns, "rule", "add", "iif", ifA, "table", "12", "prio", "1000"},
		{"ip", "-n", ns, "rule", "add", "iif", ifB, "table", "11", "prio", "1000"},
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
			"net.ipv4.conf." + ifA + ".rp_filter=0", "net.ipv4.conf." + ifB + ".rp_filter=0"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("e2e: %s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
}

// forwarded returns the IP ForwDatagrams counter of namespace ns
// (/proc/net/snmp).
func forwarded(t *testing.T, ns string) int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("e2e: reading /proc/net/snmp in %s: %v", ns, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "ForwDatagrams" && i < len(f) {
				v, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("e2e: ForwDatagrams %q in %s: %v", f[i], ns, err)
				}
				return v
			}
		}
	}
	t.Fatalf("e2e: no Ip ForwDatagrams in /proc/net/snmp of %s:\n%s", ns, out)
	return 0
}

// helloMsg is what serveHello writes to each connection.
const helloMsg = "hello from the other side"

// serveHello writes helloMsg to every connection ln accepts, until ln is
// closed.
func serveHello(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, helloMsg)
		c.Close()
	}
}

// tcpHello connects from namespace ns to dst (3 s timeout) and requires
// helloMsg back.
func tcpHello(ns string, dst netip.AddrPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := lab.DialContextIn(ns)(ctx, "tcp", dst.String())
	if err != nil {
		return fmt.Errorf("connecting from %s to %s: %w", ns, dst, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != helloMsg {
		return fmt.Errorf("reading from %s in %s: got %q, %v", dst, ns, b, err)
	}
	return nil
}

// listenIn opens a TCP listener on addr inside namespace ns, closed at
// cleanup. The socket is created on a locked OS thread switched into the
// namespace and back.
func listenIn(t *testing.T, ns string, addr netip.AddrPort) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("e2e: opening namespace %s: %v", ns, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatalf("e2e: entering namespace %s: %v", ns, err)
	}
	ln, lerr := net.Listen("tcp", addr.String())
	if err := netns.Set(orig); err != nil {
		panic("e2e: cannot return to the original network namespace: " + err.Error())
	}
	if lerr != nil {
		t.Fatalf("e2e: listening on %s in %s: %v", addr, ns, lerr)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
