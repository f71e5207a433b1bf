package testenv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// frrHint is how to get FRR's bgpd and vtysh on Debian.
const frrHint = "apt-get install frr"

// frrBGPD is where Debian's frr package puts bgpd.
const frrBGPD = "/usr/lib/frr/bgpd"

// FRRConfig describes an FRR bgpd instance.
type FRRConfig struct {
	// RouterID is the BGP identifier (and cluster ID). Default 127.0.0.1.
	RouterID netip.Addr
	// AS is the local AS, also every neighbour's (iBGP). Default 64512.
	AS uint32
	// ListenAddr is the address bgpd listens on and the update-source of
	// every session. Default RouterID.
	ListenAddr netip.Addr
	// ListenPort is the BGP port. Default: a free port.
	ListenPort int
	// Clients are passive route reflector clients, activated for l2vpn
	// evpn and ipv4 vpn. FRR has no RT Constraint (RFC 4684).
	Clients []netip.Addr
	// Neighbors are optional ordinary iBGP neighbours, activated for the
	// same families.
	Neighbors []FRRNeighbor
	// Extra is appended verbatim to the generated configuration.
	Extra string
}

// FRRNeighbor is an ordinary (non-client) iBGP neighbour of FRR.
type FRRNeighbor struct {
	Addr netip.Addr
	// Port is the peer's BGP port bgpd connects to; 0 for 179.
	Port int
	// Passive makes bgpd wait for the neighbour to connect.
	Passive bool
}

// FRR is a running FRR bgpd.
type FRR struct {
	// Config is the configuration with defaults filled in.
	Config FRRConfig
	// Dir holds bgpd.conf, the pid file, the vty socket (bgpd.vty) and the
	// log; removed at cleanup.
	Dir string
	// Proc is the bgpd process.
	Proc *Process

	vtysh string
}

// StartFRR writes a bgpd configuration for c and runs bgpd alone, as root,
// without zebra, in the foreground, logging to stdout:
//
//	/usr/lib/frr/bgpd -Z -S -F traditional -f <dir>/bgpd.conf -i <dir>/bgpd.pid
//	    --vty_socket <dir> -A 127.0.0.1 -P 0 -p <port> -l <addr> --log stdout --log-level debugging
//
// (-Z: no zebra; -S: skip the frr user switch, so root owns everything; -P 0:
// no TCP vty, so instances do not clash on 2605; -l implies -n, no kernel
// routes). The configuration sets "bgp allow-martian-nexthop": FRR otherwise
// treats 127.0.0.0/8 next hops as martian and drops every loopback route
// ("sent martian nexthop 127.0.0.1 in MP_REACH_NLRI"). It then waits until
// vtysh answers. The test fails if FRR is missing ("apt-get install frr").
func StartFRR(t testing.TB, c FRRConfig) *FRR {
	t.Helper()
	bgpd := requireTool(t, frrBGPD, frrHint)
	vtysh := requireTool(t, "vtysh", frrHint)
	fillIdentity(t, &c.RouterID, &c.AS, &c.ListenAddr, &c.ListenPort)
	f := &FRR{Config: c, Dir: tempDir(t, "frr"), vtysh: vtysh}
	conf := filepath.Join(f.Dir, "bgpd.conf")
	if err := os.WriteFile(conf, []byte(frrConf(c)), 0o644); err != nil {
		t.Fatalf("testenv: cannot write the bgpd config: %v", err)
	}
	f.Proc = startProcess(t, f.Dir, bgpd, []string{
		"-Z", "-S", "-F", "traditional",
		"-f", conf, "-i", filepath.Join(f.Dir, "bgpd.pid"),
		"--vty_socket", f.Dir, "-A", "127.0.0.1", "-P", "0",
		"-p", strconv.Itoa(c.ListenPort), "-l", c.ListenAddr.String(),
		"--log", "stdout", "--log-level", "debugging",
	}, nil, f.Dir)
	pid := f.Proc.PID()
	t.Cleanup(func() {
		// bgpd keeps a crash-log directory that only a clean exit removes.
		os.RemoveAll(filepath.Join("/var/tmp/frr", "bgpd."+strconv.Itoa(pid)))
		if t.Failed() {
			t.Logf("testenv: bgpd config %s:\n%s", conf, frrConf(c))
		}
	})
	want := len(c.Clients) + len(c.Neighbors)
	waitUp(t, f.Proc, "bgpd", fmt.Sprintf("FRR bgpd (vty socket %s) to come up with %d neighbours", f.Dir, want), want, nil, f.Neighbors)
	return f
}

