package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// snmpCounter returns counter name of protocol proto ("Icmp") from the
// text of /proc/net/snmp: a header line "Icmp: InMsgs ..." followed by a
// values line "Icmp: 3 ...".
func snmpCounter(snmp, proto, name string) (int, error) {
	lines := strings.Split(snmp, "\n")
	for i := 0; i+1 < len(lines); i++ {
		head, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(head) == 0 || head[0] != proto+":" || len(vals) != len(head) || vals[0] != head[0] {
			continue
		}
		for j, h := range head {
			if h == name {
				return strconv.Atoi(vals[j])
			}
		}
	}
	return 0, fmt.Errorf("no %s counter %s in /proc/net/snmp", proto, name)
}

// ipRouteJSON is a route as ip -j route show prints it.
type ipRouteJSON struct {
	Dst     string `json:"dst"`
	Encap   string `json:"encap"`
	ID      uint32 `json:"id"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

// parseVRFRoutes decodes ip -j route show output. ip prints the encap's
// destination as a second "dst" key, after "encap": the first is the
// route's prefix, the second (if any) the tunnel destination.
func parseVRFRoutes(out []byte) (map[netip.Prefix]vrfRoute, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("decoding ip -j route: %w: %s", err, out)
	}
	res := map[netip.Prefix]vrfRoute{}
	for _, m := range raw {
		dsts, err := dstValues(m)
		if err != nil {
			return nil, err
		}
		var r ipRouteJSON
		if err := json.Unmarshal(m, &r); err != nil {
			return nil, fmt.Errorf("decoding route %s: %w", m, err)
		}
		if len(dsts) == 0 || dsts[0] == "default" {
			continue
		}
		d := dsts[0]
		if !strings.Contains(d, "/") {
			d += "/32"
		}
		p, err := netip.ParsePrefix(d)
		if err != nil {
			return nil, fmt.Errorf("route %s: %w", m, err)
		}
		v := vrfRoute{Dst: p, Encap: r.Encap, ID: r.ID, Dev: r.Dev}
		if len(dsts) > 1 {
			v.EncapDst, _ = netip.ParseAddr(dsts[1])
		}
		if r.Gateway != "" {
			v.Gateway, _ = netip.ParseAddr(r.Gateway)
		}
		res[p] = v
	}
	return res, nil
}

// dstValues returns the values of every "dst" key of a JSON object, in
// order (encoding/json keeps only the last of duplicate keys).
func dstValues(m json.RawMessage) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(string(m)))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	var out []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if k == "dst" {
			var s string
			if json.Unmarshal(v, &s) == nil {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// vrfRoutes dumps one routing table of the node (ip -j route show table).
func (n *node) vrfRoutes(table int) (map[netip.Prefix]vrfRoute, error) {
	out, err := lab.Command(n.ns, "ip", "-j", "route", "show", "table", strconv.Itoa(table)).Output()
	if err != nil {
		return nil, fmt.Errorf("ip -j route show table %d in %s: %w", table, n.ns, err)
	}
	return parseVRFRoutes(out)
}

// portLabel returns the label of the first endpoint of a port of an IP
// VPN instance, from the looking glass (reference §4: ports →
// {"<linuxif>": {"endpoints": [{"label": ...}]}}).
func (n *node) portLabel(t *testing.T, instance, port string) uint32 {
	t.Helper()
	var ports map[string]struct {
		Endpoints []struct {
			Label uint32 `json:"label"`
		} `json:"endpoints"`
	}
	if err := n.getJSON("/looking-glass/vpns/instances/"+instance+"/ports", &ports); err != nil {
		t.Fatalf("node %s: %v", n.name, err)
	}
	p, ok := ports[port]
	if !ok || len(p.Endpoints) == 0 || p.Endpoints[0].Label == 0 {
		t.Fatalf("node %s: instance %s: no labelled endpoint on port %s in the looking glass: %+v", n.name, instance, port, ports)
	}
	return p.Endpoints[0].Label
}

// gobgp runs the gobgp CLI in the reflector's namespace against gobgpd's
// API (lab.GoBGPArgs: 127.0.0.1:50051) and returns its output.
func (tp *topo) gobgp(args ...string) []byte {
	tp.t.Helper()
	full := append([]string{"-u", "127.0.0.1", "-p", "50051"}, args...)
	out, err := lab.Command(tp.rrNS, "gobgp", full...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("e2e: gobgp %s in %s: %v\n%s", strings.Join(full, " "), tp.rrNS, err, out)
	}
	return out
}

// vpnPath is one VPNv4 path of gobgpd's RIB.
type vpnPath struct {
	Neighbor netip.Addr
	Prefix   netip.Prefix
	Label    uint32
	NextHop  netip.Addr
	RTs      []string
	VXLAN    bool // encapsulation extended community, tunnel type 8 (RFC 9012 §4.1)
}

// vpnRIB is gobgpd's VPNv4 RIB.
type vpnRIB []vpnPath

func (r vpnRIB) String() string {
	var b strings.Builder
	for _, p := range r {
		fmt.Fprintf(&b, "%+v\n", p)
	}
	return b.String()
}

// find returns the path of prefix p learnt from neighbor with route
// target rt (VRFs of one node may advertise the same prefix), nil if none.
func (r vpnRIB) find(neighbor netip.Addr, p netip.Prefix, rt string) *vpnPath {
	for i := range r {
		if r[i].Neighbor == neighbor && r[i].Prefix == p && slices.Contains(r[i].RTs, rt) {
			return &r[i]
		}
	}
	return nil
}

// rrRIB reads gobgpd's VPNv4 RIB (gobgp -j global rib -a vpnv4).
func (tp *topo) rrRIB() vpnRIB {
	tp.t.Helper()
	rib, err := parseVPNRIB(tp.gobgp("-j", "global", "rib", "-a", "vpnv4"))
	if err != nil {
		tp.t.Fatalf("e2e: %v", err)
	}
	return rib
}

// parseVPNRIB decodes gobgp -j global rib -a vpnv4.
func parseVPNRIB(out []byte) (vpnRIB, error) {
	var raw map[string][]struct {
		NLRI struct {
			Prefix string   `json:"prefix"`
			Labels []uint32 `json:"labels"`
		} `json:"nlri"`
		Neighbor string `json:"neighbor-ip"`
		Attrs    []struct {
			Type    int    `json:"type"`
			NextHop string `json:"nexthop"`
			Value   json.RawMessage
		} `json:"attrs"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("decoding gobgp's VPNv4 RIB: %w: %s", err, out)
	}
	var rib vpnRIB
	for key, paths := range raw {
		for _, p := range paths {
			var v vpnPath
			var err error
			if v.Prefix, err = netip.ParsePrefix(p.NLRI.Prefix); err != nil {
				return nil, fmt.Errorf("gobgp route %s: %w", key, err)
			}
			v.Neighbor, _ = netip.ParseAddr(p.Neighbor)
			if len(p.NLRI.Labels) > 0 {
				v.Label = p.NLRI.Labels[0]
			}
			for _, a := range p.Attrs {
				switch a.Type {
				case 14: // MP_REACH_NLRI (RFC 4760 §3)
					v.NextHop, _ = netip.ParseAddr(a.NextHop)
				case 16: // EXTENDED COMMUNITIES (RFC 4360)
					var ecs []struct {
						Type       int    `json:"type"`
						Subtype    int    `json:"subtype"`
						TunnelType int    `json:"tunnel_type"`
						Value      string `json:"value"`
					}
					if err := json.Unmarshal(a.Value, &ecs); err != nil {
						return nil, fmt.Errorf("gobgp route %s: extended communities: %w", key, err)
					}
					for _, e := range ecs {
						switch {
						case e.Type == 3 && e.Subtype == 12: // encapsulation (RFC 9012 §4.1)
							v.VXLAN = v.VXLAN || e.TunnelType == 8
						case e.Subtype == 2: // route target (RFC 4360 §4)
							v.RTs = append(v.RTs, e.Value)
						}
					}
				}
			}
			rib = append(rib, v)
		}
	}
	return rib, nil
}

// waitRIBPath waits until gobgpd has a VPNv4 path for p from neighbor
// with route target rt and returns it.
func (tp *topo) waitRIBPath(neighbor netip.Addr, p netip.Prefix, rt string) vpnPath {
	tp.t.Helper()
	var found vpnPath
	testenv.WaitFor(tp.t, stateTimeout, fmt.Sprintf("gobgpd to have %s from %s", p, neighbor), func() (bool, error) {
		rib := tp.rrRIB()
		if r := rib.find(neighbor, p, rt); r != nil {
			found = *r
			return true, nil
		}
		return false, fmt.Errorf("VPNv4 RIB:\n%s", rib)
	})
	return found
}
