package codec

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// ErrTooLong reports that the routes given to EncodeUpdate or
// EncodeWithdraw do not fit one 4096-byte message; EncodeUpdates and
// EncodeWithdraws split them.
var ErrTooLong = errors.New("BGP message would exceed 4096 bytes")

// EncodeUpdate encodes one UPDATE message (with its header) advertising
// routes, which must all share one Family and one *Attrs: they are carried in
// a single MP_REACH_NLRI (RFC 4760 §3). It returns an error wrapping
// ErrTooLong if the message would exceed 4096 bytes (use EncodeUpdates).
//
// The bytes match what upstream bagpipe-bgp (ExaBGP) sends: ORIGIN,
// AS_PATH (empty when Attrs.ASPath is, as on iBGP, else one AS_SEQUENCE of
// 4-octet ASNs, RFC 6793), MULTI_EXIT_DISC if HasMED, LOCAL_PREF if
// HasLocalPref, EXTENDED_COMMUNITIES (see below), PMSI_TUNNEL if set, in
// type-code order, then MP_REACH_NLRI last (next hop Attrs.NextHop, which
// must be set, except for FlowSpec which has none).
// Extended communities are written as upstream's RouteEntry builds them:
// the non-RT ones first (encapsulations, RT records, LB order, redirect,
// others), then the route targets.
func EncodeUpdate(routes []*route.Route) ([]byte, error) {
	f, err := sameFamily(routes)
	if err != nil {
		return nil, err
	}
	a, err := sharedAttrs(routes)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, fmt.Errorf("cannot advertise %s: route has no attributes", routes[0])
	}
	nlris, err := gobgpNLRIs(routes)
	if err != nil {
		return nil, err
	}
	var nhs []netip.Addr
	switch {
	case f == route.FamilyFlowVPN:
		// No next hop (RFC 8955 §4: length 0, ignored on receipt), as
		// upstream sends.
	case !a.NextHop.IsValid():
		return nil, fmt.Errorf("cannot advertise %s: Attrs.NextHop is not set", routes[0])
	default:
		nhs = append(nhs, a.NextHop)
	}
	reach, err := bgp.NewPathAttributeMpReachNLRI(bgp.Family(f), nlris, nhs...)
	if err != nil {
		return nil, fmt.Errorf("MP_REACH_NLRI for %s: %w", routes[0], err)
	}
	return message(append(pathAttributes(a), reach))
}

// EncodeWithdraw encodes one UPDATE message withdrawing routes (of one
// family) in an MP_UNREACH_NLRI (RFC 4760 §4). The NLRI are written as
// advertised (VPNv4 and E-VPN labels included). When the routes share one
// non-nil *Attrs, its attributes are written before MP_UNREACH_NLRI as
// upstream does (they are meaningless to the receiver); otherwise the
// message holds MP_UNREACH_NLRI only. It returns an error wrapping
// ErrTooLong if the routes do not fit (use EncodeWithdraws).
func EncodeWithdraw(routes []*route.Route) ([]byte, error) {
	f, err := sameFamily(routes)
	if err != nil {
		return nil, err
	}
	nlris, err := gobgpNLRIs(routes)
	if err != nil {
		return nil, err
	}
	unreach, err := bgp.NewPathAttributeMpUnreachNLRI(bgp.Family(f), nlris)
	if err != nil {
		return nil, fmt.Errorf("MP_UNREACH_NLRI for %s: %w", routes[0], err)
	}
	var attrs []bgp.PathAttributeInterface
	if a, err := sharedAttrs(routes); err == nil && a != nil {
		attrs = pathAttributes(a)
	}
	return message(append(attrs, unreach))
}

// sharedAttrs returns the *Attrs all routes share, or an error.
func sharedAttrs(routes []*route.Route) (*route.Attrs, error) {
	a := routes[0].Attrs
	for _, r := range routes[1:] {
		if r.Attrs != a {
			return nil, fmt.Errorf("cannot advertise %s and %s in one UPDATE: they do not share one *Attrs (use EncodeUpdates)", routes[0], r)
		}
	}
	return a, nil
}

