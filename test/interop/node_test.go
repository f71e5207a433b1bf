// Package interop runs bagpipe-bgp processes against real BGP speakers on
// loopback: GoBGP's gobgpd and FRR's bgpd as route reflectors,
// bagpipe-fakerr, and two bagpipe-bgp peering directly (passive mode). The
// dataplane is the dummy driver; its state is read through the looking
// glass (vpns/instances/<id>/dataplane).
package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

const waitLong = 60 * time.Second

// node is one bagpipe-bgp process.
type node struct {
	name string
	addr netip.Addr
	api  string
	proc *testenv.Process
	conf string
	args []string
}

type nodeOpts struct {
	peers     []netip.Addr
	bgpPort   int
	passive   bool
	enableRTC *bool
}

func startNode(t *testing.T, name string, addr netip.Addr, o nodeOpts) *node {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	dir := t.TempDir()
	apiPort := testenv.FreePort(t)
	conf := testenv.WriteBagpipeConf(t, dir, testenv.BagpipeConf{
		LocalAddress: addr,
		Peers:        o.peers,
		BGPPort:      o.bgpPort,
		APIHost:      "127.0.0.1",
		APIPort:      apiPort,
		Passive:      o.passive,
		EnableRTC:    o.enableRTC,
		Extra:        map[string]map[string]string{"BGP": {"connect_retry": "1"}},
	})
	n := &node{name: name, addr: addr, api: fmt.Sprintf("http://127.0.0.1:%d", apiPort), conf: conf}
	n.args = []string{"--config-file", conf, "--log-level", "debug"}
	n.proc = testenv.StartProcess(t, filepath.Join(bin, "bagpipe-bgp"), n.args, nil)
	testenv.WaitFor(t, waitLong, name+" REST API up", func() (bool, error) {
		if n.proc.Exited() {
			return false, fmt.Errorf("bagpipe-bgp exited:\n%s", n.proc.Log())
		}
		_, err := n.get("/ping")
		return err == nil, err
	})
	return n
}

// restart starts the node again with the same configuration.
func (n *node) restart(t *testing.T) {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	n.proc = testenv.StartProcess(t, filepath.Join(bin, "bagpipe-bgp"), n.args, nil)
	testenv.WaitFor(t, waitLong, n.name+" REST API up again", func() (bool, error) {
		_, err := n.get("/ping")
		return err == nil, err
	})
}

func (n *node) get(path string) (any, error) {
	resp, err := http.Get(n.api + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("GET %s: %w: %s", path, err, b)
	}
	return v, nil
}

func (n *node) post(t *testing.T, path string, body map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(n.api+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: POST %s: %v", n.name, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: POST %s %s: %s: %s", n.name, path, b, resp.Status, out)
	}
}

// attach plugs an E-VPN endpoint (MAC, IP) with one RT.
func (n *node) attach(t *testing.T, vpnID, mac, ip, rt string) {
	t.Helper()
	n.post(t, "/attach_localport", map[string]any{
		"vpn_type": "evpn", "vpn_instance_id": vpnID, "mac_address": mac, "ip_address": ip,
		"local_port": "tap-" + mac[len(mac)-2:], "import_rt": rt, "export_rt": rt,
	})
}

func (n *node) detach(t *testing.T, vpnID, mac, ip string) {
	t.Helper()
	n.post(t, "/detach_localport", map[string]any{
		"vpn_type": "evpn", "vpn_instance_id": vpnID, "mac_address": mac, "ip_address": ip,
		"local_port": "tap-" + mac[len(mac)-2:],
	})
}

// dataplane returns the dummy dataplane state of an instance: fdb
// (MAC → "vtep/vni"), flood ("vtep/vni" list), neigh (IP → MAC).
type dpState struct {
	FDB   map[string]string
	Flood []string
	Neigh map[string]string
}

func (n *node) dataplane(vpnID string) (dpState, error) {
	v, err := n.get("/looking-glass/vpns/instances/" + vpnID + "/dataplane")
	if err != nil {
		return dpState{}, err
	}
	m, _ := v.(map[string]any)
	var s dpState
	s.FDB = map[string]string{}
	s.Neigh = map[string]string{}
	if f, ok := m["fdb"].(map[string]any); ok {
		for k, x := range f {
			s.FDB[k], _ = x.(string)
		}
	}
	if f, ok := m["flood"].([]any); ok {
		for _, x := range f {
			str, _ := x.(string)
			s.Flood = append(s.Flood, str)
		}
	}
	if f, ok := m["neigh"].(map[string]any); ok {
		for k, x := range f {
			s.Neigh[k], _ = x.(string)
		}
	}
	return s, nil
}

func (n *node) summaryInt(key string) int {
	v, err := n.get("/looking-glass/summary/" + key)
	if err != nil {
		return -1
	}
	f, _ := v.(float64)
	return int(f)
}

func (n *node) receivedRoutes() int {
	v, err := n.get("/looking-glass/summary/route_counts/received_routes_count")
	if err != nil {
		return -1
	}
	f, _ := v.(float64)
	return int(f)
}

// evpnRoutesFrom counts E-VPN routes in the node's engine whose next hop is nh.
func (n *node) evpnRoutesWithNextHop(nh netip.Addr) (int, error) {
	v, err := n.get("/looking-glass/bgp/routes")
	if err != nil {
		return 0, err
	}
	m, _ := v.(map[string]any)
	list, _ := m["l2vpn/evpn,*"].([]any)
	c := 0
	for _, r := range list {
		for _, d := range r.(map[string]any) {
			if d.(map[string]any)["next_hop"] == nh.String() {
				c++
			}
		}
	}
	return c, nil
}

