// Package route holds the compact, immutable route representation shared by
// every layer of bagpipe-bgp: the codec fills it from UPDATE messages, the
// engine indexes and dispatches it, VPN instances select best paths over it.
//
// A received route must cost little memory (the design target is ≤ 300 bytes
// per imported route, engine and VPN instance included), so:
//   - a Route is a small struct of scalars, one string key and two pointers;
//   - path attributes are parsed once and shared (interned) by all routes that
//     carry the same attribute bytes, see Attrs;
//   - the NLRI is kept as its canonical key bytes (the part RFC 4364/7432/4684
//     define as "the route"), plus the few non-key fields (label, ESI) needed
//     to rebuild the wire form.
package route

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Family is an AFI/SAFI pair packed as AFI<<16 | SAFI.
type Family uint32

// The address families bagpipe-bgp speaks.
const (
	FamilyAny     Family = 0           // wildcard in subscriptions
	FamilyVPNv4   Family = 1<<16 | 128 // ipv4/mpls-vpn, RFC 4364
	FamilyEVPN    Family = 25<<16 | 70 // l2vpn/evpn, RFC 7432
	FamilyRTC     Family = 1<<16 | 132 // ipv4/rtc, RFC 4684
	FamilyFlowVPN Family = 1<<16 | 134 // ipv4/flow-vpn, RFC 5575
)

// Families lists the families bagpipe-bgp can negotiate, in the order they
// are announced in OPEN (upstream order).
var Families = []Family{FamilyVPNv4, FamilyEVPN, FamilyFlowVPN, FamilyRTC}

// AFI returns the address family identifier.
func (f Family) AFI() uint16 { return uint16(f >> 16) }

// SAFI returns the subsequent address family identifier.
func (f Family) SAFI() uint8 { return uint8(f) }

// NewFamily builds a Family from AFI and SAFI.
func NewFamily(afi uint16, safi uint8) Family { return Family(uint32(afi)<<16 | uint32(safi)) }

// String renders the family as upstream's looking glass does ("ipv4/mpls-vpn").
func (f Family) String() string {
	switch f {
	case FamilyAny:
		return "*"
	case FamilyVPNv4:
		return "ipv4/mpls-vpn"
	case FamilyEVPN:
		return "l2vpn/evpn"
	case FamilyRTC:
		return "ipv4/rtc"
	case FamilyFlowVPN:
		return "ipv4/flow-vpn"
	}
	return fmt.Sprintf("%d/%d", f.AFI(), f.SAFI())
}

// RT is a route target extended community (RFC 4360 §4), kept as its 8 wire
// bytes read as a big-endian integer. Only the two-octet-AS form
// (type 0x00, subtype 0x02) is produced and matched, as upstream does; other
// forms received on routes are ignored for import (Attrs.RTs only lists
// two-octet-AS RTs).
type RT uint64

// RTAny is the wildcard RT in subscriptions ("*").
const RTAny RT = 0

// NewRT builds the two-octet-AS route target asn:nn.
func NewRT(asn uint16, nn uint32) RT {
	return RT(uint64(0x0002)<<48 | uint64(asn)<<32 | uint64(nn))
}

// ParseRT parses "asn:nn" with asn < 65536 and nn < 2^32 (the only form
// upstream accepts). Surrounding spaces are ignored.
func ParseRT(s string) (RT, error) {
	s = strings.TrimSpace(s)
	a, n, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("route target %q is not of the form <asn>:<number>", s)
	}
	asn, err := strconv.ParseUint(a, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("route target %q: AS number %q must be an integer from 0 to 65535", s, a)
	}
	nn, err := strconv.ParseUint(n, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("route target %q: number %q must be an integer from 0 to 4294967295", s, n)
	}
	return NewRT(uint16(asn), uint32(nn)), nil
}

// ASN returns the global administrator of a two-octet-AS RT.
func (r RT) ASN() uint16 { return uint16(r >> 32) }

// Number returns the local administrator of a two-octet-AS RT.
func (r RT) Number() uint32 { return uint32(r) }

// TwoOctetAS reports whether r is a two-octet-AS route target (0x00/0x02).
func (r RT) TwoOctetAS() bool { return r>>48 == 0x0002 }

// String renders "asn:nn" (or "*" for RTAny, or hex for other RT forms).
func (r RT) String() string {
	if r == RTAny {
		return "*"
	}
	if !r.TwoOctetAS() {
		return fmt.Sprintf("0x%016x", uint64(r))
	}
	return strconv.Itoa(int(r.ASN())) + ":" + strconv.FormatUint(uint64(r.Number()), 10)
}

// Bytes returns the 8 wire bytes of the extended community.
func (r RT) Bytes() [8]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(r))
	return b
}

// RD is a route distinguisher (RFC 4364 §4.2) as its 8 wire bytes.
type RD [8]byte

// NewRDIPv4 builds a type-1 RD <ip>:<n> (upstream: BGP local address : n).
func NewRDIPv4(ip netip.Addr, n uint16) RD {
	var rd RD
	rd[1] = 1
	a := ip.As4()
	copy(rd[2:6], a[:])
	binary.BigEndian.PutUint16(rd[6:], n)
	return rd
}

// String renders the RD as "admin:assigned" for the three RFC 4364 types.
func (rd RD) String() string {
	switch binary.BigEndian.Uint16(rd[:2]) {
	case 0:
		return fmt.Sprintf("%d:%d", binary.BigEndian.Uint16(rd[2:4]), binary.BigEndian.Uint32(rd[4:]))
	case 1:
		return fmt.Sprintf("%s:%d", netip.AddrFrom4([4]byte(rd[2:6])), binary.BigEndian.Uint16(rd[6:]))
	case 2:
		return fmt.Sprintf("%d:%d", binary.BigEndian.Uint32(rd[2:6]), binary.BigEndian.Uint16(rd[6:]))
	}
	return fmt.Sprintf("%x", rd[:])
}