// EncodeEndOfRIB encodes the End-of-RIB marker of family f (RFC 4724 §2):
// an UPDATE holding only an empty MP_UNREACH_NLRI (or, for IPv4 unicast, an
// empty UPDATE).
func EncodeEndOfRIB(f route.Family) []byte {
	b := make([]byte, headerLen, headerLen+4+6)
	for i := range 16 {
		b[i] = 0xff
	}
	b[18] = 2
	if f == route.NewFamily(1, 1) {
		b = append(b, 0, 0, 0, 0)
	} else {
		b = append(b, 0, 0, 0, 6, attrFlagOptional, attrMPUnreach, 3, byte(f.AFI()>>8), byte(f.AFI()), f.SAFI())
	}
	binary.BigEndian.PutUint16(b[16:], uint16(len(b)))
	return b
}

// EncodeUpdates encodes routes as UPDATE messages: routes are grouped by
// (Family, *Attrs) in order of first appearance, and each group is split
// into as few messages of at most 4096 bytes as needed.
func EncodeUpdates(routes []*route.Route) ([][]byte, error) {
	return encodeGroups(routes, EncodeUpdate)
}

func encodeGroups(routes []*route.Route, enc func([]*route.Route) ([]byte, error)) ([][]byte, error) {
	type groupKey struct {
		f route.Family
		a *route.Attrs
	}
	var order []groupKey
	groups := map[groupKey][]*route.Route{}
	for _, r := range routes {
		k := groupKey{r.Family, r.Attrs}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out [][]byte
	for _, k := range order {
		var err error
		if out, err = split(out, groups[k], enc); err != nil {
			return out, err
		}
	}
	return out, nil
}

// EncodeWithdraws encodes withdrawals of routes as UPDATE messages, grouped
// by (Family, *Attrs) like EncodeUpdates and split to fit 4096 bytes.
func EncodeWithdraws(routes []*route.Route) ([][]byte, error) {
	return encodeGroups(routes, EncodeWithdraw)
}

// split encodes routes with enc, halving the batch while it is too long.
func split(out [][]byte, routes []*route.Route, enc func([]*route.Route) ([]byte, error)) ([][]byte, error) {
	b, err := enc(routes)
	if err == nil {
		return append(out, b), nil
	}
	if !errors.Is(err, ErrTooLong) || len(routes) == 1 {
		return out, err
	}
	h := len(routes) / 2
	if out, err = split(out, routes[:h], enc); err != nil {
		return out, err
	}
	return split(out, routes[h:], enc)
}

func sameFamily(routes []*route.Route) (route.Family, error) {
	if len(routes) == 0 {
		return 0, errors.New("no routes to encode")
	}
	f := routes[0].Family
	for _, r := range routes[1:] {
		if r.Family != f {
			return 0, fmt.Errorf("cannot encode %s and %s in one UPDATE: families differ", routes[0], r)
		}
	}
	return f, nil
}

// gobgpNLRIs converts routes to gobgp NLRI values holding their wire form
// (appendNLRI). Going through gobgp's typed NLRI (NLRIFromSlice) would lose
// data: it drops the value of route distinguishers of unknown type, rejects
// E-VPN route types it does not know (RFC 7606 §5.4 says to relay or skip
// them, not fail), and its FlowSpec serializer mishandles 2-byte lengths.
func gobgpNLRIs(routes []*route.Route) ([]bgp.PathNLRI, error) {
	out := make([]bgp.PathNLRI, 0, len(routes))
	var buf []byte
	for _, r := range routes {
		var err error
		buf, err = appendNLRI(buf[:0], r)
		if err != nil {
			return nil, fmt.Errorf("cannot encode route: %w", err)
		}
		out = append(out, bgp.PathNLRI{NLRI: rawNLRI(string(buf))})
	}
	return out, nil
}

// pathAttributes builds the attributes other than MP_REACH/MP_UNREACH, in
// type-code order (as ExaBGP, hence upstream, sends them).
func pathAttributes(a *route.Attrs) []bgp.PathAttributeInterface {
	attrs := make([]bgp.PathAttributeInterface, 0, 8)
	attrs = append(attrs, bgp.NewPathAttributeOrigin(a.Origin))
	var segs []bgp.AsPathParamInterface
	for p := a.ASPath; len(p) > 0; {
		n := min(len(p), 255)
		segs = append(segs, bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, p[:n]))
		p = p[n:]
	}
	attrs = append(attrs, bgp.NewPathAttributeAsPath(segs))
	if a.HasMED {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(a.MED))
	}
	if a.HasLocalPref {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(a.LocalPref))
	}
	if a.OriginatorID.Is4() {
		// Only set on decoded routes (RFC 4456 §8); kept so a decoded route
		// re-encodes to what was received.
		if oid, err := bgp.NewPathAttributeOriginatorId(a.OriginatorID); err == nil {
			attrs = append(attrs, oid)
		}
	}
	if cs := extCommunities(a); len(cs) > 0 {
		ecs := make([]bgp.ExtendedCommunityInterface, 0, len(cs))
		for _, c := range cs {
			// Raw: gobgp's typed communities (ParseExtended) normalize
			// some values they do not fully understand.
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 8), c)
			ecs = append(ecs, &bgp.UnknownExtended{Type: bgp.ExtendedCommunityAttrType(v[0]), Value: v[1:]})
		}
		attrs = append(attrs, bgp.NewPathAttributeExtendedCommunities(ecs))
	}
	if p := a.PMSI; p != nil {
		var id bgp.PmsiTunnelIDInterface
		if p.TunnelType == route.PMSIIngressReplication && p.TunnelID.IsValid() {
			id = &bgp.IngressReplTunnelID{Value: p.TunnelID}
		} else {
			var v []byte
			if p.TunnelID.IsValid() {
				v = p.TunnelID.AsSlice()
			}
			id = &bgp.DefaultPmsiTunnelID{Value: v}
		}
		attrs = append(attrs, bgp.NewPathAttributePmsiTunnel(bgp.PmsiTunnelType(p.TunnelType), p.Flags&1 != 0, p.Label, id))
	}
	return attrs
}

