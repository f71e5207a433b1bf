package codec

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// errNLRI marks an NLRI that cannot be parsed; per RFC 7606 §5.3 this is
// handled as "session reset" (we do not implement "AFI/SAFI disable").
var errNLRI = errors.New("malformed NLRI")

// MPLS label values with a special meaning in withdrawals (RFC 8277 §2.4
// compatibility field; some speakers send 0).
const (
	withdrawLabel = 0x800000
	zeroLabel     = 0
)

// parseNLRIs appends the routes of the NLRI field b of family f to out.
// withdraw tells whether b comes from MP_UNREACH_NLRI.
func (d *Decoder) parseNLRIs(f route.Family, b []byte, withdraw bool, out []*route.Route) ([]*route.Route, error) {
	for len(b) > 0 {
		var (
			r   *route.Route
			n   int
			err error
		)
		switch f {
		case route.FamilyEVPN:
			r, n, err = d.parseEVPN(b)
		case route.FamilyVPNv4:
			r, n, err = d.parseVPNv4(b)
		case route.FamilyRTC:
			r, n, err = parseRTC(b)
		case route.FamilyFlowVPN:
			r, n, err = parseFlowVPN(b)
		default:
			return out, fmt.Errorf("family %s: %w", f, errNLRI)
		}
		if err != nil {
			return out, fmt.Errorf("%s NLRI: %w", f, err)
		}
		r.Family = f
		out = append(out, r)
		b = b[n:]
	}
	return out, nil
}

// countNLRIs counts the NLRI in b without building routes (for ignored
// families); -1 when f is not parseable here.
func (d *Decoder) countNLRIs(f route.Family, b []byte) (int, error) {
	if !supported(f) {
		return -1, nil
	}
	rs, err := d.parseNLRIs(f, b, false, d.scratchRoutes[:0])
	d.scratchRoutes = rs[:0]
	clear(rs)
	return len(rs), err
}

// parseEVPN parses one E-VPN NLRI (RFC 7432 §7): type(1) length(1) value.
func (d *Decoder) parseEVPN(b []byte) (*route.Route, int, error) {
	if len(b) < 2 || len(b) < 2+int(b[1]) {
		return nil, 0, fmt.Errorf("E-VPN route length overruns the NLRI field: %w", errNLRI)
	}
	typ, v := b[0], b[2:2+int(b[1])]
	n := 2 + len(v)
	var r *route.Route
	switch typ {
	case route.EVPNMACIP:
		// RD(8) ESI(10) ETag(4) MACLen(1) MAC(6) IPLen(1) IP(0/4/16)
		// Label1(3) [Label2(3)] — RFC 7432 §7.2.
		if len(v) < 8+10+4+1+6+1+3 || v[22] != 48 {
			return nil, 0, fmt.Errorf("E-VPN MAC/IP route of %d bytes is too short or its MAC length is not 48: %w", len(v), errNLRI)
		}
		ipBits := v[29]
		ipLen := int(ipBits) / 8
		if (ipBits != 0 && ipBits != 32 && ipBits != 128) || (len(v) != 30+ipLen+3 && len(v) != 30+ipLen+6) {
			return nil, 0, fmt.Errorf("E-VPN MAC/IP route of %d bytes with IP length %d bits: %w", len(v), ipBits, errNLRI)
		}
		k := d.key[:0]
		k = append(k, route.EVPNMACIP)
		k = append(k, v[0:8]...)   // RD
		k = append(k, v[18:22]...) // Ethernet tag
		k = append(k, v[23:29]...) // MAC
		k = append(k, byte(ipLen))
		k = append(k, v[30:30+ipLen]...)
		r = route.NewWithKey(k)
		d.key = k
		lab := v[30+ipLen:]
		r.Label = uint32(lab[0])<<16 | uint32(lab[1])<<8 | uint32(lab[2])
		esi := v[8:18]
		if len(lab) == 6 || !allZero(esi) {
			ex := make([]byte, 0, 13)
			ex = append(ex, esi...)
			r.Extra = string(append(ex, lab[3:]...))
		}
	case route.EVPNMulticast:
		// RD(8) ETag(4) IPLen(1) originator IP — RFC 7432 §7.3.
		if len(v) < 13 || (v[12] != 32 && v[12] != 128) || len(v) != 13+int(v[12])/8 {
			return nil, 0, fmt.Errorf("E-VPN inclusive multicast route of %d bytes: %w", len(v), errNLRI)
		}
		k := d.key[:0]
		k = append(k, route.EVPNMulticast)
		k = append(k, v[0:12]...)
		k = append(k, v[12]/8)
		k = append(k, v[13:]...)
		r = route.NewWithKey(k)
		d.key = k
	default:
		k := append(d.key[:0], typ)
		k = append(k, v...)
		r = route.NewWithKey(k)
		d.key = k
	}
	return r, n, nil
}

