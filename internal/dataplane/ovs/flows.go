package ovs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// GatewayMAC is the source MAC of traffic the VRF sends to its ports and
// the MAC its ARP responder answers with (upstream GATEWAY_MAC).
const GatewayMAC = "00:00:5e:00:43:64"

// Flow priorities (upstream mpls_ovs_dataplane.py): every flow gets
// DefaultPriority unless said otherwise; a prefix of length l gets
// DefaultPriority-(128-l), so that longer prefixes win (OpenFlow itself
// leaves overlapping equal-priority matches undefined); fallback flows sit
// below any prefix.
const (
	DefaultPriority  = 0x9000
	maxPrefixLength  = 128
	FallbackPriority = DefaultPriority - maxPrefixLength - 0x80 // 0x8F00
	// dropPriority: the input-table flow dropping a plugged port's other
	// traffic, just below its ip/arp flows.
	dropPriority = DefaultPriority - 1
)

// Registers: reg0 carries the VRF id through the pipeline (upstream
// VRF_REGISTER); reg2 remembers the OpenFlow port a packet came from
// before in_port is cleared, so the ARP responder answers on that port
// (upstream answers on the VRF's first plugged port).
const (
	vrfRegister    = "reg0"
	inPortRegField = "NXM_NX_REG2[0..15]"
)

// prefixPriority is the VRF-table priority of a route to p.
func prefixPriority(p netip.Prefix) int {
	return DefaultPriority - (maxPrefixLength - p.Bits())
}

// prefixMatch is the nw_dst match of p, "" for a default route (a /0
// needs, and allows, no nw_dst).
func prefixMatch(p netip.Prefix) string {
	if p.Bits() == 0 {
		return ""
	}
	return "nw_dst=" + p.Masked().String()
}

// join joins the non-empty parts with commas.
func join(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p)
	}
	return b.String()
}

// flowAdd is a bundle line adding a flow with cookie, table, priority,
// match and actions.
func flowAdd(cookie uint32, table, prio int, match, actions string) string {
	return "flow add " + join("table="+strconv.Itoa(table), "cookie="+strconv.FormatUint(uint64(cookie), 10),
		"priority="+strconv.Itoa(prio), match) + " actions=" + actions
}

// flowDelStrict is a bundle line deleting exactly the flow with that
// table, priority and match, if its cookie is cookie.
func flowDelStrict(cookie uint32, table, prio int, match string) string {
	return "flow delete_strict " + join("table="+strconv.Itoa(table), cookieMask(cookie),
		"priority="+strconv.Itoa(prio), match)
}

// flowDel is a bundle line deleting, non-strictly, the flows of table
// matching match and carrying cookie.
func flowDel(cookie uint32, table int, match string) string {
	return "flow delete " + join("table="+strconv.Itoa(table), cookieMask(cookie), match)
}

// cookieMask matches exactly one cookie.
func cookieMask(cookie uint32) string {
	return "cookie=" + strconv.FormatUint(uint64(cookie), 10) + "/-1"
}

// vrfMatch is the VRF-table match of VRF id with optional protocol and
// extra match.
func vrfMatch(id uint32, proto, extra string) string {
	return join(vrfRegister+"="+strconv.FormatUint(uint64(id), 10), proto, extra)
}

// pushVLANAction pushes an 802.1Q tag with vid, "" for vid 0.
func pushVLANAction(vid int) string {
	if vid == 0 {
		return ""
	}
	return "push_vlan:0x8100,mod_vlan_vid:" + strconv.Itoa(vid)
}

// arpResponderActions turn an ARP request into a reply from GatewayMAC
// and send it back where it came from (upstream ARP_RESPONDER_ACTIONS).
func arpResponderActions(vid int) string {
	mac := strings.ReplaceAll(GatewayMAC, ":", "")
	return join("move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
		"mod_dl_src:"+GatewayMAC,
		"load:0x2->NXM_OF_ARP_OP[]",
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]",
		"push:NXM_OF_ARP_TPA[]",
		"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
		"load:0x"+mac+"->NXM_NX_ARP_SHA[]",
		"pop:NXM_OF_ARP_SPA[]",
		pushVLANAction(vid),
		"output:"+inPortRegField)
}

// arpResponderMatch matches broadcast ARP requests in VRF id, for the
// gateway only unless proxy is set.
func arpResponderMatch(id uint32, gw netip.Addr, proxy bool) string {
	m := vrfMatch(id, "arp", "dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1")
	if !proxy && gw.IsValid() {
		m += ",arp_tpa=" + gw.String()
	}
	return m
}

// portMatch matches traffic from OpenFlow port ofport, on VLAN vid if
// not 0.
func portMatch(ofport, vid int) string {
	m := "in_port=" + strconv.Itoa(ofport)
	if vid != 0 {
		m += ",dl_vlan=" + strconv.Itoa(vid)
	}
	return m
}

// inputActions send traffic from a plugged port to VRF id's table: strip
// the VLAN, remember and clear in_port (so a lookup may send the packet
// back out of the same port, OVS FAQ "I added a flow to send packets out
// the ingress port"), set reg0 and go to the VRF table.
func inputActions(vid int, id uint32, vrfTable int) string {
	strip := ""
	if vid != 0 {
		strip = "strip_vlan"
	}
	return join(strip, "move:NXM_OF_IN_PORT[]->"+inPortRegField, "load:0->NXM_OF_IN_PORT[]",
		"set_field:"+strconv.FormatUint(uint64(id), 10)+"->"+vrfRegister,
		"resubmit(,"+strconv.Itoa(vrfTable)+")")
}

