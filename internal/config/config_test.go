package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// base is the smallest valid bgp.conf.
const base = "[BGP]\nlocal_address = 10.0.0.1\nmy_as = 64512\n"

func mustParse(t *testing.T, conf string) (*Config, []string) {
	t.Helper()
	c, w, err := Parse("bgp.conf", []byte(conf))
	if err != nil {
		t.Fatalf("Parse(%q): %v", conf, err)
	}
	return c, w
}

func TestDefaults(t *testing.T) {
	c, w := mustParse(t, base)
	if len(w) != 0 {
		t.Errorf("warnings = %q, want none", w)
	}
	want := map[string]map[string]string{
		"BGP": {"local_address": "10.0.0.1", "peers": "", "my_as": "64512", "enable_rtc": "true",
			"bgp_port": "179", "passive": "false", "hold_time": "180", "connect_retry": "5"},
		"API":                    {"host": "127.0.0.1", "port": "8082"},
		"COMMON":                 {"root_helper": "sudo", "root_helper_daemon": ""},
		"DATAPLANE_DRIVER_EVPN":  {"dataplane_driver": "dummy", "dataplane_local_address": "10.0.0.1"},
		"DATAPLANE_DRIVER_IPVPN": {"dataplane_driver": "dummy", "dataplane_local_address": "10.0.0.1"},
	}
	if got := c.Sections(); !reflect.DeepEqual(got, want) {
		t.Errorf("Sections() =\n%v\nwant\n%v", got, want)
	}
	if c.File != "bgp.conf" || c.BGP.HoldTime != 180*time.Second || c.BGP.ConnectRetry != 5*time.Second ||
		c.BGP.Peers != nil || c.Log != (Log{}) || c.API.Addr() != "127.0.0.1:8082" {
		t.Errorf("typed defaults wrong: %+v", c)
	}
}

