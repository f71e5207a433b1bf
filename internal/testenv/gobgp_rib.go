package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// gobgpCLIFamilies maps GoBGP config AFI-SAFI names to the gobgp CLI's -a
// names. Other names are passed to the CLI unchanged.
var gobgpCLIFamilies = map[string]string{
	"l2vpn-evpn":          "evpn",
	"l3vpn-ipv4-unicast":  "vpnv4",
	"l3vpn-ipv6-unicast":  "vpnv6",
	"l3vpn-ipv4-flowspec": "ipv4-l3vpn-flowspec",
	"ipv4-unicast":        "ipv4",
	"ipv6-unicast":        "ipv6",
	"rtc":                 "rtc",
}

// cliFamily returns the gobgp CLI name of family.
func cliFamily(family string) string {
	if f, ok := gobgpCLIFamilies[family]; ok {
		return f
	}
	return family
}

// GoBGPRoute is one path of gobgpd's RIB as printed by gobgp -j.
type GoBGPRoute struct {
	// Prefix is GoBGP's text form of the NLRI, e.g.
	// "[type:macadv][rd:127.0.0.1:5][etag:0][mac:aa:bb:cc:dd:ee:01][ip:10.0.0.1]"
	// or "64512:7:10.1.0.0/24".
	Prefix string
	// Best is GoBGP's best-path flag (false in adj-in/adj-out listings).
	Best bool
	// NextHop is the NEXT_HOP or MP_REACH_NLRI next hop (RFC 4760 §3).
	NextHop netip.Addr
	// RD is the route distinguisher as "admin:assigned", "" if none.
	RD string
	// EVPNType is the EVPN route type (RFC 7432 §7), 0 for other families.
	EVPNType int
	// MAC and IP are the EVPN MAC/IP advertisement fields ("" if absent;
	// IP is "<nil>" for a MAC-only route, as gobgp prints it).
	MAC, IP string
	// ETag is the EVPN Ethernet tag.
	ETag uint32
	// Labels are the NLRI's MPLS labels (or VNIs).
	Labels []uint32
	// RTs are the route target extended communities (RFC 4360 §4) as
	// "admin:assigned", in attribute order.
	RTs []string
	// ExtCommunities are all extended communities.
	ExtCommunities []GoBGPExtCommunity
	// NLRI is the raw JSON NLRI.
	NLRI json.RawMessage
	// Attrs are the raw JSON path attributes.
	Attrs []json.RawMessage
}

// GoBGPExtCommunity is one extended community as gobgp -j prints it.
type GoBGPExtCommunity struct {
	Type, Subtype int
	// Value is gobgp's text value ("64512:100" for a route target), "" for
	// communities it prints otherwise (see Raw).
	Value string
	// TunnelType is the encapsulation extended community's tunnel type
	// (RFC 9012 §4.1; 8 = VXLAN), 0 otherwise.
	TunnelType int
	Raw        json.RawMessage
}

// RIB lists gobgpd's global RIB for family (a GoBGP config name such as
// "l2vpn-evpn" or a CLI name such as "evpn"), sorted by Prefix.
func (g *GoBGP) RIB(family string) ([]GoBGPRoute, error) {
	return g.routes("global", "rib", "-a", cliFamily(family))
}

// AdjIn lists the paths received from neighbor for family.
func (g *GoBGP) AdjIn(neighbor netip.Addr, family string) ([]GoBGPRoute, error) {
	return g.routes("neighbor", neighbor.String(), "adj-in", "-a", cliFamily(family))
}

// AdjOut lists the paths advertised to neighbor for family.
func (g *GoBGP) AdjOut(neighbor netip.Addr, family string) ([]GoBGPRoute, error) {
	return g.routes("neighbor", neighbor.String(), "adj-out", "-a", cliFamily(family))
}

func (g *GoBGP) routes(args ...string) ([]GoBGPRoute, error) {
	var raw map[string][]json.RawMessage
	if err := g.cliJSON(&raw, args...); err != nil {
		return nil, err
	}
	var rs []GoBGPRoute
	for prefix, paths := range raw {
		for _, p := range paths {
			r, err := parseGoBGPPath(prefix, p)
			if err != nil {
				return nil, fmt.Errorf("gobgp %s: %w", strings.Join(args, " "), err)
			}
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Prefix < rs[j].Prefix })
	return rs, nil
}

