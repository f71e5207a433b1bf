package route

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Source identifies who published a route into the engine: a VPN instance,
// a BGP peer, or the BGP manager itself (RTC routes). Sources are created by
// the engine (engine.Register) and compared by pointer.
type Source struct {
	Name string // worker name: "EVI-3", "VRF-1", "BGP-192.0.2.1", "BGPManager"
	Peer bool   // true for BGP peers: routes from a peer never go to another peer
	ID   uint32 // engine-assigned, unique while registered
}

// Route is one BGP route: an NLRI plus shared path attributes plus where it
// came from. Routes are immutable once published; a change is a new Route
// that replaces the old one (same Source, same Family and Key).
type Route struct {
	Family Family
	// Label is the first label of the NLRI. For E-VPN it is the raw 24-bit
	// field (a VNI when the encapsulation is VXLAN, RFC 8365 §5.1.3); for
	// VPNv4 it is the 20-bit MPLS label value (the BoS bit stripped).
	Label uint32
	// Key is the canonical NLRI key: the bytes that identify "the route" per
	// the family's RFC (see the Key layouts below). Two routes with the same
	// Family and Key from the same Source replace each other.
	Key string
	// Extra holds the NLRI fields that are not part of the key and are rare:
	// for E-VPN type 2, the 10-byte ESI followed by the optional second
	// 3-byte label, present only when the ESI is non-zero or a second label
	// exists. Empty for most routes.
	Extra string
	// Attrs are the path attributes, shared by every route that carries the
	// same ones. Nil for withdrawals decoded from the wire.
	Attrs *Attrs
	// Source is the publisher (set by the engine's Publish caller).
	Source *Source
}

// Key layouts (byte offsets in Route.Key):
//
// E-VPN (RFC 7432 §7): Key[0] is the route type.
//
//	type 2 MAC/IP (§7.2; key = RD, Ethernet Tag, MAC, IP):
//	    [0]=2 | RD(8) | ETag(4) | MAC(6) | IPLen(1: 0, 4 or 16 bytes) | IP
//	type 3 Inclusive Multicast Ethernet Tag (§7.3):
//	    [0]=3 | RD(8) | ETag(4) | IPLen(1: 4 or 16 bytes) | originator IP
//	other types: [0]=type | the route-type-specific bytes as on the wire
//
// VPNv4 (RFC 4364 §4.3.4; label excluded from the key):
//
//	RD(8) | prefix length(1) | 4 address bytes (host bits zero)
//
// RTC (RFC 4684 §4): prefix length in bits(1) | origin AS(4) | RT bytes
// (the wildcard default route is the single byte 0).
//
// FlowSpec-VPN (RFC 5575 §8): RD(8) | the encoded rules.
const (
	EVPNEthernetAD   = 1
	EVPNMACIP        = 2
	EVPNMulticast    = 3
	EVPNEthSegment   = 4
	EVPNIPPrefix     = 5
	evpnMACIPMinLen  = 1 + 8 + 4 + 6 + 1
	evpnIMETMinLen   = 1 + 8 + 4 + 1
	vpnv4KeyLen      = 8 + 1 + 4
	flowVPNKeyMinLen = 8
)

// MAC is a 48-bit Ethernet address.
type MAC [6]byte

// ParseMAC parses the usual textual forms of a 48-bit MAC address.
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return MAC{}, fmt.Errorf("MAC address %q is not valid", s)
	}
	return MAC(hw), nil
}

// String renders aa:bb:cc:dd:ee:ff.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

func appendIP(b []byte, ip netip.Addr) []byte {
	if !ip.IsValid() {
		return append(b, 0)
	}
	ab := ip.AsSlice()
	b = append(b, byte(len(ab)))
	return append(b, ab...)
}