// TestOptions sets one option at a time on top of base and checks the
// effective value or the exact one-line error.
func TestOptions(t *testing.T) {
	cases := []struct {
		name    string
		conf    string // appended to base
		section string // Sections() key checked
		option  string
		want    string // effective value, when err is ""
		err     string // exact error
	}{
		// [BGP] local_address
		{"local_address ipv4", "[BGP]\nlocal_address = 192.0.2.7\n", "BGP", "local_address", "192.0.2.7", ""},
		{"local_address interface", "[BGP]\nlocal_address = lo\n", "BGP", "local_address", "127.0.0.1", ""},
		{"local_address ipv6", "[BGP]\nlocal_address = 2001:db8::1\n", "", "", "",
			`bgp.conf: [BGP] local_address = "2001:db8::1": expected ` + addrOrIfExpected},
		{"local_address bad octet", "[BGP]\nlocal_address = 10.0.0.256\n", "", "", "",
			`bgp.conf: [BGP] local_address = "10.0.0.256": expected ` + addrOrIfExpected},
		{"local_address unspecified", "[BGP]\nlocal_address = 0.0.0.0\n", "", "", "",
			`bgp.conf: [BGP] local_address = "0.0.0.0": expected ` + addrOrIfExpected},
		{"local_address empty", "[BGP]\nlocal_address =\n", "", "", "",
			`bgp.conf: [BGP] local_address = "": expected ` + addrOrIfExpected},
		// [BGP] peers
		{"peers one", "[BGP]\npeers = 192.0.2.1\n", "BGP", "peers", "192.0.2.1", ""},
		{"peers list", "[BGP]\npeers = 192.0.2.1, 192.0.2.2 ,192.0.2.3\n", "BGP", "peers", "192.0.2.1,192.0.2.2,192.0.2.3", ""},
		{"peers multi-line", "[BGP]\npeers = 192.0.2.1,\n  192.0.2.2\n", "BGP", "peers", "192.0.2.1,192.0.2.2", ""},
		{"peers empty", "[BGP]\npeers =\n", "BGP", "peers", "", ""},
		{"peers bad", "[BGP]\npeers = 192.0.2.1, bob\n", "", "", "",
			`bgp.conf: [BGP] peers = "192.0.2.1, bob": expected a comma-separated list of IPv4 unicast addresses ("bob" is not one)`},
		// [BGP] my_as
		{"my_as 2-octet", "[BGP]\nmy_as = 65000\n", "BGP", "my_as", "65000", ""},
		{"my_as 4-octet", "[BGP]\nmy_as = 4200000000\n", "BGP", "my_as", "4200000000", ""},
		{"my_as max", "[BGP]\nmy_as = 4294967295\n", "BGP", "my_as", "4294967295", ""},
		{"my_as text", "[BGP]\nmy_as = abc\n", "", "", "",
			`bgp.conf: [BGP] my_as = "abc": expected an integer from 1 to 4294967295`},
		{"my_as zero", "[BGP]\nmy_as = 0\n", "", "", "",
			`bgp.conf: [BGP] my_as = "0": expected an integer from 1 to 4294967295`},
		{"my_as too big", "[BGP]\nmy_as = 4294967296\n", "", "", "",
			`bgp.conf: [BGP] my_as = "4294967296": expected an integer from 1 to 4294967295`},
		{"my_as inline comment is part of the value", "[BGP]\nmy_as = 5 # five\n", "", "", "",
			`bgp.conf: [BGP] my_as = "5 # five": expected an integer from 1 to 4294967295`},
		// [BGP] enable_rtc, every oslo spelling
		{"enable_rtc True", "[BGP]\nenable_rtc = True\n", "BGP", "enable_rtc", "true", ""},
		{"enable_rtc False", "[BGP]\nenable_rtc = False\n", "BGP", "enable_rtc", "false", ""},
		{"enable_rtc yes", "[BGP]\nenable_rtc = YES\n", "BGP", "enable_rtc", "true", ""},
		{"enable_rtc no", "[BGP]\nenable_rtc = no\n", "BGP", "enable_rtc", "false", ""},
		{"enable_rtc 1", "[BGP]\nenable_rtc = 1\n", "BGP", "enable_rtc", "true", ""},
		{"enable_rtc 0", "[BGP]\nenable_rtc = 0\n", "BGP", "enable_rtc", "false", ""},
		{"enable_rtc On", "[BGP]\nenable_rtc = On\n", "BGP", "enable_rtc", "true", ""},
		{"enable_rtc off", "[BGP]\nenable_rtc = off\n", "BGP", "enable_rtc", "false", ""},
		{"enable_rtc bad", "[BGP]\nenable_rtc = maybe\n", "", "", "",
			`bgp.conf: [BGP] enable_rtc = "maybe": expected a boolean: true/false, yes/no, on/off or 1/0`},
		// [BGP] bgp_port
		{"bgp_port", "[BGP]\nbgp_port = 1179\n", "BGP", "bgp_port", "1179", ""},
		{"bgp_port zero", "[BGP]\nbgp_port = 0\n", "", "", "",
			`bgp.conf: [BGP] bgp_port = "0": expected a port number from 1 to 65535`},
		{"bgp_port big", "[BGP]\nbgp_port = 65536\n", "", "", "",
			`bgp.conf: [BGP] bgp_port = "65536": expected a port number from 1 to 65535`},
		// [BGP] passive, hold_time, connect_retry (ours)
		{"passive", "[BGP]\npassive = true\n", "BGP", "passive", "true", ""},
		{"passive bad", "[BGP]\npassive = sometimes\n", "", "", "",
			`bgp.conf: [BGP] passive = "sometimes": expected a boolean: true/false, yes/no, on/off or 1/0`},
		{"hold_time 0", "[BGP]\nhold_time = 0\n", "BGP", "hold_time", "0", ""},
		{"hold_time 3", "[BGP]\nhold_time = 3\n", "BGP", "hold_time", "3", ""},
		{"hold_time 90", "[BGP]\nhold_time = 90\n", "BGP", "hold_time", "90", ""},
		{"hold_time 2", "[BGP]\nhold_time = 2\n", "", "", "",
			`bgp.conf: [BGP] hold_time = "2": expected 0 or a whole number of seconds from 3 to 65535 (RFC 4271 section 4.2)`},
		{"hold_time big", "[BGP]\nhold_time = 65536\n", "", "", "",
			`bgp.conf: [BGP] hold_time = "65536": expected 0 or a whole number of seconds from 3 to 65535 (RFC 4271 section 4.2)`},
		{"connect_retry", "[BGP]\nconnect_retry = 30\n", "BGP", "connect_retry", "30", ""},
		{"connect_retry 0", "[BGP]\nconnect_retry = 0\n", "", "", "",
			`bgp.conf: [BGP] connect_retry = "0": expected a whole number of seconds from 1 to 65535`},
		{"connect_retry duration", "[BGP]\nconnect_retry = 5s\n", "", "", "",
			`bgp.conf: [BGP] connect_retry = "5s": expected a whole number of seconds from 1 to 65535`},
		// [API]
		{"host ipv4", "[API]\nhost = 0.0.0.0\n", "API", "host", "0.0.0.0", ""},
		{"host ipv6", "[API]\nhost = ::1\n", "API", "host", "::1", ""},
		{"host name", "[API]\nhost = localhost\n", "API", "host", "localhost", ""},
		{"host bad", "[API]\nhost = not a host\n", "", "", "",
			`bgp.conf: [API] host = "not a host": expected an IP address or a host name`},
		{"api_host legacy", "[API]\napi_host = 192.0.2.9\n", "API", "host", "192.0.2.9", ""},
		{"host wins over api_host", "[API]\napi_host = 192.0.2.9\nhost = 192.0.2.8\n", "API", "host", "192.0.2.8", ""},
		{"port", "[API]\nport = 9999\n", "API", "port", "9999", ""},
		{"api_port legacy", "[API]\napi_port = 9998\n", "API", "port", "9998", ""},
		{"port bad", "[API]\nport = http\n", "", "", "",
			`bgp.conf: [API] port = "http": expected a port number from 1 to 65535`},
		{"api_port bad names the old option", "[API]\napi_port = -1\n", "", "", "",
			`bgp.conf: [API] api_port = "-1": expected a port number from 1 to 65535`},
		// [COMMON]
		{"root_helper", "[COMMON]\nroot_helper = sudo -n\n", "COMMON", "root_helper", "sudo -n", ""},
		{"root_helper_daemon", "[COMMON]\nroot_helper_daemon = sudo rw\n", "COMMON", "root_helper_daemon", "sudo rw", ""},
		// dataplane sections
		{"evpn local address", "[DATAPLANE_DRIVER_EVPN]\ndataplane_local_address = 192.0.2.5\n",
			"DATAPLANE_DRIVER_EVPN", "dataplane_local_address", "192.0.2.5", ""},
		{"ipvpn local address interface", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_local_address = lo\n",
			"DATAPLANE_DRIVER_IPVPN", "dataplane_local_address", "127.0.0.1", ""},
		{"ipvpn local address bad", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_local_address = 300.1.1.1\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_IPVPN] dataplane_local_address = "300.1.1.1": expected ` + addrOrIfExpected},
		{"evpn unknown driver", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = vpp\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_EVPN] dataplane_driver = "vpp": expected one of dummy, linux, ovs (or an upstream class name such as DummyDataplaneDriver)`},
		{"ipvpn class name in evpn section", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = mpls_ovs_dataplane.MPLSOVSDataplaneDriver\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_EVPN] dataplane_driver = "mpls_ovs_dataplane.MPLSOVSDataplaneDriver": expected one of dummy, linux, ovs (or an upstream class name such as DummyDataplaneDriver)`},
		{"ipvpn unknown driver", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = MPLSFooDriver\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_IPVPN] dataplane_driver = "MPLSFooDriver": expected one of dummy, linux, ovs (or an upstream class name such as mpls_ovs_dataplane.MPLSOVSDataplaneDriver)`},
		// driver options
		{"evpn linux vxlan port default", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\n",
			"DATAPLANE_DRIVER_EVPN", "vxlan_dst_port", "4789", ""},
		{"evpn linux vxlan port", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\nvxlan_dst_port = 8472\n",
			"DATAPLANE_DRIVER_EVPN", "vxlan_dst_port", "8472", ""},
		{"evpn linux vxlan port bad", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\nvxlan_dst_port = 70000\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_EVPN] vxlan_dst_port = "70000": expected a port number from 1 to 65535`},
		{"evpn ovs bridge default", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = ovs\n",
			"DATAPLANE_DRIVER_EVPN", "ovs_bridge", "br-tun", ""},
		{"ipvpn ovs bool", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\nvxlan_encap = True\n",
			"DATAPLANE_DRIVER_IPVPN", "vxlan_encap", "true", ""},
		{"ipvpn ovs mpls_over_gre", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\nmpls_over_gre = false\n",
			"DATAPLANE_DRIVER_IPVPN", "mpls_over_gre", "False", ""},
		{"ipvpn ovs hash_method bad", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\nhash_method = random\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_IPVPN] hash_method = "random": expected one of hash, dp_hash`},
		{"ipvpn ovs gre options list", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\ngre_tunnel_options = packet_type=legacy_l3, a=b\n",
			"DATAPLANE_DRIVER_IPVPN", "gre_tunnel_options", "packet_type=legacy_l3,a=b", ""},
		{"ipvpn ovs input_table bad", "[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\ninput_table = 255\n", "", "", "",
			`bgp.conf: [DATAPLANE_DRIVER_IPVPN] input_table = "255": expected an integer from 0 to 254`},
		// [DEFAULT] logging
		{"debug", "[DEFAULT]\ndebug = True\n", "", "", "", ""},
		{"debug bad", "[DEFAULT]\ndebug = loud\n", "", "", "",
			`bgp.conf: [DEFAULT] debug = "loud": expected a boolean: true/false, yes/no, on/off or 1/0`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Parse("bgp.conf", []byte(base+tc.conf))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("Parse succeeded, want error %q", tc.err)
				}
				if err.Error() != tc.err {
					t.Fatalf("error\n got %q\nwant %q", err.Error(), tc.err)
				}
				var ce *Error
				if !errors.As(err, &ce) {
					t.Fatalf("error %T is not a *config.Error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if tc.section == "" {
				return
			}
			if got := c.Sections()[tc.section][tc.option]; got != tc.want {
				t.Errorf("[%s] %s = %q, want %q", tc.section, tc.option, got, tc.want)
			}
		})
	}
}