// frrConf renders the bgpd configuration.
func frrConf(c FRRConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname testenv-%s\n!\nrouter bgp %d\n", c.RouterID, c.AS)
	fmt.Fprintf(&b, " bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n", c.RouterID)
	b.WriteString(" bgp allow-martian-nexthop\n")
	for _, cl := range c.Clients {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s passive\n neighbor %s update-source %s\n",
			cl, c.AS, cl, cl, c.ListenAddr)
	}
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s update-source %s\n", n.Addr, c.AS, n.Addr, c.ListenAddr)
		if n.Port != 0 {
			fmt.Fprintf(&b, " neighbor %s port %d\n", n.Addr, n.Port)
		}
		if n.Passive {
			fmt.Fprintf(&b, " neighbor %s passive\n", n.Addr)
		} else {
			// FRR retries a refused connection after 120 s by default.
			fmt.Fprintf(&b, " neighbor %s timers connect 1\n", n.Addr)
		}
	}
	for _, af := range []string{"l2vpn evpn", "ipv4 vpn"} {
		fmt.Fprintf(&b, " !\n address-family %s\n", af)
		for _, cl := range c.Clients {
			fmt.Fprintf(&b, "  neighbor %s activate\n  neighbor %s route-reflector-client\n", cl, cl)
		}
		for _, n := range c.Neighbors {
			fmt.Fprintf(&b, "  neighbor %s activate\n", n.Addr)
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("!\n")
	if c.Extra != "" {
		b.WriteString(c.Extra)
		b.WriteString("\n!\n")
	}
	return b.String()
}

// VTY runs one vtysh command against this bgpd
// (vtysh --vty_socket <Dir> -d bgpd -c cmd) and returns its output.
func (f *FRR) VTY(cmd string) (string, error) {
	return runCLI(fmt.Sprintf("vtysh -c %q", cmd), f.vtysh, "--vty_socket", f.Dir, "-d", "bgpd", "-c", cmd)
}

// vtyJSON runs a vtysh "... json" command and decodes its output into v.
func (f *FRR) vtyJSON(v any, cmd string) error {
	out, err := f.VTY(cmd)
	if err != nil {
		return err
	}
	return decodeCLIJSON(v, fmt.Sprintf("vtysh -c %q", cmd), out)
}

// frrStates maps FRR's bgpState names to Neighbor.State.
var frrStates = map[string]string{
	"Idle": "idle", "Connect": "connect", "Active": "active",
	"OpenSent": "opensent", "OpenConfirm": "openconfirm", "Established": "established",
}

// Neighbors lists bgpd's neighbours (show bgp neighbors json), sorted by
// address.
func (f *FRR) Neighbors() ([]Neighbor, error) {
	var raw map[string]json.RawMessage
	if err := f.vtyJSON(&raw, "show bgp neighbors json"); err != nil {
		return nil, err
	}
	var ns []Neighbor
	for k, v := range raw {
		a, err := netip.ParseAddr(k)
		if err != nil {
			continue // not a neighbour entry
		}
		var n struct {
			State string `json:"bgpState"`
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("show bgp neighbors json: neighbour %s: %w", k, err)
		}
		st, ok := frrStates[n.State]
		if !ok {
			st = strings.ToLower(n.State)
		}
		ns = append(ns, Neighbor{Addr: a, State: st})
	}
	sort.Slice(ns, func(i, j int) bool { return ns[i].Addr.Less(ns[j].Addr) })
	return ns, nil
}

// WaitEstablished waits until bgpd's session with addr is Established.
func (f *FRR) WaitEstablished(t testing.TB, addr netip.Addr, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("FRR session with %s to be established", addr), func() (bool, error) {
		return neighborEstablished(f.Neighbors, addr)
	})
}

// FRREVPNRoute is one path of FRR's EVPN table (show bgp l2vpn evpn json).
type FRREVPNRoute struct {
	RD string
	// Prefix is FRR's text form, e.g. "[2]:[0]:[48]:[aa:bb:cc:dd:ee:01]:[32]:[10.0.0.1]".
	Prefix string
	// RouteType is the EVPN route type (RFC 7432 §7).
	RouteType int
	// MAC and IP are the MAC/IP advertisement fields ("" if absent).
	MAC, IP string
	ETag    uint32
	// NextHop is the first next hop.
	NextHop netip.Addr
	// RTs are the route targets ("64512:100") from the extended community
	// string; ExtCommunity is that whole string ("RT:64512:100 ET:8").
	RTs          []string
	ExtCommunity string
	Valid, Best  bool
	// PeerID is the neighbour the path came from ("" if local).
	PeerID string
}

// EVPNRoutes lists every path of bgpd's EVPN table, sorted by RD and
// prefix.
func (f *FRR) EVPNRoutes() ([]FRREVPNRoute, error) {
	const cmd = "show bgp l2vpn evpn json"
	var raw map[string]json.RawMessage
	if err := f.vtyJSON(&raw, cmd); err != nil {
		return nil, err
	}
	var rs []FRREVPNRoute
	for rd, v := range raw {
		var byPrefix map[string]json.RawMessage
		if json.Unmarshal(v, &byPrefix) != nil {
			continue // a scalar such as "numPrefix"
		}
		for prefix, pv := range byPrefix {
			var entry struct {
				Paths []struct {
					Valid     bool   `json:"valid"`
					Best      bool   `json:"bestpath"`
					RouteType int    `json:"routeType"`
					ETag      uint32 `json:"ethTag"`
					MAC       string `json:"mac"`
					IP        string `json:"ip"`
					PeerID    string `json:"peerId"`
					ExtComm   struct {
						String string `json:"string"`
					} `json:"extendedCommunity"`
					NextHops []struct {
						IP string `json:"ip"`
					} `json:"nexthops"`
				} `json:"paths"`
			}
			if json.Unmarshal(pv, &entry) != nil {
				continue // "rd": "..."
			}
			for _, p := range entry.Paths {
				r := FRREVPNRoute{RD: rd, Prefix: prefix, RouteType: p.RouteType, MAC: p.MAC, IP: p.IP,
					ETag: p.ETag, ExtCommunity: p.ExtComm.String, Valid: p.Valid, Best: p.Best, PeerID: p.PeerID}
				if len(p.NextHops) > 0 {
					r.NextHop, _ = netip.ParseAddr(p.NextHops[0].IP)
				}
				r.RTs = frrRTs(p.ExtComm.String)
				rs = append(rs, r)
			}
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].RD != rs[j].RD {
			return rs[i].RD < rs[j].RD
		}
		return rs[i].Prefix < rs[j].Prefix
	})
	return rs, nil
}

// Stop stops bgpd with SIGTERM and waits for it to exit.
func (f *FRR) Stop() error { return f.Proc.Stop() }

// Kill kills bgpd with SIGKILL.
func (f *FRR) Kill() { f.Proc.Kill() }

// Log returns bgpd's log so far.
func (f *FRR) Log() string { return f.Proc.Log() }