func readIP(b []byte) (netip.Addr, bool) {
	if len(b) < 1 || len(b) != 1+int(b[0]) {
		return netip.Addr{}, false
	}
	switch b[0] {
	case 0:
		return netip.Addr{}, true
	case 4:
		return netip.AddrFrom4([4]byte(b[1:5])), true
	case 16:
		return netip.AddrFrom16([16]byte(b[1:17])), true
	}
	return netip.Addr{}, false
}

// EVPNMACIPKey builds the key of an E-VPN type-2 route.
func EVPNMACIPKey(rd RD, etag uint32, mac MAC, ip netip.Addr) string {
	b := make([]byte, 0, evpnMACIPMinLen+16)
	b = append(b, EVPNMACIP)
	b = append(b, rd[:]...)
	b = binary.BigEndian.AppendUint32(b, etag)
	b = append(b, mac[:]...)
	return string(appendIP(b, ip))
}

// EVPNMulticastKey builds the key of an E-VPN type-3 route.
func EVPNMulticastKey(rd RD, etag uint32, originator netip.Addr) string {
	b := make([]byte, 0, evpnIMETMinLen+16)
	b = append(b, EVPNMulticast)
	b = append(b, rd[:]...)
	b = binary.BigEndian.AppendUint32(b, etag)
	return string(appendIP(b, originator))
}

// VPNv4Key builds the key of a VPNv4 route.
func VPNv4Key(rd RD, p netip.Prefix) string {
	p = p.Masked()
	a := p.Addr().As4()
	b := make([]byte, 0, vpnv4KeyLen)
	b = append(b, rd[:]...)
	b = append(b, byte(p.Bits()))
	return string(append(b, a[:]...))
}

// RTCKey builds the key of an RTC route for (origin AS, RT); RTCWildcardKey
// is the default (match-all) RTC route.
func RTCKey(originAS uint32, rt RT) string {
	b := make([]byte, 0, 13)
	b = append(b, 96)
	b = binary.BigEndian.AppendUint32(b, originAS)
	rb := rt.Bytes()
	return string(append(b, rb[:]...))
}

// RTCWildcardKey is the key of the RTC default route (prefix length 0).
const RTCWildcardKey = "\x00"

// EVPNType returns the E-VPN route type of an E-VPN route (0 otherwise).
func (r *Route) EVPNType() uint8 {
	if r.Family != FamilyEVPN || len(r.Key) == 0 {
		return 0
	}
	return r.Key[0]
}

// RD returns the route distinguisher of E-VPN type 2/3, VPNv4 and
// FlowSpec-VPN routes.
func (r *Route) RD() (RD, bool) {
	switch r.Family {
	case FamilyEVPN:
		if t := r.EVPNType(); (t == EVPNMACIP || t == EVPNMulticast) && len(r.Key) >= 9 {
			return RD([]byte(r.Key[1:9])), true
		}
	case FamilyVPNv4, FamilyFlowVPN:
		if len(r.Key) >= 8 {
			return RD([]byte(r.Key[:8])), true
		}
	}
	return RD{}, false
}

// ETag returns the Ethernet tag of an E-VPN type 2/3 route.
func (r *Route) ETag() uint32 {
	if t := r.EVPNType(); (t == EVPNMACIP || t == EVPNMulticast) && len(r.Key) >= 13 {
		return binary.BigEndian.Uint32([]byte(r.Key[9:13]))
	}
	return 0
}

// MACIP returns the MAC and (possibly invalid) IP of an E-VPN type-2 route.
func (r *Route) MACIP() (MAC, netip.Addr, bool) {
	if r.EVPNType() != EVPNMACIP || len(r.Key) < evpnMACIPMinLen {
		return MAC{}, netip.Addr{}, false
	}
	mac := MAC([]byte(r.Key[13:19]))
	ip, ok := readIP([]byte(r.Key[19:]))
	return mac, ip, ok
}

// Originator returns the originating router IP of an E-VPN type-3 route.
func (r *Route) Originator() (netip.Addr, bool) {
	if r.EVPNType() != EVPNMulticast || len(r.Key) < evpnIMETMinLen {
		return netip.Addr{}, false
	}
	return readIP([]byte(r.Key[13:]))
}

