package codec

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Path attribute type codes and flags (RFC 4271 §4.3, §5; RFC 4760).
const (
	attrFlagOptional   = 0x80
	attrFlagTransitive = 0x40
	attrFlagExtLen     = 0x10

	attrOrigin    = 1
	attrASPath    = 2
	attrNextHop   = 3
	attrMED       = 4
	attrLocalPref = 5
	attrMPReach   = 14
	attrMPUnreach = 15
	attrExtComm   = 16
	attrPMSI      = 22
)

// cacheGeneration bounds the attribute intern cache: the Decoder keeps the
// current generation and the previous one, so at most 2*cacheGeneration
// distinct attribute sets are remembered.
const cacheGeneration = 256

// Decoder turns UPDATE messages into routes; use one per BGP session (it is
// not safe for concurrent use).
//
// It interns path attributes: routes whose attributes are byte-identical
// (every path attribute other than MP_REACH_NLRI/MP_UNREACH_NLRI, plus the
// MP_REACH_NLRI family and next hop) share one *route.Attrs, parsed once. The
// cache holds the last 256 to 512 distinct attribute sets.
type Decoder struct {
	cur, old map[string]*cacheEntry
	// scratch buffers, reused across messages
	key           []byte // route key being built
	akey          []byte // attribute intern key
	syn           []byte // synthetic UPDATE body handed to gobgp
	scratchRoutes []*route.Route
}

// cacheEntry is the outcome of parsing one attribute set.
type cacheEntry struct {
	attrs    *route.Attrs
	discard  *AttributeDiscard
	withdraw *TreatAsWithdraw
}

// NewDecoder returns a Decoder with an empty intern cache.
func NewDecoder() *Decoder {
	return &Decoder{cur: make(map[string]*cacheEntry, cacheGeneration)}
}

// internalErrorReason starts the SessionReset reason of a recovered panic.
const internalErrorReason = "internal error while decoding a malformed UPDATE: "

func allFamilies(f route.Family) bool { return supported(f) }

