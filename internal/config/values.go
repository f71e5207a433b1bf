package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Error is a configuration error tied to one option of one section. Its
// message is a single line naming the file, section, option, the offending
// value and what was expected, for example:
//
//	bgp.conf: [BGP] my_as = "abc": expected an integer from 1 to 4294967295
type Error struct {
	File     string // file name as given to Parse or Load
	Section  string // section name as upstream spells it, e.g. "BGP"
	Option   string // option name, e.g. "my_as"
	Value    string // the raw value found in the file ("" when Missing)
	Missing  bool   // the option is required and absent
	Expected string // what a valid value looks like
	Err      error  // underlying cause, if any (e.g. an interface lookup failure)
}

// Error returns the one-line description of the problem.
func (e *Error) Error() string {
	var s string
	if e.Missing {
		s = fmt.Sprintf("%s: [%s] %s is missing: expected %s", oneLine(e.File), e.Section, e.Option, e.Expected)
	} else {
		s = fmt.Sprintf("%s: [%s] %s = %q: expected %s", oneLine(e.File), e.Section, e.Option, e.Value, e.Expected)
	}
	if e.Err != nil {
		s += " (" + oneLine(e.Err.Error()) + ")"
	}
	return s
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// bad builds the value-specific part of an *Error; the parser fills in the
// location.
func bad(expected string, cause error) error {
	return &Error{Expected: expected, Err: cause}
}

// oneLine replaces line breaks so that a message stays on one line.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// parseBool accepts the oslo.config boolean spellings, case-insensitively.
func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off":
		return false, nil
	}
	return false, bad("a boolean: true/false, yes/no, on/off or 1/0", nil)
}

// parseUint parses a decimal integer in [lo, hi].
func parseUint(v string, lo, hi uint64) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, bad(fmt.Sprintf("an integer from %d to %d", lo, hi), nil)
	}
	return n, nil
}

// parsePort parses a TCP/UDP port number (1..65535).
func parsePort(v string) (uint16, error) {
	n, err := parseUint(v, 1, 65535)
	if err != nil {
		return 0, bad("a port number from 1 to 65535", nil)
	}
	return uint16(n), nil
}

// parseSeconds parses a whole number of seconds in [lo, hi].
func parseSeconds(v string, lo, hi uint64) (time.Duration, error) {
	n, err := parseUint(v, lo, hi)
	if err != nil {
		return 0, bad(fmt.Sprintf("a whole number of seconds from %d to %d", lo, hi), nil)
	}
	return time.Duration(n) * time.Second, nil
}

// parseUnicastIPv4 parses a dotted-quad IPv4 unicast address.
func parseUnicastIPv4(v string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, false
	}
	return a, true
}

// interfaceIPv4 returns the first IPv4 address of the named interface. It is
// a variable so that tests can substitute it; production uses the kernel.
var interfaceIPv4 = func(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no interface %q on this host: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the addresses of interface %q: %w", name, err)
	}
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if ip4 := ip.To4(); ip4 != nil {
			return netip.AddrFrom4([4]byte(ip4)), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("interface %q has no IPv4 address; add one or give an address", name)
}

// validIfName reports whether s can be a Linux interface name (1..15 bytes,
// no slash, colon or white space, not "." or "..").
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == ':' || r >= 0x7f {
			return false
		}
	}
	return true
}

const addrOrIfExpected = "an IPv4 unicast address or the name of an interface that has an IPv4 address"

// parseAddrOrInterface parses an IPv4 address, or resolves an interface name
// to its first IPv4 address. It returns the address and the interface name
// ("" when an address was given).
func parseAddrOrInterface(v string) (netip.Addr, string, error) {
	v = strings.TrimSpace(v)
	if a, ok := parseUnicastIPv4(v); ok {
		return a, "", nil
	}
	if _, err := netip.ParseAddr(v); err == nil || !validIfName(v) || looksNumeric(v) {
		return netip.Addr{}, "", bad(addrOrIfExpected, nil)
	}
	a, err := interfaceIPv4(v)
	if err != nil {
		return netip.Addr{}, "", bad(addrOrIfExpected, err)
	}
	return a, v, nil
}

// looksNumeric reports whether s is made only of digits and dots, i.e. it
// was meant as an address (e.g. "10.0.0.256"), not an interface name.
func looksNumeric(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

// splitList splits an oslo.config list value on commas, trimming white space
// (including the line breaks of multi-line values) and dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseIPv4List parses a comma-separated list of IPv4 unicast addresses,
// dropping duplicates (reported through dup).
func parseIPv4List(v string) (addrs []netip.Addr, dups []netip.Addr, err error) {
	seen := map[netip.Addr]bool{}
	for _, item := range splitList(v) {
		a, ok := parseUnicastIPv4(item)
		if !ok {
			return nil, nil, bad("a comma-separated list of IPv4 unicast addresses", fmt.Errorf("%q is not one", item))
		}
		if seen[a] {
			dups = append(dups, a)
			continue
		}
		seen[a] = true
		addrs = append(addrs, a)
	}
	return addrs, dups, nil
}

// parseHost accepts an IP address (v4 or v6) or an RFC 1123 host name.
func parseHost(v string) (string, error) {
	v = strings.TrimSpace(v)
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return a.String(), nil
	}
	if !validHostname(v) {
		return "", bad("an IP address or a host name", nil)
	}
	return v, nil
}

// validHostname checks RFC 1123 host name syntax.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 || looksNumeric(s) {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// parseChoice matches v case-insensitively against choices and returns the
// canonical spelling.
func parseChoice(v string, choices ...string) (string, error) {
	v = strings.TrimSpace(v)
	for _, c := range choices {
		if strings.EqualFold(v, c) {
			return c, nil
		}
	}
	return "", bad("one of "+strings.Join(choices, ", "), nil)
}
