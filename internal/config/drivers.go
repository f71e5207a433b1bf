package config

import (
	"strconv"
	"strings"
)

// Dataplane driver names. Upstream's class paths and short aliases are
// normalised to these (reference §3.1).
const (
	DriverDummy = "dummy" // records calls only; control-plane-only nodes and tests
	DriverLinux = "linux" // Linux kernel (bridge + VXLAN; IP VPN: policy routing + VXLAN)
	DriverOVS   = "ovs"   // Open vSwitch flows
)

// evpnDriverAliases maps every accepted [DATAPLANE_DRIVER_EVPN]
// dataplane_driver spelling to its canonical name.
var evpnDriverAliases = map[string]string{
	"dummy":                DriverDummy,
	"DummyDataplaneDriver": DriverDummy,
	"bagpipe.bgp.vpn.evpn.DummyDataplaneDriver": DriverDummy,
	"linux":                                 DriverLinux,
	"linux_vxlan.LinuxVXLANDataplaneDriver": DriverLinux,
	"bagpipe.bgp.vpn.evpn.linux_vxlan.LinuxVXLANDataplaneDriver": DriverLinux,
	"ovs": DriverOVS,
}

// ipvpnDriverAliases maps every accepted [DATAPLANE_DRIVER_IPVPN]
// dataplane_driver spelling to its canonical name.
var ipvpnDriverAliases = map[string]string{
	"dummy":                DriverDummy,
	"DummyDataplaneDriver": DriverDummy,
	"bagpipe.bgp.vpn.ipvpn.DummyDataplaneDriver": DriverDummy,
	"linux": DriverLinux,
	"mpls_linux_dataplane.MPLSLinuxDataplaneDriver":                       DriverLinux,
	"bagpipe.bgp.vpn.ipvpn.mpls_linux_dataplane.MPLSLinuxDataplaneDriver": DriverLinux,
	"ovs": DriverOVS,
	"mpls_ovs_dataplane.MPLSOVSDataplaneDriver":                       DriverOVS,
	"bagpipe.bgp.vpn.ipvpn.mpls_ovs_dataplane.MPLSOVSDataplaneDriver": DriverOVS,
}

// normaliseDriver returns the canonical driver name for v in the given
// section, or an error listing the valid names.
func normaliseDriver(section, v string) (string, error) {
	aliases := evpnDriverAliases
	if section == sectionIPVPN {
		aliases = ipvpnDriverAliases
	}
	v = strings.TrimSpace(v)
	if d, ok := aliases[v]; ok {
		return d, nil
	}
	// Be lenient with the case of the short names only.
	switch l := strings.ToLower(v); l {
	case DriverDummy, DriverLinux, DriverOVS:
		return l, nil
	}
	return "", bad("one of dummy, linux, ovs (or an upstream class name such as "+firstLegacyAlias(section)+")", nil)
}

func firstLegacyAlias(section string) string {
	if section == sectionIPVPN {
		return "mpls_ovs_dataplane.MPLSOVSDataplaneDriver"
	}
	return "DummyDataplaneDriver"
}

// Setters for driver-specific options: they validate and return the
// normalised value kept in Dataplane.Options.

func setPortString(v string) (string, error) {
	p, err := parsePort(v)
	if err != nil {
		return "", err
	}
	return strconv.Itoa(int(p)), nil
}

func setBoolString(v string) (string, error) {
	b, err := parseBool(v)
	if err != nil {
		return "", err
	}
	return strconv.FormatBool(b), nil
}

func setUintString(lo, hi uint64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := parseUint(v, lo, hi)
		if err != nil {
			return "", err
		}
		return strconv.FormatUint(n, 10), nil
	}
}

func setIfName(v string) (string, error) {
	v = strings.TrimSpace(v)
	if !validIfName(v) {
		return "", bad("an interface name (1 to 15 characters, no '/', ':' or spaces)", nil)
	}
	return v, nil
}

func setOptionalIfName(v string) (string, error) {
	if strings.TrimSpace(v) == "" {
		return "", nil
	}
	return setIfName(v)
}

func setString(v string) (string, error) { return strings.TrimSpace(v), nil }

// setListString normalises an oslo.config list to "a,b,c".
func setListString(v string) (string, error) { return strings.Join(splitList(v), ","), nil }