// parseGoBGPPath decodes one path of gobgp -j rib output.
func parseGoBGPPath(prefix string, raw json.RawMessage) (GoBGPRoute, error) {
	var p struct {
		NLRI  json.RawMessage   `json:"nlri"`
		Best  bool              `json:"best"`
		Attrs []json.RawMessage `json:"attrs"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return GoBGPRoute{}, fmt.Errorf("path %s: %w", prefix, err)
	}
	r := GoBGPRoute{Prefix: prefix, Best: p.Best, NLRI: p.NLRI, Attrs: p.Attrs}
	var nlri struct {
		Type  int `json:"type"`
		Value *struct {
			RD     json.RawMessage `json:"rd"`
			MAC    string          `json:"mac"`
			IP     string          `json:"ip"`
			ETag   uint32          `json:"etag"`
			Labels []uint32        `json:"labels"`
		} `json:"value"`
		RD     json.RawMessage `json:"rd"`
		Labels []uint32        `json:"labels"`
	}
	if err := json.Unmarshal(p.NLRI, &nlri); err == nil {
		if v := nlri.Value; v != nil { // EVPN: {"type":N,"value":{...}}
			r.EVPNType, r.MAC, r.IP, r.ETag, r.Labels = nlri.Type, v.MAC, v.IP, v.ETag, v.Labels
			r.RD = rdText(v.RD)
		} else {
			r.RD, r.Labels = rdText(nlri.RD), nlri.Labels
		}
	}
	for _, a := range p.Attrs {
		var attr struct {
			Type    int             `json:"type"`
			NextHop string          `json:"nexthop"`
			Value   json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(a, &attr); err != nil {
			return GoBGPRoute{}, fmt.Errorf("path %s attribute %s: %w", prefix, a, err)
		}
		switch attr.Type {
		case 3: // NEXT_HOP, RFC 4271 §5.1.3
			var s string
			json.Unmarshal(attr.Value, &s)
			r.NextHop, _ = netip.ParseAddr(s)
		case 14: // MP_REACH_NLRI, RFC 4760 §3
			r.NextHop, _ = netip.ParseAddr(attr.NextHop)
		case 16: // EXTENDED COMMUNITIES, RFC 4360 §2
			var ecs []json.RawMessage
			json.Unmarshal(attr.Value, &ecs)
			for _, e := range ecs {
				var ec struct {
					Type       int             `json:"type"`
					Subtype    int             `json:"subtype"`
					Value      json.RawMessage `json:"value"`
					TunnelType int             `json:"tunnel_type"`
				}
				json.Unmarshal(e, &ec)
				c := GoBGPExtCommunity{Type: ec.Type, Subtype: ec.Subtype, TunnelType: ec.TunnelType, Raw: e}
				json.Unmarshal(ec.Value, &c.Value)
				// Route target: transitive two-octet AS, IPv4 or four-octet
				// AS specific, sub-type 0x02 (RFC 4360 §4, RFC 5668 §3).
				if ec.Subtype == 2 && ec.Type <= 2 && c.Value != "" {
					r.RTs = append(r.RTs, c.Value)
				}
				r.ExtCommunities = append(r.ExtCommunities, c)
			}
		}
	}
	return r, nil
}

// rdText renders gobgp's JSON route distinguisher
// {"type":1,"admin":"127.0.0.1","assigned":5} as "127.0.0.1:5".
func rdText(raw json.RawMessage) string {
	var rd struct {
		Admin    json.RawMessage `json:"admin"`
		Assigned uint32          `json:"assigned"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &rd) != nil || len(rd.Admin) == 0 {
		return ""
	}
	admin := string(rd.Admin)
	if s, err := strconv.Unquote(admin); err == nil {
		admin = s
	}
	return admin + ":" + strconv.FormatUint(uint64(rd.Assigned), 10)
}

// EVPNMacIP is an EVPN MAC/IP Advertisement route (RFC 7432 §7.2) to
// inject into gobgpd.
type EVPNMacIP struct {
	RD  string // e.g. "127.0.0.1:5" or "64512:5"
	MAC net.HardwareAddr
	// IP is the optional IP address; invalid for a MAC-only route.
	IP    netip.Addr
	ETag  uint32
	Label uint32 // MPLS label or VNI
	RTs   []string
	// NextHop is the MP_REACH_NLRI next hop (the VTEP). Required.
	NextHop netip.Addr
	// Encap is the encapsulation extended community (RFC 9012), e.g.
	// "vxlan" (the default) or "mpls"; "none" for no such community.
	Encap string
}

// args renders r as gobgp CLI arguments: the NLRI, then with withAttrs
// the path attributes.
func (r EVPNMacIP) args(withAttrs bool) []string {
	ip := "0.0.0.0" // gobgp's spelling of "no IP"
	if r.IP.IsValid() {
		ip = r.IP.String()
	}
	a := []string{"macadv", r.MAC.String(), ip, "etag", strconv.FormatUint(uint64(r.ETag), 10),
		"label", strconv.FormatUint(uint64(r.Label), 10), "rd", r.RD}
	if withAttrs {
		a = append(a, attrArgs(r.RTs, r.Encap, r.NextHop)...)
	}
	return a
}

