package route

import (
	"net/netip"
	"slices"
	"strconv"
)

// Encap is a tunnel type of the BGP Encapsulation extended community
// (RFC 5512 §4.5, type 0x03 subtype 0x0c; IANA "BGP Tunnel Encapsulation
// Attribute Tunnel Types"). EncapDefault (0) stands for "no community":
// upstream treats a route without any Encapsulation community as "default"
// (plain MPLS) and never advertises it.
type Encap uint16

// Tunnel types used by bagpipe.
const (
	EncapDefault  Encap = 0
	EncapGRE      Encap = 2
	EncapVXLAN    Encap = 8
	EncapMPLS     Encap = 10
	EncapMPLSoUDP Encap = 13
)

// String names the encapsulation as upstream's looking glass does.
func (e Encap) String() string {
	switch e {
	case EncapDefault:
		return "default"
	case EncapGRE:
		return "GRE"
	case EncapVXLAN:
		return "VXLAN"
	case EncapMPLS:
		return "MPLS"
	case EncapMPLSoUDP:
		return "MPLS-in-UDP"
	}
	return "encap-" + strconv.Itoa(int(e))
}

// PMSI tunnel types (RFC 6514 §5).
const (
	PMSIIngressReplication uint8 = 6
)

// PMSI is the P-Multicast Service Interface Tunnel attribute (RFC 6514 §5),
// as E-VPN type-3 routes carry it (RFC 7432 §11.2): for ingress replication
// the tunnel identifier is the unicast IP of the sender and the label field
// carries the VNI for VXLAN (RFC 8365 §5.1.3).
type PMSI struct {
	Flags      uint8
	TunnelType uint8
	Label      uint32 // raw 24-bit field
	TunnelID   netip.Addr
}

// Attrs is a parsed set of path attributes. Attrs values are shared by all
// routes carrying the same attributes and must never be modified after they
// are attached to a published Route.
type Attrs struct {
	NextHop      netip.Addr
	Origin       uint8 // 0 IGP, 1 EGP, 2 INCOMPLETE
	ASPath       []uint32
	HasLocalPref bool
	LocalPref    uint32
	HasMED       bool
	MED          uint32
	// OriginatorID is the ORIGINATOR_ID a route reflector added
	// (RFC 4456 §8), invalid if absent. Decoded only: we never reflect.
	OriginatorID netip.Addr
	// RTs are the two-octet-AS route targets (0x00/0x02), in wire order.
	RTs []RT
	// Encaps are the tunnel types of the Encapsulation communities, in wire
	// order, without duplicates.
	Encaps []Encap
	// HasLBOrder/LBOrder: the Consistent Hash Sort Order community
	// (0x03/0x14, bagpipe/exabgp specific).
	HasLBOrder bool
	LBOrder    uint32
	// RTRecords are the RT-Record communities (subtype 0x13,
	// draft-ietf-bess-service-chaining), as RTs of the same AS/number.
	RTRecords []RT
	// Redirect is the FlowSpec redirect-to-VRF target (0x80/0x08,
	// RFC 5575 §7), when HasRedirect.
	HasRedirect bool
	Redirect    RT
	// PMSI is the PMSI tunnel attribute, or nil.
	PMSI *PMSI
	// OtherExtCommunities are the extended communities not decoded above,
	// as raw 8-byte values (kept so nothing received is silently lost from
	// the looking glass).
	OtherExtCommunities []uint64
	// Discarded lists RFC 7606 "attribute discard" outcomes applied while
	// decoding (for logs and the looking glass), or nil.
	Discarded []string
}

// LocalPrefOrDefault returns LOCAL_PREF, or 100 when absent (upstream's
// default in best-path comparison).
func (a *Attrs) LocalPrefOrDefault() uint32 {
	if a == nil || !a.HasLocalPref {
		return 100
	}
	return a.LocalPref
}

// EncapsOrDefault returns the advertised encapsulations, or [EncapDefault]
// when the route carries none (upstream's rule, §5.2 of the reference).
func (a *Attrs) EncapsOrDefault() []Encap {
	if a == nil || len(a.Encaps) == 0 {
		return []Encap{EncapDefault}
	}
	return a.Encaps
}

// HasRT reports whether rt is among the route targets.
func (a *Attrs) HasRT(rt RT) bool { return a != nil && slices.Contains(a.RTs, rt) }

// Equal compares two attribute sets field by field.
func (a *Attrs) Equal(b *Attrs) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	if a.NextHop != b.NextHop || a.OriginatorID != b.OriginatorID || a.Origin != b.Origin || a.HasLocalPref != b.HasLocalPref ||
		a.LocalPref != b.LocalPref || a.HasMED != b.HasMED || a.MED != b.MED ||
		a.HasLBOrder != b.HasLBOrder || a.LBOrder != b.LBOrder ||
		a.HasRedirect != b.HasRedirect || a.Redirect != b.Redirect {
		return false
	}
	if !slices.Equal(a.ASPath, b.ASPath) || !slices.Equal(a.RTs, b.RTs) || !slices.Equal(a.Encaps, b.Encaps) ||
		!slices.Equal(a.RTRecords, b.RTRecords) || !slices.Equal(a.OtherExtCommunities, b.OtherExtCommunities) {
		return false
	}
	if (a.PMSI == nil) != (b.PMSI == nil) || (a.PMSI != nil && *a.PMSI != *b.PMSI) {
		return false
	}
	return true
}

// WithRTs returns a copy of a whose route targets are rts (other extended
// communities kept), as upstream's set_route_targets does.
func (a *Attrs) WithRTs(rts []RT) *Attrs {
	c := *a
	c.RTs = slices.Clone(rts)
	return &c
}
