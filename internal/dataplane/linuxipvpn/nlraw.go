package linuxipvpn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// This file fills the gaps of github.com/vishvananda/netlink v1.3.1 for
// this driver (reference dataplanes.md §2): the library has no
// LWTUNNEL_ENCAP_IP encap type and does not decode it in route dumps, and
// Rule.TunID encodes FRA_TUN_ID as 4 bytes where the kernel wants a be64.
// Rules are therefore added, deleted and dumped with raw requests, and
// route dumps are parsed here.

// Kernel constants not exported by x/sys/unix or the library
// (include/uapi/linux/lwtunnel.h, fib_rules.h).
const (
	lwtunnelIPID   = 1 // LWTUNNEL_IP_ID, be64
	lwtunnelIPDst  = 2 // LWTUNNEL_IP_DST, in_addr
	frActToTbl     = 1 // FR_ACT_TO_TBL
	frActBlackhole = 6 // FR_ACT_BLACKHOLE
	rtTableLocal   = unix.RT_TABLE_LOCAL
)

// ipEncap is the lwtunnel "encap ip id <ID> dst <Dst>" of a route: with a
// collect_md VXLAN device, ID is the VNI and Dst the remote VTEP.
type ipEncap struct {
	ID  uint64
	Dst netip.Addr
}

var _ netlink.Encap = (*ipEncap)(nil)

// Type implements netlink.Encap.
func (e *ipEncap) Type() int { return nl.LWTUNNEL_ENCAP_IP }

// Decode implements netlink.Encap.
func (e *ipEncap) Decode(b []byte) error {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return err
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case lwtunnelIPID:
			if len(a.Value) < 8 {
				return fmt.Errorf("LWTUNNEL_IP_ID of %d bytes, want 8", len(a.Value))
			}
			e.ID = binary.BigEndian.Uint64(a.Value)
		case lwtunnelIPDst:
			if ip, ok := netip.AddrFromSlice(a.Value); ok {
				e.Dst = ip.Unmap()
			}
		}
	}
	return nil
}

// Encode implements netlink.Encap.
func (e *ipEncap) Encode() ([]byte, error) {
	if !e.Dst.Is4() {
		return nil, fmt.Errorf("encap ip: destination %s is not IPv4", e.Dst)
	}
	id := binary.BigEndian.AppendUint64(nil, e.ID)
	dst := e.Dst.As4()
	out := nl.NewRtAttr(lwtunnelIPID, id).Serialize()
	return append(out, nl.NewRtAttr(lwtunnelIPDst, dst[:]).Serialize()...), nil
}

// String implements netlink.Encap.
func (e *ipEncap) String() string { return fmt.Sprintf("ip id %d dst %s", e.ID, e.Dst) }

// Equal implements netlink.Encap.
func (e *ipEncap) Equal(x netlink.Encap) bool {
	o, ok := x.(*ipEncap)
	return ok && o.ID == e.ID && o.Dst == e.Dst
}

// rule is one IPv4 policy routing rule, comparable so that it can key a
// map. Only the selectors this driver uses are represented.
type rule struct {
	Pref    int
	Table   int   // 0 with Action FR_ACT_BLACKHOLE
	Action  uint8 // 0: FR_ACT_TO_TBL (lookup Table); frActBlackhole
	Iif     string
	TunID   uint64 // 0: none
	IPProto uint8
	Sport   [2]uint16 // {0,0}: any
	Dport   [2]uint16
	Src     netip.Prefix
	Dst     netip.Prefix
}

func (r rule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d:", r.Pref)
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " from %s", r.Src)
	}
	if r.Dst.IsValid() {
		fmt.Fprintf(&b, " to %s", r.Dst)
	}
	if r.Iif != "" {
		fmt.Fprintf(&b, " iif %s", r.Iif)
	}
	if r.TunID != 0 {
		fmt.Fprintf(&b, " tun_id %d", r.TunID)
	}
	if r.IPProto != 0 {
		fmt.Fprintf(&b, " ipproto %d", r.IPProto)
	}
	if r.Sport != [2]uint16{} {
		fmt.Fprintf(&b, " sport %d-%d", r.Sport[0], r.Sport[1])
	}
	if r.Dport != [2]uint16{} {
		fmt.Fprintf(&b, " dport %d-%d", r.Dport[0], r.Dport[1])
	}
	if r.Action == frActBlackhole {
		b.WriteString(" blackhole")
		return b.String()
	}
	fmt.Fprintf(&b, " lookup %d", r.Table)
	return b.String()
}

