package config

import (
	"strings"
)

// Option describes one bgp.conf option, for --help and documentation.
type Option struct {
	Section  string   // section as upstream spells it, e.g. "BGP"
	Name     string   // option name, e.g. "my_as"
	Aliases  []string // older names still accepted (with a warning)
	Driver   string   // non-empty: only read when this dataplane driver is selected
	Default  string   // default value; "" when unset by default
	Required bool     // the file must set it
	New      bool     // our addition: upstream bagpipe-bgp does not have it
	Help     string   // one-line description
}

// option is an Option with its parser.
type option struct {
	Option
	expected string                          // shown when a required option is missing
	set      func(p *parser, v string) error // validates v and stores it in p.cfg
}

// generalOptions lists every option that does not depend on the dataplane
// driver, in the order they are documented.
var generalOptions = []option{
	{Option: Option{Section: sectionDefault, Name: "debug", Default: "false",
		Help: "Log at debug level."},
		set: func(p *parser, v string) (err error) { p.cfg.Log.Debug, err = parseBool(v); return }},
	{Option: Option{Section: sectionDefault, Name: "log_file",
		Help: "Log to this file instead of standard error (a name ending in .conf is ignored, as upstream)."},
		set: func(p *parser, v string) error {
			v = strings.TrimSpace(v)
			if strings.HasSuffix(v, ".conf") {
				p.warnf("[%s] log_file = %q looks like a logging configuration file (legacy); ignored", sectionDefault, v)
				return nil
			}
			p.cfg.Log.File = v
			return nil
		}},
	{Option: Option{Section: sectionDefault, Name: "log_dir",
		Help: "Directory for log_file when it is a relative name."},
		set: func(p *parser, v string) error { p.cfg.Log.Dir = strings.TrimSpace(v); return nil }},
	{Option: Option{Section: sectionDefault, Name: "use_syslog", Default: "false",
		Help: "Log to syslog."},
		set: func(p *parser, v string) (err error) { p.cfg.Log.UseSyslog, err = parseBool(v); return }},

	{Option: Option{Section: sectionBGP, Name: "local_address", Required: true,
		Help: "BGP source address, router ID, RD prefix and RTC next hop: an IPv4 address or an interface name (its first IPv4 address, resolved at start)."},
		expected: addrOrIfExpected,
		set: func(p *parser, v string) (err error) {
			p.cfg.BGP.LocalAddress, p.cfg.BGP.LocalInterface, err = parseAddrOrInterface(v)
			return
		}},
	{Option: Option{Section: sectionBGP, Name: "peers",
		Help: "Comma-separated IPv4 addresses of the BGP peers (route reflectors) to connect to."},
		set: func(p *parser, v string) error {
			peers, dups, err := parseIPv4List(v)
			if err != nil {
				return err
			}
			for _, d := range dups {
				p.warnf("[%s] peers lists %s more than once; using it once", sectionBGP, d)
			}
			p.cfg.BGP.Peers = peers
			return nil
		}},
	{Option: Option{Section: sectionBGP, Name: "my_as", Required: true,
		Help: "Local AS number, also the peers' AS (iBGP). Upstream accepts 1..65535; 4-octet AS numbers work too."},
		expected: "an integer from 1 to 4294967295",
		set: func(p *parser, v string) error {
			n, err := parseUint(v, 1, 1<<32-1)
			p.cfg.BGP.MyAS = uint32(n)
			return err
		}},
	{Option: Option{Section: sectionBGP, Name: "enable_rtc", Default: "true",
		Help: "Use Route Target Constraint (RFC 4684)."},
		set: func(p *parser, v string) (err error) { p.cfg.BGP.EnableRTC, err = parseBool(v); return }},
	{Option: Option{Section: sectionBGP, Name: "bgp_port", Default: "179",
		Help: "TCP port of the peers (and of our listener when passive is true)."},
		set: func(p *parser, v string) (err error) { p.cfg.BGP.Port, err = parsePort(v); return }},
	{Option: Option{Section: sectionBGP, Name: "passive", Default: "false", New: true,
		Help: "Also accept incoming BGP connections on bgp_port at local_address, so two bagpipe-bgp can peer without a route reflector."},
		set: func(p *parser, v string) (err error) { p.cfg.BGP.Passive, err = parseBool(v); return }},
	{Option: Option{Section: sectionBGP, Name: "hold_time", Default: "180", New: true,
		Help: "Hold time to propose, in seconds: 0 (no keepalives) or 3 to 65535 (RFC 4271 section 4.2)."},
		set: func(p *parser, v string) error {
			d, err := parseSeconds(v, 0, 65535)
			if err != nil || (d > 0 && d < 3e9) {
				return bad("0 or a whole number of seconds from 3 to 65535 (RFC 4271 section 4.2)", nil)
			}
			p.cfg.BGP.HoldTime = d
			return nil
		}},
	{Option: Option{Section: sectionBGP, Name: "connect_retry", Default: "5", New: true,
		Help: "Seconds to wait between attempts to connect to a peer."},
		set: func(p *parser, v string) (err error) { p.cfg.BGP.ConnectRetry, err = parseSeconds(v, 1, 65535); return }},

	{Option: Option{Section: sectionAPI, Name: "host", Aliases: []string{"api_host"}, Default: "127.0.0.1",
		Help: "Address or host name the REST API listens on."},
		set: func(p *parser, v string) (err error) { p.cfg.API.Host, err = parseHost(v); return }},
	{Option: Option{Section: sectionAPI, Name: "port", Aliases: []string{"api_port"}, Default: "8082",
		Help: "TCP port of the REST API."},
		set: func(p *parser, v string) (err error) { p.cfg.API.Port, err = parsePort(v); return }},

	{Option: Option{Section: sectionCommon, Name: "root_helper", Default: "sudo",
		Help: "Accepted for compatibility, unused (privileged work goes through netlink)."},
		set: func(p *parser, v string) error { p.cfg.Common.RootHelper = strings.TrimSpace(v); return nil }},
	{Option: Option{Section: sectionCommon, Name: "root_helper_daemon",
		Help: "Accepted for compatibility, unused."},
		set: func(p *parser, v string) error { p.cfg.Common.RootHelperDaemon = strings.TrimSpace(v); return nil }},

	dataplaneDriverOption(sectionEVPN),
	dataplaneAddressOption(sectionEVPN),
	dataplaneDriverOption(sectionIPVPN),
	dataplaneAddressOption(sectionIPVPN),
}

