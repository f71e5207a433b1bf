package testenv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gobgpHint is how to get gobgpd and the gobgp CLI on Debian.
const gobgpHint = "apt-get install gobgpd"

// startTimeout bounds how long a daemon may take to answer its API after
// start. Generous: this is not a timed test.
const startTimeout = 60 * time.Second

// cliTimeout bounds one gobgp or vtysh invocation.
const cliTimeout = 30 * time.Second

// DefaultGoBGPFamilies are the AFI-SAFIs (GoBGP config names) a route
// reflector for bagpipe-bgp carries, as in upstream samples/gobgp.conf.
var DefaultGoBGPFamilies = []string{"l2vpn-evpn", "l3vpn-ipv4-unicast", "l3vpn-ipv4-flowspec", "rtc"}

// GoBGPConfig describes a gobgpd instance.
type GoBGPConfig struct {
	// RouterID is the BGP identifier and route reflector cluster ID.
	// Default 127.0.0.1.
	RouterID netip.Addr
	// AS is the local AS, also every neighbour's (iBGP). Default 64512.
	AS uint32
	// ListenAddr is the address gobgpd listens on and uses as session
	// source. Default RouterID.
	ListenAddr netip.Addr
	// ListenPort is the BGP port. Default: a free port.
	ListenPort int
	// Clients are route reflector clients; gobgpd waits for them to connect
	// (passive mode) to ListenAddr:ListenPort.
	Clients []netip.Addr
	// Families are GoBGP AFI-SAFI names for every neighbour. Default
	// DefaultGoBGPFamilies.
	Families []string
	// Peers are optional ordinary (non-client) iBGP neighbours that gobgpd
	// connects to actively, e.g. an FRR route reflector.
	Peers []Peer
}

// Peer is a BGP neighbour reached actively at Addr:Port.
type Peer struct {
	Addr netip.Addr
	Port int // default 179
}

// GoBGP is a running gobgpd.
type GoBGP struct {
	// Config is the configuration with defaults filled in.
	Config GoBGPConfig
	// APIPort is the gRPC port on 127.0.0.1 the gobgp CLI talks to.
	APIPort int
	// Dir holds the config file and log; removed at cleanup.
	Dir string
	// Proc is the gobgpd process.
	Proc *Process

	cli string // path of the gobgp CLI
}

// StartGoBGP writes a TOML config for c and runs
//
//	gobgpd -f <dir>/gobgpd.toml -t toml --api-hosts 127.0.0.1:<free port> -l debug -p --pprof-disable
//
// then waits until its API reports the configured AS and neighbours. The
// test fails if gobgpd or gobgp is missing ("apt-get install gobgpd"), or
// gobgpd does not come up.
func StartGoBGP(t testing.TB, c GoBGPConfig) *GoBGP {
	t.Helper()
	daemon := requireTool(t, "gobgpd", gobgpHint)
	cli := requireTool(t, "gobgp", gobgpHint)
	fillIdentity(t, &c.RouterID, &c.AS, &c.ListenAddr, &c.ListenPort)
	if len(c.Families) == 0 {
		c.Families = DefaultGoBGPFamilies
	}
	g := &GoBGP{Config: c, APIPort: FreePort(t), Dir: tempDir(t, "gobgp"), cli: cli}
	conf := filepath.Join(g.Dir, "gobgpd.toml")
	if err := os.WriteFile(conf, []byte(gobgpTOML(c)), 0o644); err != nil {
		t.Fatalf("testenv: cannot write the gobgpd config: %v", err)
	}
	g.Proc = startProcess(t, g.Dir, daemon, []string{
		"-f", conf, "-t", "toml",
		"--api-hosts", "127.0.0.1:" + strconv.Itoa(g.APIPort),
		"-l", "debug", "-p", "--pprof-disable",
	}, nil, "")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testenv: gobgpd config %s:\n%s", conf, gobgpTOML(c))
		}
	})
	want := len(c.Clients) + len(c.Peers)
	waitUp(t, g.Proc, "gobgpd", fmt.Sprintf("gobgpd (API 127.0.0.1:%d) to come up with AS %d and %d neighbours", g.APIPort, c.AS, want), want, func() error {
		var global struct {
			ASN uint32 `json:"asn"`
		}
		if err := g.cliJSON(&global, "global"); err != nil {
			return err
		}
		if global.ASN != c.AS {
			return fmt.Errorf("gobgpd reports AS %d, want %d", global.ASN, c.AS)
		}
		return nil
	}, g.Neighbors)
	return g
}