func (n *node) waitPeers(t *testing.T, want int) {
	t.Helper()
	testenv.WaitFor(t, waitLong, fmt.Sprintf("%s: %d established BGP peer(s)", n.name, want), func() (bool, error) {
		if n.proc.Exited() {
			return false, fmt.Errorf("bagpipe-bgp exited:\n%s", n.proc.Log())
		}
		got := n.summaryInt("BGP_established_peers")
		return got == want, fmt.Errorf("established peers = %d", got)
	})
}

// waitDP waits until cond holds on the dataplane state of vpnID.
func (n *node) waitDP(t *testing.T, vpnID, what string, cond func(s dpState) bool) {
	t.Helper()
	testenv.WaitFor(t, waitLong, n.name+": "+what, func() (bool, error) {
		s, err := n.dataplane(vpnID)
		if err != nil {
			return false, err
		}
		return cond(s), fmt.Errorf("dataplane state: %+v", s)
	})
}

func fdbTo(mac string, vtep netip.Addr) func(dpState) bool {
	return func(s dpState) bool { return strings.HasPrefix(s.FDB[mac], vtep.String()+"/") }
}

func floodTo(vtep netip.Addr) func(dpState) bool {
	return func(s dpState) bool {
		for _, f := range s.Flood {
			if strings.HasPrefix(f, vtep.String()+"/") {
				return true
			}
		}
		return false
	}
}

func not(f func(dpState) bool) func(dpState) bool { return func(s dpState) bool { return !f(s) } }

func and(fs ...func(dpState) bool) func(dpState) bool {
	return func(s dpState) bool {
		for _, f := range fs {
			if !f(s) {
				return false
			}
		}
		return true
	}
}

var (
	addrRR = netip.MustParseAddr("127.0.0.1")
	addrA  = netip.MustParseAddr("127.0.0.2")
	addrB  = netip.MustParseAddr("127.0.0.3")
	addrC  = netip.MustParseAddr("127.0.0.4")
)

const (
	macA  = "02:00:00:00:00:0a"
	macA2 = "02:00:00:00:00:1a"
	macB  = "02:00:00:00:00:0b"
	macC  = "02:00:00:00:00:0c"
	rt1   = "64512:100"
	rt2   = "64512:200"
)

// exchange is the common scenario: A and B share an E-VPN (rt1), C is in
// another (rt2). rtcFiltering says whether the reflector honours RTC (C
// then receives none of A/B's routes at all); otherwise C receives them
// but imports none.
func exchange(t *testing.T, a, b, c *node, rtcFiltering bool) {
	a.attach(t, "net1", macA, "10.0.0.10", rt1)
	a.attach(t, "net1", macA2, "10.0.0.20", rt1)
	b.attach(t, "net1", macB, "10.0.0.11", rt1)
	c.attach(t, "net2", macC, "10.0.0.12", rt2)

	a.waitDP(t, "net1", "B's MAC and flood entry via B", and(fdbTo(macB, addrB), floodTo(addrB)))
	b.waitDP(t, "net1", "A's MACs and flood entry via A", and(fdbTo(macA, addrA), fdbTo(macA2, addrA), floodTo(addrA)))
	a.waitDP(t, "net1", "neighbour entry for B's IP", func(s dpState) bool { return s.Neigh["10.0.0.11"] == macB })

	// C must end up with none of A's and B's routes in its instance.
	testenv.WaitFor(t, waitLong, "C sees C's own instance", func() (bool, error) {
		_, err := c.dataplane("net2")
		return err == nil, err
	})
	if rtcFiltering {
		// With RTC, the reflector does not even send A/B's routes to C.
		// Give it the time it took A and B to converge, then check.
		time.Sleep(2 * time.Second)
		for _, nh := range []netip.Addr{addrA, addrB} {
			n, err := c.evpnRoutesWithNextHop(nh)
			if err != nil || n != 0 {
				t.Fatalf("C received %d E-VPN routes from %s despite RT Constraint (err %v)", n, nh, err)
			}
		}
	} else {
		testenv.WaitFor(t, waitLong, "C receives A's and B's routes (no RTC)", func() (bool, error) {
			n, err := c.evpnRoutesWithNextHop(addrA)
			return n >= 3, err
		})
	}
	s, err := c.dataplane("net2")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.FDB) != 0 || len(s.Flood) != 0 {
		t.Fatalf("C imported routes of another E-VPN: %+v", s)
	}
	// A and B must not see C either.
	sa, _ := a.dataplane("net1")
	if _, ok := sa.FDB[macC]; ok || floodTo(addrC)(sa) {
		t.Fatalf("A imported C's routes: %+v", sa)
	}

	// Detaching one endpoint on A withdraws exactly that MAC on B.
	a.detach(t, "net1", macA2, "10.0.0.20")
	b.waitDP(t, "net1", "A's second MAC gone, first kept", and(not(fdbTo(macA2, addrA)), fdbTo(macA, addrA), floodTo(addrA)))

	// Stopping B withdraws everything B advertised from A's instance.
	if err := b.proc.Stop(); err != nil {
		t.Logf("stopping B: %v", err)
	}
	a.waitDP(t, "net1", "B's MAC and flood entry gone after B stopped", and(not(fdbTo(macB, addrB)), not(floodTo(addrB))))
	sa, _ = a.dataplane("net1")
	if _, ok := sa.Neigh["10.0.0.11"]; ok {
		t.Fatalf("A kept B's neighbour entry after B stopped: %+v", sa)
	}
}
