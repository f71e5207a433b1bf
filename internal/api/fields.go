package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// apiError is a validation failure: 400 with "API error: " + msg.
type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

func badf(format string, a ...any) error { return &apiError{msg: fmt.Sprintf(format, a...)} }

// params is a decoded request body (numbers as json.Number).
type params map[string]any

// present reports whether key is there and not JSON null.
func (p params) present(key string) bool { return p[key] != nil }

// show renders a JSON value the way the error messages quote it: strings
// bare (as Python's "%s"), anything else as JSON text.
func show(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonType names the JSON type of a decoded value, for type errors.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func typeErr(field, want string, v any) error {
	return badf("'%s' must be %s, not %s", field, want, jsonType(v))
}

// integer reads a JSON number holding an integer in [lo, hi]. Booleans
// and strings are type errors, as in Python (bool is rejected explicitly
// there too). Integral floats (1.0, 1e3) are accepted.
func integer(field string, v any, lo, hi int64) (int64, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, typeErr(field, "an integer", v)
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(n), 64)
		if ferr != nil || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
			return 0, badf("'%s' must be an integer from %d to %d, not %s", field, lo, hi, n)
		}
		i = int64(f)
	}
	if i < lo || i > hi {
		return 0, badf("'%s' must be an integer from %d to %d, not %s", field, lo, hi, n)
	}
	return i, nil
}

// intOrDigits is integer, also accepting a decimal string (the OVS fields
// of local_port are documented upstream as strings: "port_number": "7").
func intOrDigits(field string, v any, lo, hi int64) (int64, error) {
	if s, ok := v.(string); ok {
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || i < lo || i > hi {
			return 0, badf("'%s' must be an integer from %d to %d, not %q", field, lo, hi, s)
		}
		return i, nil
	}
	return integer(field, v, lo, hi)
}

func str(field string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", typeErr(field, "a string", v)
	}
	return s, nil
}

// parseMAC validates a 48-bit MAC address like netaddr.EUI does: the
// usual colon, hyphen and dotted forms, or 12 bare hex digits.
func parseMAC(v any) (route.MAC, error) {
	s, ok := v.(string)
	if !ok {
		return route.MAC{}, badf("MAC address %s is not valid", show(v))
	}
	if len(s) == 12 && isHex(s) {
		s = s[0:2] + ":" + s[2:4] + ":" + s[4:6] + ":" + s[6:8] + ":" + s[8:10] + ":" + s[10:12]
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return route.MAC{}, badf("MAC address %s is not valid", show(v))
	}
	return route.MAC(hw), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// parseIP reads ip_address: "a.b.c.d/len" kept as given, "a.b.c.d" as
// /32 (reference §2.3.1). IP VPN is IPv4 only upstream, so IPv6 is
// refused.
func parseIP(v any) (netip.Prefix, error) {
	s, ok := v.(string)
	if !ok {
		return netip.Prefix{}, badf("IP address %s is not valid", show(v))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, badf("IP address %s is not valid", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, badf("IP address %s is not valid: only IPv4 is supported", s)
	}
	return p, nil
}

func parseAddr4(field string, v any) (netip.Addr, error) {
	s, ok := v.(string)
	if !ok {
		return netip.Addr{}, typeErr(field, "a string", v)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, badf("'%s' %s is not a valid IP address", field, s)
	}
	if !a.Is4() {
		return netip.Addr{}, badf("'%s' %s is not valid: only IPv4 is supported", field, s)
	}
	return a, nil
}

// rtSplit is upstream's separator for RT strings.
var rtSplit = regexp.MustCompile(`,+ *`)

// routeTargets reads an RT list: a JSON list of strings or, if allowString,
// a string split on ",+ *". Empty strings are ignored and duplicates
// removed (first occurrence kept). Each RT is "asn:nn", two-octet AS form
// only (RFC 4360 §3.1; reference §11).
func routeTargets(field string, v any, allowString bool) ([]route.RT, error) {
	var items []any
	switch t := v.(type) {
	case string:
		if !allowString {
			return nil, typeErr(field, "a list of route targets", v)
		}
		for _, s := range rtSplit.Split(t, -1) {
			items = append(items, s)
		}
	case []any:
		items = t
	default:
		want := "a list of route targets"
		if allowString {
			want += " or a comma-separated string"
		}
		return nil, typeErr(field, want, v)
	}
	out := make([]route.RT, 0, len(items))
	seen := make(map[route.RT]bool, len(items))
	for _, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, badf("Malformed route target in '%s': %s is not a string", field, show(it))
		}
		if s == "" {
			continue
		}
		rt, err := parseRT(s)
		if err != nil {
			return nil, badf("Malformed route target in '%s': '%s' (%v)", field, s, err)
		}
		if !seen[rt] {
			seen[rt] = true
			out = append(out, rt)
		}
	}
	return out, nil
}