// kernelRule is a dumped rule with the fields that decide ownership.
type kernelRule struct {
	rule
	Protocol uint8
	Other    bool // has selectors this driver never sets (fwmark, oif, …)
}

// ruleMsg builds an RTM_NEWRULE/RTM_DELRULE request for r with our
// protocol (FRA_PROTOCOL marks ownership).
func ruleMsg(typ uint16, flags int, r rule, proto uint8) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(typ), flags|unix.NLM_F_ACK)
	msg := &nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Table: unix.RT_TABLE_UNSPEC, Type: frActToTbl}}
	if r.Action != 0 {
		msg.Type = r.Action
	}
	if r.Table < 256 {
		msg.Table = uint8(r.Table)
	}
	if r.Src.IsValid() {
		msg.Src_len = uint8(r.Src.Bits())
	}
	if r.Dst.IsValid() {
		msg.Dst_len = uint8(r.Dst.Bits())
	}
	req.AddData(msg)
	ne := nl.NativeEndian()
	u32 := func(v uint32) []byte { b := make([]byte, 4); ne.PutUint32(b, v); return b }
	if r.Dst.IsValid() {
		a := r.Dst.Addr().As4()
		req.AddData(nl.NewRtAttr(nl.FRA_DST, a[:]))
	}
	if r.Src.IsValid() {
		a := r.Src.Addr().As4()
		req.AddData(nl.NewRtAttr(nl.FRA_SRC, a[:]))
	}
	req.AddData(nl.NewRtAttr(nl.FRA_PRIORITY, u32(uint32(r.Pref))))
	if r.Action == 0 {
		req.AddData(nl.NewRtAttr(nl.FRA_TABLE, u32(uint32(r.Table))))
	}
	if r.Iif != "" {
		req.AddData(nl.NewRtAttr(nl.FRA_IIFNAME, append([]byte(r.Iif), 0)))
	}
	if r.TunID != 0 {
		// FRA_TUN_ID is a be64 (net/core/fib_rules.c nla_get_be64).
		req.AddData(nl.NewRtAttr(nl.FRA_TUN_ID, binary.BigEndian.AppendUint64(nil, r.TunID)))
	}
	if r.IPProto != 0 {
		req.AddData(nl.NewRtAttr(nl.FRA_IP_PROTO, []byte{r.IPProto}))
	}
	portRange := func(p [2]uint16) []byte {
		b := make([]byte, 4)
		ne.PutUint16(b, p[0])
		ne.PutUint16(b[2:], p[1])
		return b
	}
	if r.Sport != [2]uint16{} {
		req.AddData(nl.NewRtAttr(nl.FRA_SPORT_RANGE, portRange(r.Sport)))
	}
	if r.Dport != [2]uint16{} {
		req.AddData(nl.NewRtAttr(nl.FRA_DPORT_RANGE, portRange(r.Dport)))
	}
	if proto != 0 {
		req.AddData(nl.NewRtAttr(nl.FRA_PROTOCOL, []byte{proto}))
	}
	return req
}

// rawConn is the driver's second netlink socket, in the same namespace as
// its Handle, for the requests the library cannot encode or decode.
type rawConn struct {
	sockets map[int]*nl.SocketHandle
}

func (c *rawConn) close() {
	for _, s := range c.sockets {
		s.Close()
	}
}