// Decode decodes msg, a whole BGP UPDATE message including its 19-byte
// header. families tells which address families were negotiated (nil means
// all four bagpipe families); NLRI of other families are counted in
// Update.Ignored and otherwise ignored, IPv4 unicast included.
//
// The error, if any, is a *SessionReset, a *TreatAsWithdraw (the Update is
// returned with every parsed NLRI as a withdrawal) or an *AttributeDiscard
// (the Update is usable as is). An AFI/SAFI-disable outcome (RFC 7606 §5.3,
// malformed MP_REACH_NLRI/MP_UNREACH_NLRI) is reported as a SessionReset:
// bagpipe-bgp does not disable families on a live session.
func (d *Decoder) Decode(msg []byte, families func(route.Family) bool) (u Update, err error) {
	defer func() {
		if p := recover(); p != nil {
			u = Update{}
			err = reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, internalErrorReason+"%v", p)
		}
	}()
	if families == nil {
		families = allFamilies
	}
	// Message header, RFC 4271 §4.1 and §6.1.
	if len(msg) < headerLen {
		return u, reset(CodeMessageHeaderError, SubcodeBadMessageLength, nil, "message of %d bytes is shorter than the BGP header", len(msg))
	}
	for _, c := range msg[:16] {
		if c != 0xff {
			return u, reset(CodeMessageHeaderError, SubcodeConnectionNotSynchronized, nil, "marker is not all ones")
		}
	}
	if l := int(binary.BigEndian.Uint16(msg[16:18])); l != len(msg) || l < headerLen+4 || l > MaxMessageLen {
		return u, reset(CodeMessageHeaderError, SubcodeBadMessageLength, msg[16:18:18], "length field %d for a %d-byte UPDATE", l, len(msg))
	}
	if msg[18] != 2 {
		return u, reset(CodeMessageHeaderError, SubcodeBadMessageType, msg[18:19:19], "message type %d is not UPDATE", msg[18])
	}

	// UPDATE framing, RFC 4271 §4.3 and §6.3.
	body := msg[headerLen:]
	wl := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	if wl+2 > len(body) {
		return u, reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, "withdrawn routes length %d overruns the message", wl)
	}
	withdrawn := body[:wl]
	al := int(binary.BigEndian.Uint16(body[wl:]))
	body = body[wl+2:]
	if al > len(body) {
		return u, reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, "total path attribute length %d overruns the message", al)
	}
	attrs, nlri := body[:al], body[al:]

	// IPv4 unicast routes are not a bagpipe family: count them only.
	n, ok := countIPv4Prefixes(withdrawn)
	if !ok {
		return u, reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, "malformed IPv4 withdrawn routes")
	}
	u.Ignored += n
	if n, ok = countIPv4Prefixes(nlri); !ok {
		return u, reset(CodeUpdateMessageError, SubcodeInvalidNetworkField, nil, "malformed IPv4 NLRI")
	}
	u.Ignored += n
	if len(msg) == headerLen+4 {
		// RFC 4724 §2: End-of-RIB for IPv4 unicast.
		if f := route.NewFamily(1, 1); families(f) {
			u.EndOfRIB = append(u.EndOfRIB, f)
		}
		return u, nil
	}

	// Path attributes, RFC 4271 §4.3; RFC 7606 §4 for the framing errors.
	var reach, unreach, reachRaw, unreachRaw []byte
	k := d.akey[:0]
	framing := ""
	for a := attrs; len(a) > 0; {
		if len(a) < 3 {
			framing = "path attribute header truncated"
			break
		}
		flags, typ := a[0], a[1]
		hl, vl := 3, int(a[2])
		if flags&attrFlagExtLen != 0 {
			if len(a) < 4 {
				framing = "path attribute header truncated"
				break
			}
			hl, vl = 4, int(binary.BigEndian.Uint16(a[2:]))
		}
		if hl+vl > len(a) {
			framing = "path attribute " + attrName(typ) + " overruns the path attributes"
			break
		}
		raw := a[:hl+vl]
		a = a[hl+vl:]
		switch typ {
		case attrMPReach, attrMPUnreach:
			// RFC 7606 §3 (g): a repeated MP attribute resets the session.
			if (typ == attrMPReach && reach != nil) || (typ == attrMPUnreach && unreach != nil) {
				return Update{}, reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, "attribute %s appears twice (RFC 7606 §3)", bgp.BGPAttrType(typ))
			}
			if typ == attrMPReach {
				reach, reachRaw = raw[hl:], raw
			} else {
				unreach, unreachRaw = raw[hl:], raw
			}
		case attrNextHop:
			// Only meaningful for IPv4 unicast NLRI, which we ignore
			// (RFC 4760 §3).
		default:
			k = append(k, raw...)
		}
	}
	d.akey = k

	// MP_UNREACH_NLRI, RFC 4760 §4.
	if unreach != nil {
		if len(unreach) < 3 {
			return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, unreachRaw, "MP_UNREACH_NLRI of %d bytes", len(unreach))
		}
		f := route.NewFamily(binary.BigEndian.Uint16(unreach), unreach[2])
		switch {
		case !families(f) || !supported(f):
			n, err := d.countNLRIs(f, unreach[3:])
			if err != nil {
				return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, unreachRaw, "MP_UNREACH_NLRI: %v", err)
			}
			u.Ignored += ignoredCount(n)
		case len(unreach) == 3 && reach == nil:
			u.EndOfRIB = append(u.EndOfRIB, f) // RFC 4724 §2
		default:
			u.Withdrawn, err = d.parseNLRIs(f, unreach[3:], true, u.Withdrawn)
			if err != nil {
				return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, unreachRaw, "MP_UNREACH_NLRI: %v", err)
			}
		}
	}
	if reach == nil {
		if framing != "" {
			// The NLRI may sit beyond the broken attribute: we cannot
			// withdraw what we cannot find (RFC 7606 §4, §5.3).
			return Update{}, reset(CodeUpdateMessageError, SubcodeAttributeLengthError, nil, "%s", framing)
		}
		return u, nil
	}

	// MP_REACH_NLRI, RFC 4760 §3: AFI(2) SAFI(1) NHLen(1) NH Reserved(1) NLRI.
	if len(reach) < 5 || len(reach) < 5+int(reach[3]) {
		return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, reachRaw, "MP_REACH_NLRI of %d bytes is truncated", len(reach))
	}
	f := route.NewFamily(binary.BigEndian.Uint16(reach), reach[2])
	nhl := int(reach[3])
	if !families(f) || !supported(f) {
		n, err := d.countNLRIs(f, reach[5+nhl:])
		if err != nil {
			return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, reachRaw, "MP_REACH_NLRI: %v", err)
		}
		u.Ignored += ignoredCount(n)
		if framing != "" {
			return u, &TreatAsWithdraw{Reason: framing}
		}
		return u, nil
	}
	adv, err := d.parseNLRIs(f, reach[5+nhl:], false, make([]*route.Route, 0, nlriEstimate(f, len(reach)-5-nhl)))
	if err != nil {
		return Update{}, reset(CodeUpdateMessageError, SubcodeOptionalAttributeError, reachRaw, "MP_REACH_NLRI: %v", err)
	}
	if framing != "" {
		u.Withdrawn = asWithdrawals(u.Withdrawn, adv)
		return u, &TreatAsWithdraw{Reason: framing}
	}
	if len(adv) == 0 {
		return u, nil
	}
	// Intern key: the other attributes, then MP_REACH flags, family and next hop.
	nonMP := len(k)
	k = append(k, reachRaw[0])
	k = append(k, reach[:4+nhl]...)
	d.akey = k
	e := d.lookup(k)
	if e == nil {
		e, err = d.parseAttrs(k[:nonMP], reachRaw[0], reach[:4+nhl], f)
		if err != nil {
			return Update{}, err
		}
		d.store(string(k), e)
	}
	if e.withdraw != nil {
		u.Withdrawn = asWithdrawals(u.Withdrawn, adv)
		return u, e.withdraw
	}
	for _, r := range adv {
		r.Attrs = e.attrs
	}
	u.Advertised = adv
	if e.discard != nil {
		return u, e.discard
	}
	return u, nil
}