// parseRT is route.ParseRT, also tolerating spaces around the colon as
// Python's int() does ("64512 : 1").
func parseRT(s string) (route.RT, error) {
	if a, n, ok := strings.Cut(s, ":"); ok && !strings.Contains(n, ":") {
		s = strings.TrimSpace(a) + ":" + strings.TrimSpace(n)
	}
	return route.ParseRT(s)
}

// localPort reads local_port (reference §2.3.1): a string is shorthand for
// {"linuxif": s}; an object must have "linuxif" or "evpn".
func localPort(v any) (dataplane.LocalPort, error) {
	var lp dataplane.LocalPort
	var obj map[string]any
	switch t := v.(type) {
	case string:
		obj = map[string]any{"linuxif": t}
	case map[string]any:
		obj = t
	default:
		return lp, typeErr("local_port", "an object or a string", v)
	}
	_, hasIf := obj["linuxif"]
	_, hasEVPN := obj["evpn"]
	if !hasIf && !hasEVPN {
		return lp, badf("Mandatory key is missing in local_port parameter (linuxif, or evpn)")
	}
	if x, ok := obj["linuxif"]; ok && x != nil {
		s, err := str("local_port.linuxif", x)
		if err != nil {
			return lp, err
		}
		lp.LinuxIf = s
	}
	if x, ok := obj["vlan"]; ok && x != nil {
		n, err := intOrDigits("local_port.vlan", x, 0, 4095)
		if err != nil {
			return lp, err
		}
		lp.VLAN = int(n)
	}
	if x, ok := obj["evpn"]; ok && x != nil {
		e, ok := x.(map[string]any)
		if !ok {
			return lp, typeErr("local_port.evpn", "an object", x)
		}
		id, ok := e["id"]
		if !ok || id == nil {
			return lp, badf("Missing parameter: 'id' in 'local_port.evpn' (the vpn_instance_id of the E-VPN instance to plug)")
		}
		s, err := str("local_port.evpn.id", id)
		if err != nil {
			return lp, err
		}
		if s == "" {
			return lp, badf("'local_port.evpn.id' must not be empty")
		}
		if n, ok := e["ovs_port_name"]; ok && n != nil {
			if _, err := str("local_port.evpn.ovs_port_name", n); err != nil {
				return lp, err
			}
		}
		lp.EVPN = s
	}
	if x, ok := obj["ovs"]; ok && x != nil {
		o, ok := x.(map[string]any)
		if !ok {
			return lp, typeErr("local_port.ovs", "an object", x)
		}
		ovs := &dataplane.OVSPort{}
		if p, ok := o["plugged"]; ok && p != nil {
			b, ok := p.(bool)
			if !ok {
				return lp, typeErr("local_port.ovs.plugged", "a boolean", p)
			}
			ovs.Plugged = b
		}
		if p, ok := o["port_name"]; ok && p != nil {
			s, err := str("local_port.ovs.port_name", p)
			if err != nil {
				return lp, err
			}
			ovs.PortName = s
		}
		if p, ok := o["port_number"]; ok && p != nil {
			n, err := intOrDigits("local_port.ovs.port_number", p, 0, math.MaxInt32)
			if err != nil {
				return lp, err
			}
			ovs.PortNumber = int(n)
		}
		if p, ok := o["vlan"]; ok && p != nil {
			n, err := intOrDigits("local_port.ovs.vlan", p, 0, 4095)
			if err != nil {
				return lp, err
			}
			ovs.VLAN = int(n)
		}
		lp.OVS = ovs
	}
	// A null or empty name is as good as none (upstream would fail later,
	// in the dataplane, with a 500).
	if lp.LinuxIf == "" && lp.EVPN == "" {
		return lp, badf("Mandatory key is missing in local_port parameter (linuxif, or evpn)")
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return lp, badf("'local_port' cannot be re-encoded as JSON: %v", err)
	}
	lp.Raw = string(raw)
	return lp, nil
}

// canonical re-encodes a decoded JSON value (object keys sorted).
func canonical(field string, v any) (json.RawMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, badf("'%s' cannot be re-encoded as JSON: %v", field, err)
	}
	return b, nil
}