func TestMissingRequired(t *testing.T) {
	cases := []struct{ conf, err string }{
		{"", `bgp.conf: [BGP] local_address is missing: expected ` + addrOrIfExpected},
		{"[BGP]\nmy_as = 1\n", `bgp.conf: [BGP] local_address is missing: expected ` + addrOrIfExpected},
		{"[BGP]\nlocal_address = 10.0.0.1\n", `bgp.conf: [BGP] my_as is missing: expected an integer from 1 to 4294967295`},
		{"[bgpp]\nlocal_address = 10.0.0.1\nmy_as = 1\n", `bgp.conf: [BGP] local_address is missing: expected ` + addrOrIfExpected},
	}
	for _, tc := range cases {
		_, _, err := Parse("bgp.conf", []byte(tc.conf))
		if err == nil || err.Error() != tc.err {
			t.Errorf("Parse(%q) error = %v, want %q", tc.conf, err, tc.err)
		}
	}
}

func TestTypedValues(t *testing.T) {
	c, _ := mustParse(t, `[DEFAULT]
debug = true
use_syslog = yes
log_file = /var/log/bagpipe-bgp.log
[BGP]
local_address = 10.0.0.1
my_as = 4200000001
peers = 10.0.0.2, 10.0.0.3
enable_rtc = False
bgp_port = 1179
passive = on
hold_time = 9
connect_retry = 2
[API]
host = ::
port = 8083
[DATAPLANE_DRIVER_EVPN]
dataplane_driver = bagpipe.bgp.vpn.evpn.linux_vxlan.LinuxVXLANDataplaneDriver
dataplane_local_address = 10.0.1.1
`)
	want := BGP{
		LocalAddress: netip.MustParseAddr("10.0.0.1"),
		Peers:        []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")},
		MyAS:         4200000001,
		Port:         1179,
		Passive:      true,
		HoldTime:     9 * time.Second,
		ConnectRetry: 2 * time.Second,
	}
	if !reflect.DeepEqual(c.BGP, want) {
		t.Errorf("BGP = %+v, want %+v", c.BGP, want)
	}
	if c.API.Addr() != "[::]:8083" {
		t.Errorf("API.Addr() = %q", c.API.Addr())
	}
	if c.Log != (Log{Debug: true, UseSyslog: true, File: "/var/log/bagpipe-bgp.log"}) {
		t.Errorf("Log = %+v", c.Log)
	}
	wantEVPN := Dataplane{Driver: DriverLinux, LocalAddress: netip.MustParseAddr("10.0.1.1"),
		Options: map[string]string{"vxlan_dst_port": "4789"}}
	if !reflect.DeepEqual(c.EVPN, wantEVPN) {
		t.Errorf("EVPN = %+v, want %+v", c.EVPN, wantEVPN)
	}
	if c.IPVPN.LocalAddress != c.BGP.LocalAddress {
		t.Errorf("IPVPN local address %s does not default to the BGP one", c.IPVPN.LocalAddress)
	}
}

