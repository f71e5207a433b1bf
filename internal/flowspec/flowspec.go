// Package flowspec converts traffic classifiers to and from the rules of a
// FlowSpec NLRI (RFC 5575 §4, updated by RFC 8955 §4.2), as bagpipe-bgp
// uses them for FlowSpec-VPN redirect-to-VRF (reference §4.7, §5.7).
//
// Only the components upstream uses are handled: destination prefix (1),
// source prefix (2), IP protocol (3), destination port (5) and source port
// (6); port (4) and every other component make decoding fail. The rules
// bytes are what route.Route.Key holds after the RD of a FlowSpec-VPN
// route: the components in increasing type order, without the NLRI length.
package flowspec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// Component types (RFC 8955 §4.2.2).
const (
	TypeDestinationPrefix = 1
	TypeSourcePrefix      = 2
	TypeIPProtocol        = 3
	TypePort              = 4
	TypeDestinationPort   = 5
	TypeSourcePort        = 6
)

// Numeric operator bits (RFC 8955 §4.2.1.1).
const (
	opEnd   = 0x80 // e: last operator of the component
	opAnd   = 0x40 // a: AND with the previous operator (else OR)
	opLen   = 0x30 // len: value length 1 << len bytes
	opLT    = 0x04
	opGT    = 0x02
	opEQ    = 0x01
	opCmp   = opLT | opGT | opEQ
	opValid = opEnd | opAnd | opLen | opCmp
)

// ErrMalformed reports rules bytes that are not a valid FlowSpec encoding.
var ErrMalformed = errors.New("malformed FlowSpec rules")

// ErrUnsupported reports valid rules that a Classifier cannot express.
var ErrUnsupported = errors.New("FlowSpec rule not supported")