func setChoice(choices ...string) func(string) (string, error) {
	return func(v string) (string, error) { return parseChoice(v, choices...) }
}

// driverOption describes one option that only a given driver reads.
type driverOption struct {
	section, driver, name, def, help string
	new                              bool
	set                              func(string) (string, error)
}

// driverOptions lists the driver-specific options (reference §3.1, "Driver
// options"). Values are validated here and handed to the driver as strings
// in Dataplane.Options.
var driverOptions = []driverOption{
	{section: sectionEVPN, driver: DriverLinux, name: "vxlan_dst_port", def: "4789", set: setPortString,
		help: "VXLAN UDP destination port (8472 for the old Linux default)."},
	{section: sectionEVPN, driver: DriverOVS, name: "ovs_bridge", def: "br-tun", set: setIfName,
		help: "Neutron OVS agent tunnel bridge."},

	{section: sectionIPVPN, driver: DriverLinux, name: "mpls_interface", set: setOptionalIfName,
		help: "Physical interface for MPLS traffic (upstream kernel-MPLS driver); accepted for compatibility."},
	{section: sectionIPVPN, driver: DriverLinux, name: "vxlan_dst_port", def: "4789", set: setPortString, new: true,
		help: "VXLAN UDP destination port used by the policy-routing + VXLAN IP VPN dataplane."},

	{section: sectionIPVPN, driver: DriverOVS, name: "mpls_interface", set: setString,
		help: "Interface for bare MPLS; unset or containing \"gre\" means MPLS over GRE."},
	{section: sectionIPVPN, driver: DriverOVS, name: "mpls_over_gre", def: "auto", set: setChoice("auto", "True", "False"),
		help: "Force MPLS over GRE (auto, True, False)."},
	{section: sectionIPVPN, driver: DriverOVS, name: "proxy_arp", def: "false", set: setBoolString,
		help: "ARP responder answers for any IP address (else for the gateway IP only)."},
	{section: sectionIPVPN, driver: DriverOVS, name: "arp_responder", def: "false", set: setBoolString,
		help: "Enable the per-VRF ARP responder."},
	{section: sectionIPVPN, driver: DriverOVS, name: "vxlan_encap", def: "false", set: setBoolString,
		help: "Accept VXLAN-encapsulated VPN traffic and prefer VXLAN when the remote advertises it."},
	{section: sectionIPVPN, driver: DriverOVS, name: "ovs_bridge", def: "br-mpls", set: setIfName,
		help: "OVS bridge for IP VPN traffic (must exist)."},
	{section: sectionIPVPN, driver: DriverOVS, name: "input_table", def: "0", set: setUintString(0, 254),
		help: "OpenFlow table for traffic entering the bridge."},
	{section: sectionIPVPN, driver: DriverOVS, name: "ovs_table_id_start", def: "1", set: setUintString(0, 253),
		help: "Encap-in table is this, VRF table this+1; must differ from input_table."},
	{section: sectionIPVPN, driver: DriverOVS, name: "gre_tunnel", def: "mpls_gre", set: setIfName,
		help: "Name of the GRE tunnel port created."},
	{section: sectionIPVPN, driver: DriverOVS, name: "gre_tunnel_options", set: setListString,
		help: "Comma-separated k=v options for the GRE interface (e.g. packet_type=legacy_l3)."},
	{section: sectionIPVPN, driver: DriverOVS, name: "ovsbr_interfaces_mtu", set: setOptionalUint(1, 65535),
		help: "Obsolete MTU fixup on plugged OVS ports."},
	{section: sectionIPVPN, driver: DriverOVS, name: "hash_method", def: "dp_hash", set: setChoice("hash", "dp_hash"),
		help: "OVS select-group selection_method (hash, dp_hash)."},
	{section: sectionIPVPN, driver: DriverOVS, name: "hash_method_param", def: "0", set: setUintString(0, 1<<64-1),
		help: "OVS select-group selection_method_param."},
	{section: sectionIPVPN, driver: DriverOVS, name: "hash_fields", set: setListString,
		help: "Comma-separated fields for the hash selection method."},
}

func setOptionalUint(lo, hi uint64) func(string) (string, error) {
	return func(v string) (string, error) {
		if strings.TrimSpace(v) == "" {
			return "", nil
		}
		return setUintString(lo, hi)(v)
	}
}