func TestSectionNamesCaseInsensitive(t *testing.T) {
	for _, bgp := range []string{"BGP", "bgp", "Bgp", "bGp"} {
		for _, def := range []string{"DEFAULT", "default", "Default"} {
			conf := "[" + def + "]\ndebug = true\n[" + bgp + "]\nlocal_address = 10.0.0.1\nmy_as = 7\n[api]\nport = 1\n[dataplane_driver_evpn]\ndataplane_driver = ovs\n[Dataplane_Driver_IPVPN]\ndataplane_driver = linux\n"
			c, w := mustParse(t, conf)
			if c.BGP.MyAS != 7 || !c.Log.Debug || c.API.Port != 1 || c.EVPN.Driver != DriverOVS || c.IPVPN.Driver != DriverLinux || len(w) != 0 {
				t.Errorf("[%s]/[%s]: got %+v, warnings %q", bgp, def, c, w)
			}
		}
	}
	// Options before any section belong to [DEFAULT], as with oslo.config.
	c, _ := mustParse(t, "debug = true\n"+base)
	if !c.Log.Debug {
		t.Error("option before the first section not read as [DEFAULT]")
	}
}

func TestDriverAliases(t *testing.T) {
	cases := []struct{ section, value, want string }{
		{"DATAPLANE_DRIVER_EVPN", "dummy", "dummy"},
		{"DATAPLANE_DRIVER_EVPN", "DummyDataplaneDriver", "dummy"},
		{"DATAPLANE_DRIVER_EVPN", "bagpipe.bgp.vpn.evpn.DummyDataplaneDriver", "dummy"},
		{"DATAPLANE_DRIVER_EVPN", "linux", "linux"},
		{"DATAPLANE_DRIVER_EVPN", "Linux", "linux"},
		{"DATAPLANE_DRIVER_EVPN", "linux_vxlan.LinuxVXLANDataplaneDriver", "linux"},
		{"DATAPLANE_DRIVER_EVPN", "bagpipe.bgp.vpn.evpn.linux_vxlan.LinuxVXLANDataplaneDriver", "linux"},
		{"DATAPLANE_DRIVER_EVPN", "ovs", "ovs"},
		{"DATAPLANE_DRIVER_IPVPN", "dummy", "dummy"},
		{"DATAPLANE_DRIVER_IPVPN", "DummyDataplaneDriver", "dummy"},
		{"DATAPLANE_DRIVER_IPVPN", "bagpipe.bgp.vpn.ipvpn.DummyDataplaneDriver", "dummy"},
		{"DATAPLANE_DRIVER_IPVPN", "linux", "linux"},
		{"DATAPLANE_DRIVER_IPVPN", "mpls_linux_dataplane.MPLSLinuxDataplaneDriver", "linux"},
		{"DATAPLANE_DRIVER_IPVPN", "bagpipe.bgp.vpn.ipvpn.mpls_linux_dataplane.MPLSLinuxDataplaneDriver", "linux"},
		{"DATAPLANE_DRIVER_IPVPN", "ovs", "ovs"},
		{"DATAPLANE_DRIVER_IPVPN", "mpls_ovs_dataplane.MPLSOVSDataplaneDriver", "ovs"},
		{"DATAPLANE_DRIVER_IPVPN", "bagpipe.bgp.vpn.ipvpn.mpls_ovs_dataplane.MPLSOVSDataplaneDriver", "ovs"},
	}
	for _, tc := range cases {
		c, _ := mustParse(t, base+"["+tc.section+"]\ndataplane_driver = "+tc.value+"\n")
		if got := c.Sections()[tc.section]["dataplane_driver"]; got != tc.want {
			t.Errorf("[%s] dataplane_driver = %s: got %q, want %q", tc.section, tc.value, got, tc.want)
		}
	}
	// Class names of the other VPN type are refused.
	for _, v := range []string{"bagpipe.bgp.vpn.ipvpn.DummyDataplaneDriver", "linux_vxlan.LinuxVXLANDataplaneDriver"} {
		if _, _, err := Parse("bgp.conf", []byte(base+"[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = "+v+"\n"+
			"[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = "+v+"\n")); err == nil {
			t.Errorf("%s accepted in both sections", v)
		}
	}
}