// Encode returns the rules of c (RFC 8955 §4.2, components in increasing
// type order). Ports follow upstream's rules (reference §4.7): a single
// value is "= v"; a range min:max is "< max" when min is 0, "> min" when max
// is 65535, else ">= min AND <= max". The protocol is "= p" when not 0.
// Prefixes must be IPv4 (IPv6 FlowSpec uses an offset byte, RFC 8956, not
// spoken here).
func Encode(c dataplane.Classifier) ([]byte, error) {
	var b []byte
	var err error
	if c.DestinationPrefix.IsValid() {
		if b, err = appendPrefix(b, TypeDestinationPrefix, c.DestinationPrefix); err != nil {
			return nil, err
		}
	}
	if c.SourcePrefix.IsValid() {
		if b, err = appendPrefix(b, TypeSourcePrefix, c.SourcePrefix); err != nil {
			return nil, err
		}
	}
	if c.Protocol != 0 {
		b = append(b, TypeIPProtocol, opEnd|opEQ, c.Protocol)
	}
	if c.DestinationPort != (dataplane.PortRange{}) {
		if b, err = appendPorts(b, TypeDestinationPort, c.DestinationPort); err != nil {
			return nil, err
		}
	}
	if c.SourcePort != (dataplane.PortRange{}) {
		if b, err = appendPorts(b, TypeSourcePort, c.SourcePort); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendPrefix encodes an IPv4 prefix component (RFC 8955 §4.2.2.1-2):
// type, length in bits, the significant bytes of the masked prefix.
func appendPrefix(b []byte, typ byte, p netip.Prefix) ([]byte, error) {
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("FlowSpec prefix %s: only IPv4 prefixes are supported (RFC 8955): %w", p, ErrUnsupported)
	}
	p = p.Masked()
	a := p.Addr().As4()
	b = append(b, typ, byte(p.Bits()))
	return append(b, a[:(p.Bits()+7)/8]...), nil
}

// appendNum appends one numeric operator and its value in the smallest
// length (1 or 2 bytes for ports, as exabgp does).
func appendNum(b []byte, op byte, v uint16) []byte {
	if v < 256 {
		return append(b, op, byte(v))
	}
	return binary.BigEndian.AppendUint16(append(b, op|0x10), v)
}

func appendPorts(b []byte, typ byte, r dataplane.PortRange) ([]byte, error) {
	if r.Min > r.Max {
		return nil, fmt.Errorf("FlowSpec port range %d:%d: the minimum is above the maximum", r.Min, r.Max)
	}
	b = append(b, typ)
	switch {
	case r.Min == r.Max:
		return appendNum(b, opEnd|opEQ, r.Min), nil
	case r.Min == 0:
		return appendNum(b, opEnd|opLT, r.Max), nil
	case r.Max == 65535:
		return appendNum(b, opEnd|opGT, r.Min), nil
	}
	b = appendNum(b, opGT|opEQ, r.Min)
	return appendNum(b, opEnd|opAnd|opLT|opEQ, r.Max), nil
}

// Decode parses rules bytes into a classifier (the inverse of Encode).
// Upper bounds "< v" become Max = v-1 and lower bounds "> v" Min = v+1, so
// a range upstream encoded as "< max" comes back one smaller, as it does
// upstream. Components 4 (port) and above 6, OR-ed port values and
// repeated components are ErrUnsupported; bad bytes are ErrMalformed.
func Decode(rules []byte) (dataplane.Classifier, error) {
	var c dataplane.Classifier
	last := 0
	for len(rules) > 0 {
		typ := int(rules[0])
		if typ <= last {
			return c, fmt.Errorf("component type %d after type %d (RFC 8955 §4.2: strictly increasing order): %w", typ, last, ErrMalformed)
		}
		last = typ
		rules = rules[1:]
		var n int
		var err error
		switch typ {
		case TypeDestinationPrefix, TypeSourcePrefix:
			var p netip.Prefix
			p, n, err = decodePrefix(rules)
			if typ == TypeDestinationPrefix {
				c.DestinationPrefix = p
			} else {
				c.SourcePrefix = p
			}
		case TypeIPProtocol:
			var r dataplane.PortRange
			r, n, err = decodeRange(rules, 255)
			if err == nil && r.Min != r.Max {
				err = fmt.Errorf("IP protocol range %d:%d: only \"= protocol\" is supported: %w", r.Min, r.Max, ErrUnsupported)
			}
			c.Protocol = uint8(r.Min)
		case TypeDestinationPort:
			c.DestinationPort, n, err = decodeRange(rules, 65535)
		case TypeSourcePort:
			c.SourcePort, n, err = decodeRange(rules, 65535)
		default:
			return c, fmt.Errorf("component type %d (only 1, 2, 3, 5 and 6 are used by bagpipe): %w", typ, ErrUnsupported)
		}
		if err != nil {
			return c, fmt.Errorf("component type %d: %w", typ, err)
		}
		rules = rules[n:]
	}
	return c, nil
}

func decodePrefix(b []byte) (netip.Prefix, int, error) {
	if len(b) < 1 {
		return netip.Prefix{}, 0, fmt.Errorf("prefix length missing: %w", ErrMalformed)
	}
	bits := int(b[0])
	n := (bits + 7) / 8
	if bits > 32 || len(b) < 1+n {
		return netip.Prefix{}, 0, fmt.Errorf("IPv4 prefix of %d bits with %d bytes left: %w", bits, len(b)-1, ErrMalformed)
	}
	var a [4]byte
	copy(a[:], b[1:1+n])
	p := netip.PrefixFrom(netip.AddrFrom4(a), bits)
	if p.Masked() != p {
		return netip.Prefix{}, 0, fmt.Errorf("prefix %s has host bits set: %w", p, ErrMalformed)
	}
	return p, 1 + n, nil
}

// decodeRange reads a numeric operator list and turns it into an inclusive
// range; only a single "= v", a single bound, or two bounds ANDed are
// accepted.
func decodeRange(b []byte, max uint32) (dataplane.PortRange, int, error) {
	lo, hi := uint32(0), max
	i, count := 0, 0
	for {
		if i >= len(b) {
			return dataplane.PortRange{}, 0, fmt.Errorf("operator list not terminated (no end-of-list bit): %w", ErrMalformed)
		}
		op := b[i]
		l := 1 << ((op & opLen) >> 4)
		if op&^opValid != 0 || i+1+l > len(b) {
			return dataplane.PortRange{}, 0, fmt.Errorf("numeric operator 0x%02x with %d bytes left: %w", op, len(b)-i-1, ErrMalformed)
		}
		var v uint64
		for _, x := range b[i+1 : i+1+l] {
			v = v<<8 | uint64(x)
		}
		i += 1 + l
		if count > 0 && op&opAnd == 0 {
			return dataplane.PortRange{}, 0, fmt.Errorf("OR-ed values: %w", ErrUnsupported)
		}
		if v > uint64(max) {
			return dataplane.PortRange{}, 0, fmt.Errorf("value %d above %d: %w", v, max, ErrUnsupported)
		}
		count++
		switch op & opCmp {
		case opEQ:
			lo, hi = max32(lo, uint32(v)), min32(hi, uint32(v))
		case opLT:
			if v == 0 {
				return dataplane.PortRange{}, 0, fmt.Errorf("\"< 0\" matches nothing: %w", ErrUnsupported)
			}
			hi = min32(hi, uint32(v)-1)
		case opLT | opEQ:
			hi = min32(hi, uint32(v))
		case opGT:
			if uint32(v) == max {
				return dataplane.PortRange{}, 0, fmt.Errorf("\"> %d\" matches nothing: %w", v, ErrUnsupported)
			}
			lo = max32(lo, uint32(v)+1)
		case opGT | opEQ:
			lo = max32(lo, uint32(v))
		default:
			return dataplane.PortRange{}, 0, fmt.Errorf("comparison bits 0x%x: %w", op&opCmp, ErrUnsupported)
		}
		if op&opEnd != 0 {
			break
		}
	}
	if lo > hi {
		return dataplane.PortRange{}, 0, fmt.Errorf("empty range %d:%d: %w", lo, hi, ErrUnsupported)
	}
	if lo == 0 && hi == max {
		return dataplane.PortRange{}, 0, fmt.Errorf("range matching every value: %w", ErrUnsupported)
	}
	return dataplane.PortRange{Min: uint16(lo), Max: uint16(hi)}, i, nil
}

func min32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

func max32(a, b uint32) uint32 {
	if a > b {
		return a
	}
	return b
}

// protocols are the names upstream's classifier accepts.
var protocols = map[string]uint8{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "sctp": 132}

// ParseJSON reads the attract_traffic classifier object of the REST API
// (reference §2.3.1, §5.7): sourcePrefix, destinationPrefix, sourcePort,
// destinationPort (a number, "80" or "min:max") and protocol (a name or a
// number; tcp when absent, as upstream). Unknown keys are ignored.
func ParseJSON(raw json.RawMessage) (dataplane.Classifier, error) {
	var c dataplane.Classifier
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return c, fmt.Errorf("attract_traffic classifier %s is not a JSON object", raw)
	}
	var err error
	for key, dst := range map[string]*netip.Prefix{"sourcePrefix": &c.SourcePrefix, "destinationPrefix": &c.DestinationPrefix} {
		s, ok := m[key].(string)
		if !ok {
			if m[key] != nil {
				return c, fmt.Errorf("classifier %s: %v must be a prefix string such as \"10.0.0.0/24\"", key, m[key])
			}
			continue
		}
		if *dst, err = parsePrefix(s); err != nil {
			return c, fmt.Errorf("classifier %s: %w", key, err)
		}
	}
	for key, dst := range map[string]*dataplane.PortRange{"sourcePort": &c.SourcePort, "destinationPort": &c.DestinationPort} {
		if m[key] == nil {
			continue
		}
		if *dst, err = parsePorts(m[key]); err != nil {
			return c, fmt.Errorf("classifier %s: %w", key, err)
		}
	}
	c.Protocol = 6
	switch p := m["protocol"].(type) {
	case nil:
	case string:
		if n, ok := protocols[strings.ToLower(p)]; ok {
			c.Protocol = n
		} else if n, err := strconv.ParseUint(p, 10, 8); err == nil && n > 0 {
			c.Protocol = uint8(n)
		} else {
			return c, fmt.Errorf("classifier protocol %q: expected one of tcp, udp, icmp, sctp… or a number from 1 to 255", p)
		}
	case float64:
		if p < 1 || p > 255 || p != float64(int(p)) {
			return c, fmt.Errorf("classifier protocol %v: expected a number from 1 to 255", p)
		}
		c.Protocol = uint8(p)
	default:
		return c, fmt.Errorf("classifier protocol %v: expected a name or a number", p)
	}
	return c, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		s += "/32"
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 prefix", s)
	}
	return p.Masked(), nil
}

func parsePorts(v any) (dataplane.PortRange, error) {
	var s string
	switch x := v.(type) {
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		s = x
	default:
		return dataplane.PortRange{}, fmt.Errorf("%v: expected a port number or \"min:max\"", v)
	}
	a, b, isRange := strings.Cut(s, ":")
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 16)
	hi := lo
	var err2 error
	if isRange {
		hi, err2 = strconv.ParseUint(strings.TrimSpace(b), 10, 16)
	}
	if err1 != nil || err2 != nil || lo > hi || (isRange && lo == 0 && hi == 65535) {
		return dataplane.PortRange{}, fmt.Errorf("%q: expected a port from 0 to 65535 or a range \"min:max\" with min ≤ max", s)
	}
	return dataplane.PortRange{Min: uint16(lo), Max: uint16(hi)}, nil
}
