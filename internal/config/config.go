// Package config reads bagpipe-bgp's bgp.conf: the upstream oslo.config INI
// file with sections [BGP], [API], [COMMON], [DATAPLANE_DRIVER_EVPN] and
// [DATAPLANE_DRIVER_IPVPN] (section names are case-insensitive), plus a few
// options of our own with safe defaults. See README.md for the full list.
//
// Problems that make the file unusable (a missing required option, a
// malformed value, an unknown driver) are returned as one-line errors of type
// *Error. Problems that do not (unknown options or sections, obsolete or
// unused options) are returned as warnings for the caller to log.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// DefaultPath is where upstream bagpipe-bgp reads its configuration.
const DefaultPath = "/etc/bagpipe-bgp/bgp.conf"

// Section names as upstream writes them. Files may use any case.
const (
	sectionDefault  = "DEFAULT"
	sectionBGP      = "BGP"
	sectionAPI      = "API"
	sectionCommon   = "COMMON"
	sectionEVPN     = "DATAPLANE_DRIVER_EVPN"
	sectionIPVPN    = "DATAPLANE_DRIVER_IPVPN"
	sectionObsolete = "DATAPLANE_DRIVER"
)

// sectionOrder is the order sections are processed in: [BGP] comes before
// the dataplane sections, whose local address defaults to BGP's.
var sectionOrder = []string{sectionDefault, sectionBGP, sectionAPI, sectionCommon, sectionEVPN, sectionIPVPN}

// Config is a parsed bgp.conf.
type Config struct {
	File   string    // the file it was read from
	BGP    BGP       // [BGP]
	API    API       // [API]
	Common Common    // [COMMON]
	EVPN   Dataplane // [DATAPLANE_DRIVER_EVPN]
	IPVPN  Dataplane // [DATAPLANE_DRIVER_IPVPN]
	Log    Log       // [DEFAULT] logging options
}

// BGP holds the [BGP] section.
type BGP struct {
	// LocalAddress is the session source address, router ID, RD prefix and
	// RTC next hop. Always a valid IPv4 address in a parsed Config.
	LocalAddress netip.Addr
	// LocalInterface is the interface local_address named, "" if the file
	// gave an address.
	LocalInterface string
	// Peers are the BGP peers to connect to.
	Peers []netip.Addr
	// MyAS is the local AS, also the peers' AS (iBGP only). Never 0 in a
	// parsed Config.
	MyAS uint32
	// EnableRTC turns on RT Constraint (RFC 4684).
	EnableRTC bool
	// Port is the TCP port peers are reached on (and listened on when
	// Passive).
	Port uint16
	// Passive also accepts incoming BGP connections on Port at
	// LocalAddress (our addition).
	Passive bool
	// HoldTime is the hold time we propose (RFC 4271 §4.2): 0 or at least
	// 3 s, whole seconds (our addition).
	HoldTime time.Duration
	// ConnectRetry is the delay between connection attempts (RFC 4271 §8,
	// ConnectRetryTimer), whole seconds (our addition).
	ConnectRetry time.Duration
}

// API holds the [API] section: where the REST API listens.
type API struct {
	Host string // IP address or host name
	Port uint16
}

// Addr returns Host and Port joined for net.Listen.
func (a API) Addr() string { return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))) }

// Common holds the [COMMON] section. Both options are accepted for
// compatibility and unused: we reach the kernel through netlink.
type Common struct {
	RootHelper       string
	RootHelperDaemon string
}

// Dataplane holds a [DATAPLANE_DRIVER_EVPN] or [DATAPLANE_DRIVER_IPVPN]
// section.
type Dataplane struct {
	// Driver is the canonical driver name: DriverDummy, DriverLinux or
	// DriverOVS.
	Driver string
	// LocalAddress is the tunnel endpoint / route next hop; defaults to the
	// BGP local address.
	LocalAddress netip.Addr
	// LocalInterface is the interface dataplane_local_address named, ""
	// otherwise.
	LocalInterface string
	// Options holds the selected driver's own options, validated and
	// normalised (booleans as "true"/"false", lists as "a,b"), defaults
	// included; options that are unset and have no default are absent.
	Options map[string]string
}

// Log holds the oslo.log options of [DEFAULT] that we honour.
type Log struct {
	Debug     bool
	File      string
	Dir       string
	UseSyslog bool
}