func (c *rawConn) exec(req *nl.NetlinkRequest) error {
	req.Sockets = c.sockets
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// ruleAdd adds r; an existing identical rule is not an error.
func (c *rawConn) ruleAdd(r rule, proto uint8) error {
	err := c.exec(ruleMsg(unix.RTM_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, r, proto))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// ruleDel deletes r; a missing rule is not an error.
func (c *rawConn) ruleDel(r rule, proto uint8) error {
	err := c.exec(ruleMsg(unix.RTM_DELRULE, 0, r, proto))
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// dump runs a dump request and calls f for each message.
func (c *rawConn) dump(typ uint16, f func(m []byte) error) error {
	var ferr error
	for range dumpRetries {
		req := nl.NewNetlinkRequest(int(typ), unix.NLM_F_DUMP)
		req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET}})
		req.Sockets = c.sockets
		var msgs [][]byte
		err := req.ExecuteIter(unix.NETLINK_ROUTE, 0, func(m []byte) bool {
			msgs = append(msgs, m)
			return true
		})
		if errors.Is(err, nl.ErrDumpInterrupted) {
			continue
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if ferr = f(m); ferr != nil {
				return ferr
			}
		}
		return nil
	}
	return fmt.Errorf("netlink dump interrupted %d times in a row by concurrent changes", dumpRetries)
}

// rules dumps the IPv4 rules.
func (c *rawConn) rules() ([]kernelRule, error) {
	var out []kernelRule
	err := c.dump(unix.RTM_GETRULE, func(m []byte) error {
		if len(m) < unix.SizeofRtMsg {
			return nil
		}
		msg := nl.DeserializeRtMsg(m)
		if msg.Family != unix.AF_INET {
			return nil
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
		if err != nil {
			return fmt.Errorf("parsing a rule: %w", err)
		}
		ne := nl.NativeEndian()
		kr := kernelRule{rule: rule{Table: int(msg.Table)}}
		if msg.Type == frActBlackhole {
			kr.Action = frActBlackhole
		}
		kr.Other = (msg.Type != frActToTbl && msg.Type != frActBlackhole) || msg.Tos != 0 || msg.Flags != 0
		for _, a := range attrs {
			v := a.Value
			switch a.Attr.Type {
			case nl.FRA_TABLE:
				kr.Table = int(ne.Uint32(v))
			case nl.FRA_PRIORITY:
				kr.Pref = int(ne.Uint32(v))
			case nl.FRA_IIFNAME:
				kr.Iif = strings.TrimRight(string(v), "\x00")
			case nl.FRA_TUN_ID:
				kr.TunID = binary.BigEndian.Uint64(v)
			case nl.FRA_IP_PROTO:
				kr.IPProto = v[0]
			case nl.FRA_SPORT_RANGE:
				kr.Sport = [2]uint16{ne.Uint16(v), ne.Uint16(v[2:])}
			case nl.FRA_DPORT_RANGE:
				kr.Dport = [2]uint16{ne.Uint16(v), ne.Uint16(v[2:])}
			case nl.FRA_SRC:
				if ip, ok := netip.AddrFromSlice(v); ok {
					kr.Src = netip.PrefixFrom(ip, int(msg.Src_len))
				}
			case nl.FRA_DST:
				if ip, ok := netip.AddrFromSlice(v); ok {
					kr.Dst = netip.PrefixFrom(ip, int(msg.Dst_len))
				}
			case nl.FRA_PROTOCOL:
				kr.Protocol = v[0]
			case nl.FRA_FWMARK, nl.FRA_OIFNAME, nl.FRA_UID_RANGE, nl.FRA_GOTO, nl.FRA_L3MDEV:
				kr.Other = true
			}
		}
		out = append(out, kr)
		return nil
	})
	return out, err
}

// kroute is a dumped IPv4 route, with the fields this driver compares.
type kroute struct {
	Table    int
	Dst      netip.Prefix
	Type     uint8
	Protocol uint8
	Oif      int
	Nexthops []knexthop // one for a single-path route; sorted by Gw
}

// knexthop is one next hop of a dumped route.
type knexthop struct {
	Oif   int
	Gw    netip.Addr
	Encap ipEncap // zero if no (or another) encap
}

// sig is a comparable summary of a route: what reconcile compares.
func (r *kroute) sig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %d %s type %d", r.Table, r.Dst, r.Type)
	if r.Type != unix.RTN_UNICAST {
		return b.String() // unreachable, local: no next hop to compare
	}
	for _, n := range r.Nexthops {
		fmt.Fprintf(&b, " [%d %s %d %s]", n.Oif, n.Gw, n.Encap.ID, n.Encap.Dst)
	}
	return b.String()
}