// nlriEstimate guesses how many NLRI of family f fit n bytes (at least 1),
// to size the route slice once.
func nlriEstimate(f route.Family, n int) int {
	typical := 39 // E-VPN MAC/IP with an IPv4 address
	switch f {
	case route.FamilyVPNv4:
		typical = 16
	case route.FamilyRTC:
		typical = 13
	case route.FamilyFlowVPN:
		typical = 14
	}
	return max(1, min(n/typical, 512))
}

// ignoredCount turns countNLRIs' result into a count of ignored NLRI: an
// attribute of a family we cannot parse counts as one.
func ignoredCount(n int) int {
	if n < 0 {
		return 1
	}
	return n
}

func asWithdrawals(w, adv []*route.Route) []*route.Route {
	for _, r := range adv {
		r.Attrs = nil
		w = append(w, r)
	}
	return w
}

// countIPv4Prefixes validates and counts RFC 4271 §4.3 IPv4 prefixes.
func countIPv4Prefixes(b []byte) (int, bool) {
	n := 0
	for len(b) > 0 {
		if b[0] > 32 || len(b) < 1+(int(b[0])+7)/8 {
			return n, false
		}
		b = b[1+(int(b[0])+7)/8:]
		n++
	}
	return n, true
}

func (d *Decoder) lookup(k []byte) *cacheEntry {
	if e := d.cur[string(k)]; e != nil {
		return e
	}
	if e := d.old[string(k)]; e != nil {
		d.store(string(k), e)
		return e
	}
	return nil
}

