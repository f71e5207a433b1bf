package interop

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// TestGoBGPRouteReflector: three bagpipe-bgp behind a real gobgpd route
// reflector with RT Constraint. A and B share an E-VPN, C is in another.
func TestGoBGPRouteReflector(t *testing.T) {
	port := testenv.FreePort(t)
	rr := testenv.StartGoBGP(t, testenv.GoBGPConfig{
		RouterID: addrRR, ListenAddr: addrRR, ListenPort: port,
		Clients: []netip.Addr{addrA, addrB, addrC},
	})
	// RTC must be negotiated with gobgpd.
	a, b, c := startClients(t, rr, "gobgpd", port, true)
	exchange(t, a, b, c, true)

	// gobgpd's own view: it holds A's type-2 route with our RT and VXLAN encap.
	routes, err := rr.AdjIn(addrA, "l2vpn-evpn")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range routes {
		if r.NextHop == addrA {
			found = true
		}
	}
	if !found {
		t.Fatalf("gobgpd has no E-VPN route from A in its Adj-RIB-In: %+v", routes)
	}
}

// TestFRRRouteReflector: the same through FRR's bgpd, which has no RT
// Constraint: C receives A's and B's routes but must import none.
func TestFRRRouteReflector(t *testing.T) {
	port := testenv.FreePort(t)
	rr := testenv.StartFRR(t, testenv.FRRConfig{
		RouterID: addrRR, ListenAddr: addrRR, ListenPort: port,
		Clients: []netip.Addr{addrA, addrB, addrC},
	})
	// FRR lacks RFC 4684: RTC must not be active.
	a, b, c := startClients(t, rr, "FRR", port, false)
	exchange(t, a, b, c, false)
}

// reflector is a real route reflector daemon (testenv.GoBGP, testenv.FRR).
type reflector interface {
	WaitEstablished(t testing.TB, addr netip.Addr, timeout time.Duration)
}

// startClients starts nodes A, B and C as clients of rr (called name in
// messages), listening on addrRR:port, waits until every session is up on
// both sides, and checks that RT Constraint (RFC 4684) is active on each
// node's session exactly when rtc is true.
func startClients(t *testing.T, rr reflector, name string, port int, rtc bool) (a, b, c *node) {
	t.Helper()
	opts := nodeOpts{peers: []netip.Addr{addrRR}, bgpPort: port}
	a = startNode(t, "A", addrA, opts)
	b = startNode(t, "B", addrB, opts)
	c = startNode(t, "C", addrC, opts)
	for _, x := range []netip.Addr{addrA, addrB, addrC} {
		rr.WaitEstablished(t, x, waitLong)
	}
	for _, n := range []*node{a, b, c} {
		n.waitPeers(t, 1)
		v, err := n.get("/looking-glass/bgp/peers/" + addrRR.String() + "/rtc/active")
		if err != nil || v != rtc {
			t.Fatalf("%s: RTC active is %v (err %v) on the session with %s, want %v", n.name, v, err, name, rtc)
		}
	}
	return a, b, c
}

// startFakeRR runs bagpipe-fakerr on addrRR:port.
func startFakeRR(t *testing.T) int {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	port := testenv.FreePort(t)
	p := testenv.StartProcess(t, filepath.Join(bin, "bagpipe-fakerr"),
		[]string{"--host", addrRR.String(), "--port", strconv.Itoa(port)}, nil)
	testenv.WaitFor(t, waitLong, "bagpipe-fakerr listening", func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("bagpipe-fakerr exited:\n%s", p.Log())
		}
		c, err := net.Dial("tcp", net.JoinHostPort(addrRR.String(), strconv.Itoa(port)))
		if err == nil {
			c.Close()
		}
		return err == nil, err
	})
	return port
}

// TestFakeRR: two bagpipe-bgp joined by bagpipe-fakerr (upstream's lab
// setup for two nodes) exchange E-VPN routes; a restart of one side
// re-establishes and routes come back.
func TestFakeRR(t *testing.T) {
	port := startFakeRR(t)
	opts := nodeOpts{peers: []netip.Addr{addrRR}, bgpPort: port}
	a := startNode(t, "A", addrA, opts)
	b := startNode(t, "B", addrB, opts)
	a.waitPeers(t, 1)
	b.waitPeers(t, 1)
	twoNodeExchange(t, a, b, addrA, addrB)
}

// TestPassiveDirect: two bagpipe-bgp peer directly, each accepting
// incoming connections (passive) and connecting (active): the connection
// collision is resolved (RFC 4271 §6.8) and routes flow without any
// reflector.
func TestPassiveDirect(t *testing.T) {
	port := testenv.FreePort(t)
	a := startNode(t, "A", addrA, nodeOpts{peers: []netip.Addr{addrB}, bgpPort: port, passive: true})
	b := startNode(t, "B", addrB, nodeOpts{peers: []netip.Addr{addrA}, bgpPort: port, passive: true})
	a.waitPeers(t, 1)
	b.waitPeers(t, 1)
	twoNodeExchange(t, a, b, addrA, addrB)
}

func twoNodeExchange(t *testing.T, a, b *node, addrA, addrB netip.Addr) {
	a.attach(t, "net1", macA, "10.0.0.10", rt1)
	b.attach(t, "net1", macB, "10.0.0.11", rt1)
	a.waitDP(t, "net1", "B's MAC and flood entry", and(fdbTo(macB, addrB), floodTo(addrB)))
	b.waitDP(t, "net1", "A's MAC and flood entry", and(fdbTo(macA, addrA), floodTo(addrA)))

	// Detach on B: A loses B's MAC; B's instance is gone, so its flood
	// entry (type 3) goes too.
	b.detach(t, "net1", macB, "10.0.0.11")
	a.waitDP(t, "net1", "B's routes withdrawn after detach", and(not(fdbTo(macB, addrB)), not(floodTo(addrB))))

	// Re-attach, then kill B hard: the session drops and A withdraws.
	b.attach(t, "net1", macB, "10.0.0.11", rt1)
	a.waitDP(t, "net1", "B's MAC back after re-attach", fdbTo(macB, addrB))
	b.proc.Kill()
	a.waitDP(t, "net1", "B's routes withdrawn after B was killed", and(not(fdbTo(macB, addrB)), not(floodTo(addrB))))

	// Restart B and replay its attachment (as the agent does after /ping
	// changes): everything comes back.
	b.restart(t)
	b.waitPeers(t, 1)
	b.attach(t, "net1", macB, "10.0.0.11", rt1)
	a.waitDP(t, "net1", "B's MAC back after restart", and(fdbTo(macB, addrB), floodTo(addrB)))
	b.waitDP(t, "net1", "A's MAC learned again by the restarted B", and(fdbTo(macA, addrA), floodTo(addrA)))
}