// parseVPNv4 parses one labeled VPN-IPv4 NLRI (RFC 4364 §4.3.4, RFC 8277):
// length in bits(1) | labels(3 each, up to bottom of stack) | RD(8) | prefix.
func (d *Decoder) parseVPNv4(b []byte) (*route.Route, int, error) {
	bits := int(b[0])
	n := 1 + (bits+7)/8
	if len(b) < n {
		return nil, 0, fmt.Errorf("VPNv4 prefix of %d bits overruns the NLRI field: %w", bits, errNLRI)
	}
	v := b[1:n]
	var first uint32
	labels := 0
	for {
		if len(v) < 3 {
			return nil, 0, fmt.Errorf("VPNv4 label stack without bottom of stack: %w", errNLRI)
		}
		l := uint32(v[0])<<16 | uint32(v[1])<<8 | uint32(v[2])
		v = v[3:]
		if labels == 0 {
			first = l
		}
		labels++
		if l&1 == 1 || l == withdrawLabel || l == zeroLabel {
			break
		}
	}
	plen := bits - 24*labels - 64
	if plen < 0 || plen > 32 || len(v) != 8+(plen+7)/8 {
		return nil, 0, fmt.Errorf("VPNv4 prefix of %d bits with %d labels: %w", bits, labels, errNLRI)
	}
	var a [4]byte
	copy(a[:], v[8:])
	// route.VPNv4Key layout: RD | prefix length | address (host bits zero).
	mask := ^uint32(0)
	if plen < 32 {
		mask = ^(^uint32(0) >> plen)
	}
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])&mask)
	k := d.key[:0]
	k = append(k, v[:8]...)
	k = append(k, byte(plen))
	k = append(k, a[:]...)
	d.key = k
	r := route.NewWithKey(k)
	r.Label = first >> 4
	return r, n, nil
}

// parseRTC parses one Route Target membership NLRI (RFC 4684 §4): length in
// bits(1) | origin AS(4) | route target prefix. The key is the wire form
// with the bits beyond the length cleared.
func parseRTC(b []byte) (*route.Route, int, error) {
	bits := int(b[0])
	if bits == 0 {
		return &route.Route{Key: route.RTCWildcardKey}, 1, nil
	}
	if bits < 32 || bits > 96 {
		return nil, 0, fmt.Errorf("RTC prefix length %d is not 0 or 32 to 96 (RFC 4684 §4): %w", bits, errNLRI)
	}
	n := 1 + (bits+7)/8
	if len(b) < n {
		return nil, 0, fmt.Errorf("RTC prefix of %d bits overruns the NLRI field: %w", bits, errNLRI)
	}
	k := []byte(string(b[:n]))
	if r := bits % 8; r != 0 {
		k[n-1] &= ^byte(0xff >> r)
	}
	return &route.Route{Key: string(k)}, n, nil
}