// mplsInMatch matches MPLS traffic for a local label (bottom of stack).
func mplsInMatch(label uint32) string {
	return "mpls,mpls_label=" + strconv.FormatUint(uint64(label), 10) + ",mpls_bos=1"
}

// vxlanInMatch matches VXLAN traffic for VNI label from the VXLAN port.
func vxlanInMatch(vxlanPort int, label uint32) string {
	return "in_port=" + strconv.Itoa(vxlanPort) + ",tun_id=" + strconv.FormatUint(uint64(label), 10)
}

// toPortActions deliver a decapsulated IPv4 packet to a VM.
func toPortActions(vid int, vmMAC string, ofport int) string {
	return join(pushVLANAction(vid), "mod_dl_src:"+GatewayMAC, "mod_dl_dst:"+vmMAC, "output:"+strconv.Itoa(ofport))
}

// fallbackActions send unmatched VRF traffic to the fallback port
// (reference §5.8).
func fallbackActions(f *dataplane.Fallback, vid int) string {
	return join("mod_dl_src:"+f.SrcMAC, "mod_dl_dst:"+f.DstMAC, pushVLANAction(vid), "output:"+strconv.Itoa(f.OVSPortNumber))
}

// protoNames are the ovs-ofctl shorthands for IP protocols.
var protoNames = map[uint8]string{1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}

// classifierMatches returns the VRF-table matches (without reg0) for a
// FlowSpec classifier. Port ranges that are not a power-of-two block
// become several value/mask matches, so one classifier may need several
// flows; with ports but no protocol the matches are made for both TCP and
// UDP (OpenFlow needs the protocol before tp_src/tp_dst).
func classifierMatches(c dataplane.Classifier) ([]string, error) {
	var base []string
	if c.SourcePrefix.IsValid() {
		if !c.SourcePrefix.Addr().Is4() {
			return nil, fmt.Errorf("classifier source prefix %s: only IPv4 is supported", c.SourcePrefix)
		}
		base = append(base, "nw_src="+c.SourcePrefix.Masked().String())
	}
	if c.DestinationPrefix.IsValid() {
		if !c.DestinationPrefix.Addr().Is4() {
			return nil, fmt.Errorf("classifier destination prefix %s: only IPv4 is supported", c.DestinationPrefix)
		}
		base = append(base, "nw_dst="+c.DestinationPrefix.Masked().String())
	}
	src, err := portMatches("tp_src", c.SourcePort)
	if err != nil {
		return nil, err
	}
	dst, err := portMatches("tp_dst", c.DestinationPort)
	if err != nil {
		return nil, err
	}
	hasPorts := len(src) > 1 || src[0] != "" || len(dst) > 1 || dst[0] != ""
	var protos []string
	switch name, ok := protoNames[c.Protocol]; {
	case c.Protocol == 0 && hasPorts:
		protos = []string{"tcp", "udp"}
	case c.Protocol == 0:
		protos = []string{"ip"}
	case hasPorts && c.Protocol != 6 && c.Protocol != 17 && c.Protocol != 132:
		return nil, fmt.Errorf("classifier with ports and protocol %d: ports need TCP (6), UDP (17) or SCTP (132)", c.Protocol)
	case ok:
		protos = []string{name}
	default:
		protos = []string{"ip,nw_proto=" + strconv.Itoa(int(c.Protocol))}
	}
	var out []string
	for _, p := range protos {
		for _, s := range src {
			for _, d := range dst {
				out = append(out, join(append([]string{p}, append(append([]string{}, base...), s, d)...)...))
			}
		}
	}
	return out, nil
}

// portMatches returns field=value[/mask] matches covering r exactly
// ([""] for any port).
func portMatches(field string, r dataplane.PortRange) ([]string, error) {
	if r.Min == 0 && r.Max == 0 {
		return []string{""}, nil
	}
	lo, hi := int(r.Min), int(r.Max)
	if hi == 0 {
		hi = lo
	}
	if hi < lo {
		return nil, fmt.Errorf("classifier %s range %d-%d: the maximum is below the minimum", field, lo, hi)
	}
	var out []string
	for _, b := range rangeBlocks(lo, hi) {
		if b.mask == 0xffff {
			out = append(out, fmt.Sprintf("%s=%d", field, b.value))
		} else {
			out = append(out, fmt.Sprintf("%s=0x%x/0x%x", field, b.value, b.mask))
		}
	}
	return out, nil
}

// block is a 16-bit value/mask pair.
type block struct{ value, mask int }

// rangeBlocks splits [lo, hi] (0 ≤ lo ≤ hi ≤ 65535) into the fewest
// aligned power-of-two blocks, each a value/mask match.
func rangeBlocks(lo, hi int) []block {
	var out []block
	for lo <= hi {
		size := 1
		for size < 1<<16 && lo%(size*2) == 0 && lo+size*2-1 <= hi {
			size *= 2
		}
		out = append(out, block{value: lo, mask: 0xffff &^ (size - 1)})
		lo += size
	}
	return out
}