func TestInterfaceResolution(t *testing.T) {
	c, w := mustParse(t, "[BGP]\nlocal_address = lo\nmy_as = 1\n")
	if c.BGP.LocalAddress != netip.MustParseAddr("127.0.0.1") || c.BGP.LocalInterface != "lo" {
		t.Errorf("lo resolved to %s (%q)", c.BGP.LocalAddress, c.BGP.LocalInterface)
	}
	if c.EVPN.LocalAddress != c.BGP.LocalAddress || c.IPVPN.LocalInterface != "lo" {
		t.Errorf("dataplane addresses do not follow BGP: %+v %+v", c.EVPN, c.IPVPN)
	}
	if len(w) != 0 {
		t.Errorf("warnings %q", w)
	}

	_, _, err := Parse("bgp.conf", []byte("[BGP]\nlocal_address = nosuchif0\nmy_as = 1\n"))
	if err == nil || !strings.HasPrefix(err.Error(), `bgp.conf: [BGP] local_address = "nosuchif0": expected `+addrOrIfExpected+` (no interface "nosuchif0" on this host`) {
		t.Errorf("missing interface: error %v", err)
	}

	orig := interfaceIPv4
	defer func() { interfaceIPv4 = orig }()
	interfaceIPv4 = func(name string) (netip.Addr, error) {
		return orig("lo-with-no-such-name-" + name)
	}
	if _, _, err := Parse("bgp.conf", []byte("[BGP]\nlocal_address = eth9\nmy_as = 1\n")); err == nil {
		t.Error("lookup failure not reported")
	}
}