func dataplaneDriverOption(sec string) option {
	return option{Option: Option{Section: sec, Name: "dataplane_driver", Default: DriverDummy,
		Help: "Dataplane driver: dummy, linux or ovs (upstream class names are accepted)."},
		set: func(p *parser, v string) (err error) { p.dp.Driver, err = normaliseDriver(sec, v); return }}
}

func dataplaneAddressOption(sec string) option {
	return option{Option: Option{Section: sec, Name: "dataplane_local_address", Default: "BGP local_address",
		Help: "Tunnel endpoint and route next hop: an IPv4 address or an interface name."},
		set: func(p *parser, v string) (err error) {
			p.dp.LocalAddress, p.dp.LocalInterface, err = parseAddrOrInterface(v)
			return
		}}
}

// Options returns every option bgp.conf understands, general ones first,
// then driver-specific ones, with defaults and help text.
func Options() []Option {
	out := make([]Option, 0, len(generalOptions)+len(driverOptions))
	for _, o := range generalOptions {
		o.Aliases = append([]string(nil), o.Aliases...)
		out = append(out, o.Option)
	}
	for _, o := range driverOptions {
		out = append(out, Option{Section: o.section, Name: o.name, Driver: o.driver, Default: o.def, New: o.new, Help: o.help})
	}
	return out
}