// parseFlowVPN parses one FlowSpec-VPN NLRI (RFC 5575 §4, §8): a 1-byte
// length (< 240) or a 2-byte length 0xfnnn, then RD(8) and the rules. The
// key is RD plus the rules as on the wire.
func parseFlowVPN(b []byte) (*route.Route, int, error) {
	l, h := int(b[0]), 1
	if b[0] >= 0xf0 {
		if len(b) < 2 {
			return nil, 0, fmt.Errorf("FlowSpec 2-byte length truncated: %w", errNLRI)
		}
		l, h = int(binary.BigEndian.Uint16(b)&0x0fff), 2
	}
	if len(b) < h+l || l < 8 {
		return nil, 0, fmt.Errorf("FlowSpec-VPN NLRI of %d bytes: %w", l, errNLRI)
	}
	return &route.Route{Key: string(b[h : h+l])}, h + l, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// appendNLRI appends the wire form of r's NLRI (the inverse of the parsers
// above).
func appendNLRI(b []byte, r *route.Route) ([]byte, error) {
	k := r.Key
	switch r.Family {
	case route.FamilyEVPN:
		if len(k) == 0 {
			return nil, errors.New("E-VPN route with an empty key")
		}
		switch k[0] {
		case route.EVPNMACIP:
			mac, ip, ok := r.MACIP()
			if !ok {
				return nil, fmt.Errorf("E-VPN MAC/IP key %x is malformed", k)
			}
			if len(r.Extra) != 0 && len(r.Extra) != 10 && len(r.Extra) != 13 {
				return nil, fmt.Errorf("E-VPN MAC/IP route %s: Extra must be ESI(10) [+ label(3)], got %d bytes", r, len(r.Extra))
			}
			ipLen := 0
			if ip.IsValid() {
				ipLen = ip.BitLen() / 8
			}
			extraLabel := 0
			if len(r.Extra) == 13 {
				extraLabel = 3
			}
			b = append(b, route.EVPNMACIP, byte(30+ipLen+3+extraLabel))
			b = append(b, k[1:9]...) // RD
			esi := r.ESI()
			b = append(b, esi[:]...)
			b = append(b, k[9:13]...) // ETag
			b = append(b, 48)
			b = append(b, mac[:]...)
			b = append(b, byte(ipLen*8))
			if ip.IsValid() {
				b = append(b, ip.AsSlice()...)
			}
			b = append(b, byte(r.Label>>16), byte(r.Label>>8), byte(r.Label))
			if extraLabel != 0 {
				b = append(b, r.Extra[10:]...)
			}
		case route.EVPNMulticast:
			ip, ok := r.Originator()
			if !ok || !ip.IsValid() {
				return nil, fmt.Errorf("E-VPN inclusive multicast key %x is malformed", k)
			}
			ab := ip.AsSlice()
			b = append(b, route.EVPNMulticast, byte(13+len(ab)))
			b = append(b, k[1:13]...)
			b = append(b, byte(len(ab)*8))
			b = append(b, ab...)
		default:
			if len(k)-1 > 255 {
				return nil, fmt.Errorf("E-VPN route type %d of %d bytes is too long", k[0], len(k)-1)
			}
			b = append(b, k[0], byte(len(k)-1))
			b = append(b, k[1:]...)
		}
	case route.FamilyVPNv4:
		p, ok := r.Prefix()
		if !ok {
			return nil, fmt.Errorf("VPNv4 key %x is malformed", k)
		}
		if r.Label > 0xfffff {
			return nil, fmt.Errorf("VPNv4 route %s: label %d does not fit 20 bits", r, r.Label)
		}
		l := r.Label<<4 | 1 // bottom of stack (RFC 3032)
		b = append(b, byte(24+64+p.Bits()), byte(l>>16), byte(l>>8), byte(l))
		b = append(b, k[:8]...)
		a := p.Addr().As4()
		b = append(b, a[:(p.Bits()+7)/8]...)
	case route.FamilyRTC:
		if len(k) == 0 || (k[0] != 0 && len(k) != 1+(int(k[0])+7)/8) {
			return nil, fmt.Errorf("RTC key %x is malformed", k)
		}
		b = append(b, k...)
	case route.FamilyFlowVPN:
		switch {
		case len(k) < 8 || len(k) > 0xfff:
			return nil, fmt.Errorf("FlowSpec-VPN key of %d bytes is malformed", len(k))
		case len(k) < 0xf0:
			b = append(b, byte(len(k)))
		default:
			b = append(b, 0xf0|byte(len(k)>>8), byte(len(k)))
		}
		b = append(b, k...)
	default:
		return nil, fmt.Errorf("cannot encode family %s", r.Family)
	}
	return b, nil
}