func TestWarnings(t *testing.T) {
	_, w := mustParse(t, base+`[BGP]
my_asn = 5
[API]
api_host = 127.0.0.2
api_port = 8082
[COMMON]
root_helper = sudo
root_helper_daemon = sudo neutron-rootwrap-daemon /etc/bagpipe-bgp/rootwrap.conf
[DATAPLANE_DRIVER]
dataplane_driver = dummy
[Whatever]
x = 1
[DATAPLANE_DRIVER_IPVPN]
mpls_interface = *gre*
ovsbr_interfaces_mtu = 4000
[DATAPLANE_DRIVER_EVPN]
dataplane_driver = linux
ovs_bridge = br-tun
[DEFAULT]
log_file = /etc/bagpipe-bgp/log.conf
[BGP]
peers = 10.0.0.2, 10.0.0.2
`)
	want := []string{
		`bgp.conf: [DATAPLANE_DRIVER] is obsolete and ignored; use [DATAPLANE_DRIVER_IPVPN] and [DATAPLANE_DRIVER_EVPN]`,
		`bgp.conf: [WHATEVER] is not a bagpipe-bgp section; ignored (sections are DEFAULT, BGP, API, COMMON, DATAPLANE_DRIVER_EVPN, DATAPLANE_DRIVER_IPVPN)`,
		`bgp.conf: [DEFAULT] log_file = "/etc/bagpipe-bgp/log.conf" looks like a logging configuration file (legacy); ignored`,
		`bgp.conf: [BGP] peers lists 10.0.0.2 more than once; using it once`,
		`bgp.conf: [BGP] my_asn: unknown option; ignored (check the spelling; bagpipe-bgp --help lists the options)`,
		`bgp.conf: [API] api_host is a deprecated name; use host`,
		`bgp.conf: [API] api_port is a deprecated name; use port`,
		`bgp.conf: [COMMON] root_helper, root_helper_daemon: accepted for compatibility but unused (this bagpipe-bgp uses netlink and needs no root helper); remove to silence this warning`,
		`bgp.conf: [DATAPLANE_DRIVER_EVPN] ovs_bridge: only read by the ovs driver; ignored with dataplane_driver = linux`,
		`bgp.conf: [DATAPLANE_DRIVER_IPVPN] mpls_interface: only read by the linux and ovs drivers; ignored with dataplane_driver = dummy`,
		`bgp.conf: [DATAPLANE_DRIVER_IPVPN] ovsbr_interfaces_mtu: only read by the ovs driver; ignored with dataplane_driver = dummy`,
	}
	if !reflect.DeepEqual(w, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(w, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrorsAreOneLine(t *testing.T) {
	for _, conf := range []string{
		base + "[BGP]\nmy_as = 1,\n  2\n",
		base + "[BGP]\npeers = 10.0.0.1,\n  x\n  y\n",
		"[BGP\nmy_as=1\n",
		"[BGP]\njust words\n",
	} {
		_, _, err := Parse("my\nbgp.conf", []byte(conf))
		if err == nil {
			t.Errorf("Parse(%q) succeeded", conf)
			continue
		}
		if strings.ContainsAny(err.Error(), "\r\n") {
			t.Errorf("Parse(%q): multi-line error %q", conf, err)
		}
		if !strings.HasPrefix(err.Error(), "my bgp.conf: ") {
			t.Errorf("Parse(%q): error %q does not start with the file name", conf, err)
		}
	}
}

// TestDocumentedDefaults checks that every documented default, written
// explicitly, gives the same configuration as leaving the option out.
func TestDocumentedDefaults(t *testing.T) {
	ref, _ := mustParse(t, base+"[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\n[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\n")
	seen := map[string]bool{}
	for _, o := range Options() {
		id := o.Section + "/" + o.Driver + "/" + o.Name
		if seen[id] {
			t.Errorf("option %s listed twice", id)
		}
		seen[id] = true
		if o.Help == "" {
			t.Errorf("option %s has no help", id)
		}
		if o.Required || o.Default == "" || o.Name == "dataplane_local_address" {
			continue
		}
		if o.Driver != "" && !(o.Section == sectionEVPN && o.Driver == DriverLinux || o.Section == sectionIPVPN && o.Driver == DriverOVS) {
			continue
		}
		if o.Name == "dataplane_driver" {
			continue
		}
		c, _ := mustParse(t, base+"[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\n[DATAPLANE_DRIVER_IPVPN]\ndataplane_driver = ovs\n["+o.Section+"]\n"+o.Name+" = "+o.Default+"\n")
		if !reflect.DeepEqual(c, ref) {
			t.Errorf("[%s] %s = %s (documented default) differs from leaving it out:\n%+v\n%+v", o.Section, o.Name, o.Default, c, ref)
		}
	}
	if len(seen) < 20 {
		t.Errorf("only %d options listed", len(seen))
	}
}

func TestUpstreamTemplate(t *testing.T) {
	// etc/bagpipe-bgp/bgp.conf.template, with eth0 replaced by lo.
	c, w := mustParse(t, `[BGP]
local_address=lo
peers=192.168.0.101
my_as=64512
enable_rtc=True

[API]
# BGP component API IP address and port
host=localhost
port=8082

[DATAPLANE_DRIVER_IPVPN]
# IP VPN dataplane driver class
dataplane_driver = DummyDataplaneDriver
mpls_interface=*gre*
ovsbr_interfaces_mtu=4000

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = DummyDataplaneDriver
`)
	if c.BGP.MyAS != 64512 || len(c.BGP.Peers) != 1 || c.API.Host != "localhost" || c.IPVPN.Driver != DriverDummy {
		t.Errorf("template parsed as %+v", c)
	}
	if len(w) != 2 {
		t.Errorf("warnings %q, want 2 (driver options ignored with dummy)", w)
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bgp.conf")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load(path)
	if err != nil || c.File != path || c.BGP.MyAS != 64512 {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	if _, _, err := Load(path + ".missing"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) error = %v, want one wrapping os.ErrNotExist", err)
	}
	_, _, err = Load(filepath.Join(filepath.Dir(path), "x.conf"))
	if err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestQuotesAndDuplicates(t *testing.T) {
	c, _ := mustParse(t, base+"[API]\nhost = \"localhost\"\n[BGP]\nmy_as = 1\nmy_as = 2\n")
	if c.API.Host != "localhost" || c.BGP.MyAS != 2 {
		t.Errorf("host %q my_as %d: want quotes removed and the last my_as", c.API.Host, c.BGP.MyAS)
	}
}