func (r *kroute) sortNexthops() {
	slices.SortFunc(r.Nexthops, func(a, b knexthop) int {
		if c := a.Gw.Compare(b.Gw); c != 0 {
			return c
		}
		return int(a.Encap.ID) - int(b.Encap.ID)
	})
}

// routes dumps the IPv4 routes of the tables accepted by keep.
func (c *rawConn) routes(keep func(table int) bool) ([]kroute, error) {
	var out []kroute
	err := c.dump(unix.RTM_GETROUTE, func(m []byte) error {
		if len(m) < unix.SizeofRtMsg {
			return nil
		}
		msg := nl.DeserializeRtMsg(m)
		if msg.Family != unix.AF_INET || msg.Flags&unix.RTM_F_CLONED != 0 {
			return nil
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
		if err != nil {
			return fmt.Errorf("parsing a route: %w", err)
		}
		ne := nl.NativeEndian()
		r := kroute{Table: int(msg.Table), Type: msg.Type, Protocol: msg.Protocol}
		for _, a := range attrs {
			if a.Attr.Type == unix.RTA_TABLE {
				r.Table = int(ne.Uint32(a.Value))
			}
		}
		if !keep(r.Table) {
			return nil
		}
		dst := netip.IPv4Unspecified()
		var single knexthop
		var encap, encapType []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_DST:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					dst = ip
				}
			case unix.RTA_OIF:
				single.Oif = int(ne.Uint32(a.Value))
			case unix.RTA_GATEWAY:
				single.Gw, _ = netip.AddrFromSlice(a.Value)
			case unix.RTA_ENCAP:
				encap = a.Value
			case unix.RTA_ENCAP_TYPE:
				encapType = a.Value
			case unix.RTA_MULTIPATH:
				nhs, err := parseMultipath(a.Value)
				if err != nil {
					return err
				}
				r.Nexthops = nhs
			}
		}
		r.Dst = netip.PrefixFrom(dst, int(msg.Dst_len))
		if len(encapType) >= 2 && int(ne.Uint16(encapType)) == nl.LWTUNNEL_ENCAP_IP {
			if err := single.Encap.Decode(encap); err != nil {
				return err
			}
		}
		if r.Nexthops == nil && (single.Oif != 0 || single.Gw.IsValid()) {
			r.Nexthops = []knexthop{single}
		}
		r.Oif = single.Oif
		r.sortNexthops()
		out = append(out, r)
		return nil
	})
	return out, err
}

// parseMultipath parses RTA_MULTIPATH: struct rtnexthop {u16 len; u8
// flags; u8 hops; s32 ifindex} followed by its attributes, repeated.
func parseMultipath(b []byte) ([]knexthop, error) {
	ne := nl.NativeEndian()
	var out []knexthop
	for len(b) >= unix.SizeofRtNexthop {
		l := int(ne.Uint16(b))
		if l < unix.SizeofRtNexthop || l > len(b) {
			return nil, fmt.Errorf("RTA_MULTIPATH: next hop of length %d in %d bytes", l, len(b))
		}
		nh := knexthop{Oif: int(int32(ne.Uint32(b[4:])))}
		attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtNexthop:l])
		if err != nil {
			return nil, err
		}
		var encap, encapType []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_GATEWAY:
				nh.Gw, _ = netip.AddrFromSlice(a.Value)
			case unix.RTA_ENCAP:
				encap = a.Value
			case unix.RTA_ENCAP_TYPE:
				encapType = a.Value
			}
		}
		if len(encapType) >= 2 && int(ne.Uint16(encapType)) == nl.LWTUNNEL_ENCAP_IP {
			if err := nh.Encap.Decode(encap); err != nil {
				return nil, err
			}
		}
		out = append(out, nh)
		b = b[min((l+3)&^3, len(b)):]
	}
	return out, nil
}

// ipNet converts a prefix for the library.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