// extCommunities lists the extended communities of a in upstream's order:
// its RouteEntry.set_route_targets keeps the non-RT communities in place and
// appends the RTs.
func extCommunities(a *route.Attrs) []uint64 {
	cs := make([]uint64, 0, len(a.RTs)+len(a.Encaps)+len(a.RTRecords)+len(a.OtherExtCommunities)+2)
	for _, e := range a.Encaps {
		if e != route.EncapDefault {
			cs = append(cs, 0x030c<<48|uint64(e)) // RFC 5512 §4.5
		}
	}
	for _, rt := range a.RTRecords {
		cs = append(cs, uint64(rt)&^(0xff<<48)|0x13<<48)
	}
	if a.HasLBOrder {
		cs = append(cs, 0x0314<<48|uint64(a.LBOrder)<<16)
	}
	if a.HasRedirect {
		cs = append(cs, uint64(a.Redirect)&^(0xffff<<48)|0x8008<<48) // RFC 5575 §7
	}
	cs = append(cs, a.OtherExtCommunities...)
	for _, rt := range a.RTs {
		cs = append(cs, uint64(rt))
	}
	return cs
}

// message serializes attrs with gobgp and frames them as an UPDATE.
func message(attrs []bgp.PathAttributeInterface) ([]byte, error) {
	b := make([]byte, headerLen+4, 128)
	for i := range 16 {
		b[i] = 0xff
	}
	b[18] = 2
	for _, p := range attrs {
		pb, err := p.Serialize()
		if err != nil {
			return nil, fmt.Errorf("cannot encode %s: %w", p.GetType(), err)
		}
		b = append(b, pb...)
	}
	if len(b) > MaxMessageLen {
		return nil, fmt.Errorf("UPDATE of %d bytes: %w", len(b), ErrTooLong)
	}
	binary.BigEndian.PutUint16(b[16:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[headerLen+2:], uint16(len(b)-headerLen-4))
	return b, nil
}

// rawNLRI is an NLRI kept as its wire bytes (gobgp's bgp.NLRI interface).
type rawNLRI string

func (n rawNLRI) Serialize(...*bgp.MarshallingOption) ([]byte, error) { return []byte(n), nil }
func (n rawNLRI) Len(...*bgp.MarshallingOption) int                   { return len(n) }
func (n rawNLRI) String() string                                      { return hex.EncodeToString([]byte(n)) }
func (n rawNLRI) MarshalJSON() ([]byte, error)                        { return json.Marshal(n.String()) }
func (n rawNLRI) Flat() map[string]string                             { return map[string]string{"nlri": n.String()} }