// defaults returns a Config holding every default value.
func defaults(file string) *Config {
	return &Config{
		File: file,
		BGP: BGP{
			EnableRTC:    true,
			Port:         179,
			HoldTime:     180 * time.Second,
			ConnectRetry: 5 * time.Second,
		},
		API:    API{Host: "127.0.0.1", Port: 8082},
		Common: Common{RootHelper: "sudo"},
		EVPN:   Dataplane{Driver: DriverDummy, Options: map[string]string{}},
		IPVPN:  Dataplane{Driver: DriverDummy, Options: map[string]string{}},
	}
}

// iniOptions mirror oslo.config's parser: '#' and ';' start comment lines
// only (no inline comments), indented lines continue a value, no backslash
// continuation, surrounding quotes are removed.
var iniOptions = ini.LoadOptions{
	InsensitiveSections:        true,
	InsensitiveKeys:            true,
	IgnoreInlineComment:        true,
	AllowPythonMultilineValues: true,
	IgnoreContinuation:         true,
}

// Load reads and parses the file at path. See Parse.
func Load(path string) (*Config, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading configuration: %w (give the bgp.conf path with --config-file)", err)
	}
	return Parse(path, data)
}

// Parse parses bgp.conf content; name is used in messages. It returns the
// configuration, warnings about things that were ignored, and an error if
// the configuration cannot be used. Interface names given as addresses are
// resolved now, on this host.
func Parse(name string, data []byte) (*Config, []string, error) {
	f, err := ini.LoadSources(iniOptions, data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %s: fix the INI syntax (sections as [NAME], options as name = value)", oneLine(name), oneLine(err.Error()))
	}
	p := &parser{file: name, cfg: defaults(name)}
	raw := map[string][]keyValue{}
	for _, s := range f.Sections() {
		lname := strings.ToLower(s.Name())
		sec := ""
		for _, known := range sectionOrder {
			if strings.ToLower(known) == lname {
				sec = known
			}
		}
		switch {
		case sec != "":
			for _, k := range s.Keys() {
				raw[sec] = append(raw[sec], keyValue{k.Name(), k.Value()})
			}
		case lname == strings.ToLower(sectionObsolete):
			p.warnf("[%s] is obsolete and ignored; use [%s] and [%s]", sectionObsolete, sectionIPVPN, sectionEVPN)
		default:
			// ini.v1 lower-cases section names; upper case reads like upstream.
			p.warnf("[%s] is not a bagpipe-bgp section; ignored (sections are %s)", strings.ToUpper(s.Name()), strings.Join(sectionOrder, ", "))
		}
	}
	for _, sec := range sectionOrder {
		if err := p.section(sec, raw[sec]); err != nil {
			return nil, p.warnings, err
		}
	}
	return p.cfg, p.warnings, nil
}

// keyValue is one option line of the file.
type keyValue struct{ key, value string }

// parser holds the state of one Parse call.
type parser struct {
	file     string
	cfg      *Config
	dp       *Dataplane // the dataplane section being processed
	warnings []string
}

func (p *parser) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, oneLine(p.file+": "+fmt.Sprintf(format, args...)))
}

// locate fills the location of an error returned by a setter.
func (p *parser) locate(err error, section, option, value string) error {
	e, ok := err.(*Error)
	if !ok {
		e = &Error{Expected: "a valid value", Err: err}
	}
	e.File, e.Section, e.Option, e.Value = p.file, section, option, value
	return e
}