// gobgpTOML renders the gobgpd configuration: a route reflector (cluster
// ID = router ID) with passive RR clients, as upstream samples/gobgp.conf.
func gobgpTOML(c GoBGPConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = %q\n  port = %d\n  local-address-list = [%q]\n",
		c.AS, c.RouterID, c.ListenPort, c.ListenAddr)
	families := func() {
		for _, f := range c.Families {
			fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n", f)
		}
	}
	for _, cl := range c.Clients {
		fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", cl, c.AS)
		fmt.Fprintf(&b, "  [neighbors.transport.config]\n    passive-mode = true\n    local-address = %q\n", c.ListenAddr)
		fmt.Fprintf(&b, "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = %q\n", c.RouterID)
		families()
	}
	for _, p := range c.Peers {
		port := p.Port
		if port == 0 {
			port = 179
		}
		fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", p.Addr, c.AS)
		fmt.Fprintf(&b, "  [neighbors.transport.config]\n    local-address = %q\n    remote-port = %d\n", c.ListenAddr, port)
		fmt.Fprintf(&b, "  [neighbors.timers.config]\n    connect-retry = 1\n")
		families()
	}
	return b.String()
}

// CLI runs the gobgp CLI against this daemon (gobgp -p <APIPort> args...)
// and returns its combined output.
func (g *GoBGP) CLI(args ...string) (string, error) {
	full := append([]string{"-p", strconv.Itoa(g.APIPort)}, args...)
	return runCLI("gobgp "+strings.Join(full, " "), g.cli, full...)
}

// cliJSON runs gobgp -j args... and decodes its output into v.
func (g *GoBGP) cliJSON(v any, args ...string) error {
	out, err := g.CLI(append([]string{"-j"}, args...)...)
	if err != nil {
		return err
	}
	return decodeCLIJSON(v, "gobgp -j "+strings.Join(args, " "), out)
}

// Neighbor is one BGP neighbour of a daemon and its session state.
type Neighbor struct {
	Addr netip.Addr
	// State is the RFC 4271 §8.2.2 FSM state in lower case: "idle",
	// "connect", "active", "opensent", "openconfirm", "established" (or
	// "unknown").
	State string
}

// StateEstablished is Neighbor.State once the session is up.
const StateEstablished = "established"

// gobgpStates maps GoBGP's apipb.PeerState_SessionState numbers to names.
var gobgpStates = []string{"unknown", "idle", "connect", "active", "opensent", "openconfirm", "established"}

// Neighbors lists gobgpd's neighbours (gobgp -j neighbor).
func (g *GoBGP) Neighbors() ([]Neighbor, error) {
	var raw []struct {
		State struct {
			Address string          `json:"neighbor_address"`
			Session json.RawMessage `json:"session_state"`
		} `json:"state"`
	}
	if err := g.cliJSON(&raw, "neighbor"); err != nil {
		return nil, err
	}
	ns := make([]Neighbor, 0, len(raw))
	for _, r := range raw {
		a, err := netip.ParseAddr(r.State.Address)
		if err != nil {
			return nil, fmt.Errorf("gobgp neighbor: bad neighbor_address %q: %w", r.State.Address, err)
		}
		ns = append(ns, Neighbor{Addr: a, State: gobgpState(r.State.Session)})
	}
	return ns, nil
}

// gobgpState decodes session_state, a number in gobgp 3.x JSON (absent
// when 0) or possibly an enum name.
func gobgpState(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "unknown"
	}
	var n int
	if json.Unmarshal(raw, &n) == nil && n >= 0 && n < len(gobgpStates) {
		return gobgpStates[n]
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "BGP_FSM_"))
	}
	return "unknown"
}

// WaitEstablished waits until gobgpd's session with addr is Established.
func (g *GoBGP) WaitEstablished(t testing.TB, addr netip.Addr, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("gobgpd session with %s to be established", addr), func() (bool, error) {
		return neighborEstablished(g.Neighbors, addr)
	})
}

// neighborEstablished reports whether list shows addr as Established.
func neighborEstablished(list func() ([]Neighbor, error), addr netip.Addr) (bool, error) {
	ns, err := list()
	if err != nil {
		return false, err
	}
	for _, n := range ns {
		if n.Addr == addr {
			if n.State == StateEstablished {
				return true, nil
			}
			return false, fmt.Errorf("session with %s is %s", addr, n.State)
		}
	}
	return false, fmt.Errorf("%s is not a configured neighbour (have %v)", addr, ns)
}

// Stop stops gobgpd with SIGTERM (it withdraws nothing: sessions just
// close) and waits for it to exit.
func (g *GoBGP) Stop() error { return g.Proc.Stop() }

// Kill kills gobgpd with SIGKILL.
func (g *GoBGP) Kill() { g.Proc.Kill() }

// Log returns gobgpd's log so far.
func (g *GoBGP) Log() string { return g.Proc.Log() }