// attrArgs renders route targets, encapsulation and next hop.
func attrArgs(rts []string, encap string, nh netip.Addr) []string {
	var a []string
	if len(rts) > 0 {
		a = append(append(a, "rt"), rts...)
	}
	switch encap {
	case "":
		a = append(a, "encap", "vxlan")
	case "none":
	default:
		a = append(a, "encap", encap)
	}
	if nh.IsValid() {
		a = append(a, "nexthop", nh.String())
	}
	return a
}

// AddEVPNMacIP injects r into gobgpd's global RIB with
// gobgp global rib add -a evpn macadv <mac> <ip> etag <etag> label <label>
// rd <rd> rt <rt>... encap <encap> nexthop <nh>.
func (g *GoBGP) AddEVPNMacIP(r EVPNMacIP) error {
	_, err := g.CLI(append([]string{"global", "rib", "add", "-a", "evpn"}, r.args(true)...)...)
	return err
}

// DelEVPNMacIP withdraws r (matched by its NLRI: RD, ETag, MAC, IP, label).
func (g *GoBGP) DelEVPNMacIP(r EVPNMacIP) error {
	_, err := g.CLI(append([]string{"global", "rib", "del", "-a", "evpn"}, r.args(false)...)...)
	return err
}

// EVPNMulticast is an EVPN Inclusive Multicast Ethernet Tag route (RFC 7432
// §7.3) with an ingress replication PMSI tunnel attribute (RFC 6514 §5).
type EVPNMulticast struct {
	RD       string
	ETag     uint32
	OriginIP netip.Addr // originating router's IP address; also the tunnel ID
	Label    uint32     // PMSI label (VNI)
	RTs      []string
	NextHop  netip.Addr
	Encap    string // as EVPNMacIP.Encap
}

// args renders r as gobgp CLI arguments, as EVPNMacIP.args.
func (r EVPNMulticast) args(withAttrs bool) []string {
	a := []string{"multicast", r.OriginIP.String(), "etag", strconv.FormatUint(uint64(r.ETag), 10), "rd", r.RD}
	if withAttrs {
		a = append(a, attrArgs(r.RTs, r.Encap, r.NextHop)...)
		a = append(a, "pmsi", "ingress-repl", strconv.FormatUint(uint64(r.Label), 10), r.OriginIP.String())
	}
	return a
}

// AddEVPNMulticast injects r (gobgp global rib add -a evpn multicast ...).
func (g *GoBGP) AddEVPNMulticast(r EVPNMulticast) error {
	_, err := g.CLI(append([]string{"global", "rib", "add", "-a", "evpn"}, r.args(true)...)...)
	return err
}

// DelEVPNMulticast withdraws r.
func (g *GoBGP) DelEVPNMulticast(r EVPNMulticast) error {
	_, err := g.CLI(append([]string{"global", "rib", "del", "-a", "evpn"}, r.args(false)...)...)
	return err
}

// VPNv4Route is a BGP/MPLS IP VPN route (RFC 4364 §4.3.4) to inject.
type VPNv4Route struct {
	RD      string
	Prefix  netip.Prefix
	Label   uint32
	RTs     []string
	NextHop netip.Addr
	// Encap is the encapsulation extended community; unlike EVPNMacIP the
	// default ("") is none, as for plain MPLS VPN routes.
	Encap string
}

// args renders r as gobgp CLI arguments, as EVPNMacIP.args.
func (r VPNv4Route) args(withAttrs bool) []string {
	a := []string{r.Prefix.String(), "label", strconv.FormatUint(uint64(r.Label), 10), "rd", r.RD}
	if withAttrs {
		encap := r.Encap
		if encap == "" {
			encap = "none"
		}
		a = append(a, attrArgs(r.RTs, encap, r.NextHop)...)
	}
	return a
}

// AddVPNv4 injects r (gobgp global rib add -a vpnv4 <prefix> label <l> rd
// <rd> rt <rt>... nexthop <nh>).
func (g *GoBGP) AddVPNv4(r VPNv4Route) error {
	_, err := g.CLI(append([]string{"global", "rib", "add", "-a", "vpnv4"}, r.args(true)...)...)
	return err
}

// DelVPNv4 withdraws r.
func (g *GoBGP) DelVPNv4(r VPNv4Route) error {
	_, err := g.CLI(append([]string{"global", "rib", "del", "-a", "vpnv4"}, r.args(false)...)...)
	return err
}