// Prefix returns the IPv4 prefix of a VPNv4 route.
func (r *Route) Prefix() (netip.Prefix, bool) {
	if r.Family != FamilyVPNv4 || len(r.Key) != vpnv4KeyLen {
		return netip.Prefix{}, false
	}
	p := netip.PrefixFrom(netip.AddrFrom4([4]byte([]byte(r.Key[9:13]))), int(r.Key[8]))
	return p, p.IsValid()
}

// RTCTarget returns the (origin AS, RT) of an RTC route; wildcard is true
// for the default RTC route, which matches every RT.
func (r *Route) RTCTarget() (originAS uint32, rt RT, wildcard bool, ok bool) {
	if r.Family != FamilyRTC || len(r.Key) == 0 {
		return 0, 0, false, false
	}
	if r.Key[0] == 0 {
		return 0, RTAny, true, true
	}
	if r.Key[0] != 96 || len(r.Key) != 13 {
		// Partial RT prefixes (RFC 4684 §4) are treated as wildcards: we
		// cannot filter on them precisely, and sending more is safe.
		return 0, RTAny, true, true
	}
	return binary.BigEndian.Uint32([]byte(r.Key[1:5])), RT(binary.BigEndian.Uint64([]byte(r.Key[5:13]))), false, true
}

// ESI returns the Ethernet Segment Identifier of a type-2 route (zero when
// not stored).
func (r *Route) ESI() [10]byte {
	var esi [10]byte
	if len(r.Extra) >= 10 {
		copy(esi[:], r.Extra[:10])
	}
	return esi
}

// RTs returns the route targets of the route's attributes.
func (r *Route) RTs() []RT {
	if r.Attrs == nil {
		return nil
	}
	return r.Attrs.RTs
}

// NextHop returns the BGP next hop.
func (r *Route) NextHop() netip.Addr {
	if r.Attrs == nil {
		return netip.Addr{}
	}
	return r.Attrs.NextHop
}

// SameNLRI reports whether a and b are the same destination (Family, Key).
func SameNLRI(a, b *Route) bool { return a.Family == b.Family && a.Key == b.Key }

// Equal reports whether a and b carry the same NLRI (key and non-key
// fields) and equal attributes. The source is not compared.
func Equal(a, b *Route) bool {
	if a == b {
		return true
	}
	return a.Family == b.Family && a.Key == b.Key && a.Label == b.Label && a.Extra == b.Extra && a.Attrs.Equal(b.Attrs)
}

// String renders the NLRI the way the looking glass shows it.
func (r *Route) String() string {
	rd, _ := r.RD()
	switch r.Family {
	case FamilyEVPN:
		switch r.EVPNType() {
		case EVPNMACIP:
			mac, ip, _ := r.MACIP()
			s := fmt.Sprintf("EVPN:MAC:%s:%d:%s", rd, r.ETag(), mac)
			if ip.IsValid() {
				s += ":" + ip.String()
			}
			return s
		case EVPNMulticast:
			ip, _ := r.Originator()
			return fmt.Sprintf("EVPN:Multicast:%s:%d:%s", rd, r.ETag(), ip)
		}
		return fmt.Sprintf("EVPN:type%d:%x", r.EVPNType(), r.Key[1:])
	case FamilyVPNv4:
		p, _ := r.Prefix()
		return fmt.Sprintf("%s:%s", rd, p)
	case FamilyRTC:
		as, rt, wild, _ := r.RTCTarget()
		if wild {
			return "RTC:default"
		}
		return fmt.Sprintf("RTC<%d>:target:%s", as, rt)
	case FamilyFlowVPN:
		return fmt.Sprintf("flow-vpn:%s:%x", rd, r.Key[8:])
	}
	return fmt.Sprintf("%s:%x", r.Family, r.Key)
}