func (d *Decoder) store(k string, e *cacheEntry) {
	if len(d.cur) >= cacheGeneration {
		d.old, d.cur = d.cur, make(map[string]*cacheEntry, cacheGeneration)
	}
	d.cur[k] = e
}

// parseAttrs parses an attribute set the intern cache has not seen, with
// gobgp's own RFC 7606 classification: BGPUpdate.DecodeFromBytes then
// ValidateUpdateMsg, over a synthetic UPDATE holding the attributes and an
// MP_REACH_NLRI stripped of its NLRI.
func (d *Decoder) parseAttrs(nonMP []byte, reachFlags byte, reachHdr []byte, f route.Family) (*cacheEntry, error) {
	s := append(d.syn[:0], 0, 0, 0, 0)
	s = append(s, nonMP...)
	if reachFlags&attrFlagExtLen != 0 {
		s = append(s, reachFlags, attrMPReach, 0, byte(len(reachHdr)+1))
	} else {
		s = append(s, reachFlags, attrMPReach, byte(len(reachHdr)+1))
	}
	s = append(s, reachHdr...)
	s = append(s, 0) // reserved
	binary.BigEndian.PutUint16(s[2:], uint16(len(s)-4))
	d.syn = s

	var m bgp.BGPUpdate
	var worst *bgp.MessageError
	note := func(err error) error {
		if err == nil {
			return nil
		}
		var me *bgp.MessageError
		if !errors.As(err, &me) {
			return reset(CodeUpdateMessageError, SubcodeMalformedAttributeList, nil, "path attributes: %v", err)
		}
		if worst == nil || me.ErrorHandling > worst.ErrorHandling {
			worst = me
		}
		return nil
	}
	if err := note(m.DecodeFromBytes(s)); err != nil {
		return nil, err
	}
	if worst == nil || worst.ErrorHandling < bgp.ERROR_HANDLING_TREAT_AS_WITHDRAW {
		rfs := map[bgp.Family]bgp.BGPAddPathMode{bgp.RF_IPv4_UC: bgp.BGP_ADD_PATH_NONE, bgp.Family(f): bgp.BGP_ADD_PATH_NONE}
		_, verr := bgp.ValidateUpdateMsg(&m, rfs, false, false, true)
		if err := note(verr); err != nil {
			return nil, err
		}
	}
	if worst != nil {
		switch worst.ErrorHandling {
		case bgp.ERROR_HANDLING_SESSION_RESET, bgp.ERROR_HANDLING_AFISAFI_DISABLE:
			code, sub := worst.TypeCode, worst.SubTypeCode
			if code == 0 {
				code, sub = CodeUpdateMessageError, SubcodeMalformedAttributeList
			}
			return nil, reset(code, sub, worst.Data, "path attributes: %s", worst.Message)
		case bgp.ERROR_HANDLING_TREAT_AS_WITHDRAW:
			return &cacheEntry{withdraw: &TreatAsWithdraw{Reason: worst.Message}}, nil
		}
	}

	a := &route.Attrs{}
	present := map[bgp.BGPAttrType]bool{}
	for _, p := range m.PathAttributes {
		present[p.GetType()] = true
		switch p := p.(type) {
		case *bgp.PathAttributeOrigin:
			a.Origin = p.Value
		case *bgp.PathAttributeAsPath:
			for _, seg := range p.Value {
				a.ASPath = append(a.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeMultiExitDisc:
			a.HasMED, a.MED = true, p.Value
		case *bgp.PathAttributeLocalPref:
			a.HasLocalPref, a.LocalPref = true, p.Value
		case *bgp.PathAttributeOriginatorId:
			a.OriginatorID = p.Value
		case *bgp.PathAttributeMpReachNLRI:
			if f != route.FamilyFlowVPN { // RFC 8955 §4: ignored on receipt
				a.NextHop = p.Nexthop
			}
		}
	}
	// Extended communities and PMSI from their wire bytes (first
	// occurrence, as gobgp keeps), then the discarded attributes.
	seen := map[byte]bool{}
	for b := nonMP; len(b) > 0; {
		flags, typ := b[0], b[1]
		hl, vl := 3, int(b[2])
		if flags&attrFlagExtLen != 0 {
			hl, vl = 4, int(binary.BigEndian.Uint16(b[2:]))
		}
		v := b[hl : hl+vl]
		b = b[hl+vl:]
		switch {
		case seen[typ]:
			a.Discarded = append(a.Discarded, attrName(typ)+" (repeated)")
			continue
		case !present[bgp.BGPAttrType(typ)]:
			a.Discarded = append(a.Discarded, attrName(typ))
		case typ == attrExtComm:
			fillExtCommunities(a, v)
		case typ == attrPMSI:
			a.PMSI = parsePMSI(v)
		}
		seen[typ] = true
	}
	e := &cacheEntry{attrs: a}
	if len(a.Discarded) > 0 {
		e.discard = &AttributeDiscard{Attrs: a.Discarded}
	}
	return e, nil
}

// parsePMSI reads a PMSI Tunnel attribute value (RFC 6514 §5): flags(1)
// type(1) label(3) tunnel identifier; gobgp has checked the length.
func parsePMSI(v []byte) *route.PMSI {
	p := &route.PMSI{Flags: v[0], TunnelType: v[1], Label: uint32(v[2])<<16 | uint32(v[3])<<8 | uint32(v[4])}
	if id, ok := netip.AddrFromSlice(v[5:]); ok {
		p.TunnelID = id
	}
	return p
}

// fillExtCommunities sorts the extended communities (RFC 4360) of v into a.
func fillExtCommunities(a *route.Attrs, v []byte) {
	for ; len(v) >= 8; v = v[8:] {
		c := binary.BigEndian.Uint64(v)
		typ, sub := byte(c>>56), byte(c>>48)
		switch {
		case typ == 0x00 && sub == 0x02: // two-octet-AS route target, RFC 4360 §4
			a.RTs = append(a.RTs, route.RT(c))
		case typ == 0x03 && sub == 0x0c && uint32(c>>16) == 0 && uint16(c) != 0:
			// Encapsulation, RFC 5512 §4.5: 4 reserved bytes, tunnel
			// type (0 is reserved, and means "none" in route.Encap).
			if e := route.Encap(uint16(c)); !containsEncap(a.Encaps, e) {
				a.Encaps = append(a.Encaps, e)
			}
		case typ == 0x03 && sub == 0x14 && uint16(c) == 0 && !a.HasLBOrder:
			// Consistent hash sort order: 4-byte order, 2 reserved bytes.
			a.HasLBOrder, a.LBOrder = true, uint32(c>>16)
		case typ <= 0x02 && sub == 0x13: // RT-Record, as an RT of the same type
			a.RTRecords = append(a.RTRecords, route.RT(c&^(0xff<<48)|0x02<<48))
		case typ == 0x80 && sub == 0x08 && !a.HasRedirect: // redirect to VRF, RFC 5575 §7
			a.HasRedirect, a.Redirect = true, route.RT(c&^(0xffff<<48)|0x0002<<48)
		default:
			a.OtherExtCommunities = append(a.OtherExtCommunities, c)
		}
	}
}

func containsEncap(es []route.Encap, e route.Encap) bool {
	for _, x := range es {
		if x == e {
			return true
		}
	}
	return false
}

// attrName names a path attribute type as RFC 4271 and its successors do
// ("ORIGIN", "AGGREGATOR", ...), or "attribute <n>" when unknown.
func attrName(typ byte) string {
	s := bgp.BGPAttrType(typ).String()
	if n, ok := strings.CutPrefix(s, "BGP_ATTR_TYPE_"); ok {
		return n
	}
	return "attribute " + strconv.Itoa(int(typ))
}