// section applies the options found in one section.
func (p *parser) section(sec string, kvs []keyValue) error {
	vals := map[string]string{}
	for _, kv := range kvs {
		vals[kv.key] = kv.value // the last occurrence wins, as with oslo.config
	}
	used := map[string]bool{}
	switch sec {
	case sectionEVPN:
		p.dp = &p.cfg.EVPN
	case sectionIPVPN:
		p.dp = &p.cfg.IPVPN
	}
	for _, o := range generalOptions {
		if o.Section != sec {
			continue
		}
		key, v, ok := "", "", false
		for _, n := range append([]string{o.Name}, o.Aliases...) {
			if val, found := vals[n]; found {
				used[n] = true
				if !ok {
					key, v, ok = n, val, true
				}
			}
		}
		if !ok {
			if o.Required {
				return &Error{File: p.file, Section: sec, Option: o.Name, Missing: true, Expected: o.expected}
			}
			continue
		}
		if key != o.Name {
			p.warnf("[%s] %s is a deprecated name; use %s", sec, key, o.Name)
		}
		if err := o.set(p, v); err != nil {
			return p.locate(err, sec, key, v)
		}
	}
	if p.dp != nil && (sec == sectionEVPN || sec == sectionIPVPN) {
		if err := p.driverOptions(sec, vals, used); err != nil {
			return err
		}
		if !p.dp.LocalAddress.IsValid() {
			p.dp.LocalAddress = p.cfg.BGP.LocalAddress
			p.dp.LocalInterface = p.cfg.BGP.LocalInterface
		}
	}
	if sec == sectionCommon {
		var set []string
		for _, n := range []string{"root_helper", "root_helper_daemon"} {
			if used[n] {
				set = append(set, n)
			}
		}
		if len(set) > 0 {
			p.warnf("[%s] %s: accepted for compatibility but unused (this bagpipe-bgp uses netlink and needs no root helper); remove to silence this warning", sec, strings.Join(set, ", "))
		}
	}
	var unknown []string
	for _, kv := range kvs {
		if !used[kv.key] {
			used[kv.key] = true // warn once per name
			unknown = append(unknown, kv.key)
		}
	}
	for _, k := range unknown {
		p.warnf("[%s] %s: unknown option; ignored (check the spelling; bagpipe-bgp --help lists the options)", sec, k)
	}
	return nil
}

// driverOptions validates the options of the selected driver and warns about
// options that belong to another driver.
func (p *parser) driverOptions(sec string, vals map[string]string, used map[string]bool) error {
	selected := map[string]bool{}
	for _, o := range driverOptions {
		if o.section != sec || o.driver != p.dp.Driver {
			continue
		}
		selected[o.name] = true
		v, given := vals[o.name]
		if !given {
			if o.def != "" {
				p.dp.Options[o.name] = o.def
			}
			continue
		}
		used[o.name] = true
		norm, err := o.set(v)
		if err != nil {
			return p.locate(err, sec, o.name, v)
		}
		if norm != "" {
			p.dp.Options[o.name] = norm
		}
	}
	readers := map[string][]string{} // option name -> drivers reading it
	var names []string
	for _, o := range driverOptions {
		if o.section != sec || selected[o.name] {
			continue
		}
		if _, given := vals[o.name]; given {
			if readers[o.name] == nil {
				names = append(names, o.name)
			}
			readers[o.name] = append(readers[o.name], o.driver)
		}
	}
	for _, n := range names {
		used[n] = true
		what := "the " + readers[n][0] + " driver"
		if len(readers[n]) > 1 {
			what = "the " + strings.Join(readers[n], " and ") + " drivers"
		}
		p.warnf("[%s] %s: only read by %s; ignored with dataplane_driver = %s", sec, n, what, p.dp.Driver)
	}
	return nil
}

// Sections returns the effective value of every option, as strings, keyed by
// section name as upstream spells it (COMMON, API, BGP,
// DATAPLANE_DRIVER_IPVPN, DATAPLANE_DRIVER_EVPN): the looking glass "config"
// node.
func (c *Config) Sections() map[string]map[string]string {
	peers := make([]string, len(c.BGP.Peers))
	for i, a := range c.BGP.Peers {
		peers[i] = a.String()
	}
	out := map[string]map[string]string{
		sectionBGP: {
			"local_address": addrString(c.BGP.LocalAddress),
			"peers":         strings.Join(peers, ","),
			"my_as":         strconv.FormatUint(uint64(c.BGP.MyAS), 10),
			"enable_rtc":    strconv.FormatBool(c.BGP.EnableRTC),
			"bgp_port":      strconv.Itoa(int(c.BGP.Port)),
			"passive":       strconv.FormatBool(c.BGP.Passive),
			"hold_time":     strconv.Itoa(int(c.BGP.HoldTime / time.Second)),
			"connect_retry": strconv.Itoa(int(c.BGP.ConnectRetry / time.Second)),
		},
		sectionAPI: {
			"host": c.API.Host,
			"port": strconv.Itoa(int(c.API.Port)),
		},
		sectionCommon: {
			"root_helper":        c.Common.RootHelper,
			"root_helper_daemon": c.Common.RootHelperDaemon,
		},
		sectionEVPN:  c.EVPN.section(),
		sectionIPVPN: c.IPVPN.section(),
	}
	return out
}

func (d Dataplane) section() map[string]string {
	m := map[string]string{
		"dataplane_driver":        d.Driver,
		"dataplane_local_address": addrString(d.LocalAddress),
	}
	for k, v := range d.Options {
		m[k] = v
	}
	return m
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
