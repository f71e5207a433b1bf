package cli

import (
	"flag"
	"io"
)

const attachUsage = `usage: bagpipe-rest-attach [--attach|--detach] --network-type (ipvpn|evpn) --port (<port>|netns) --ip <ip>[/<mask>] [options] (see --help)

Attaches (or detaches) a local port to a VPN instance of a running
bagpipe-bgp through its REST API (POST /attach_localport or
/detach_localport), printing the request and the response.

--port netns[:<if>] creates (on attach) a network namespace named after
--netns (default: the VPN instance id) linked to this network namespace by a
veth pair (<if>, default "ns-<netns>", here; --if2vpn inside) with the IP
address, MAC and default route of the port.

Differences from upstream's rest_attach.py:
  --attract-to-rt is sent as attract_traffic.to_rt (upstream sends "to",
    which bagpipe-bgp ignores);
  --detach with --port netns deletes the veth pair after the request, and
    the namespace too when bagpipe-rest-attach created it (marker file
    /run/bagpipe-rest-attach/netns/<netns>);
  --server, --api-port and --config-file choose the API (upstream always
    uses 127.0.0.1 and [API] port of /etc/bagpipe-bgp/bgp.conf);
  the response body is printed as text (upstream prints Python bytes).

Options:
`

// ParseAttachArgs parses bagpipe-rest-attach's command line (without the
// program name). For -h/--help it prints the usage on stdout and returns
// flag.ErrHelp; a malformed option is reported on stderr as optparse does
// and returned.
func ParseAttachArgs(args []string, stdout, stderr io.Writer) (*AttachOptions, error) {
	o := &AttachOptions{
		VPNInstanceID: DefaultVPNInstanceID,
		Direction:     DirectionBoth,
		OVSBridge:     DefaultOVSBridge,
		If2VPN:        DefaultIf2VPN,
		Server:        "127.0.0.1",
		ConfigFile:    DefaultConfigFile,
	}
	fs := newFlagSet("bagpipe-rest-attach")
	fs.Var(constValue[string]{&o.Operation, "attach"}, "attach", "attach local port")
	fs.Var(constValue[string]{&o.Operation, "detach"}, "detach", "detach local port")
	fs.Var(choiceValue{&o.NetworkType, []string{IPVPN, EVPN}}, "network-type", "network type (ipvpn or evpn)")
	fs.StringVar(&o.VPNInstanceID, "vpn-instance-id", o.VPNInstanceID, "`id` of the VPN instance (default bagpipe-test becomes <network-type>-bagpipe-test)")
	fs.StringVar(&o.Port, "port", "", "local `port` to attach/detach: an interface name, 'netns[:if]' for an interface to a local network namespace [with 'if' as the name of the interface to the netns], or 'evpn:<id>' to plug an E-VPN instance into an ipvpn")
	fs.Var(choiceValue{&o.Direction, []string{DirectionToPort, DirectionFromPort, DirectionBoth}}, "direction", "local port direction (to-port|from-port|both) in VPN")
	fs.Var(listValue{&o.RTs}, "rt", "route target, import and export (repeatable; default 64512:512 for ipvpn, 64512:513 for evpn when no RT option is given)")
	fs.Var(listValue{&o.ImportRTs}, "import-rt", "import-only route target (repeatable)")
	fs.Var(listValue{&o.ExportRTs}, "export-rt", "export-only route target (repeatable)")
	fs.StringVar(&o.IP, "ip", "", "IP `prefix` / mask (mask defaults to /24)")
	fs.StringVar(&o.GatewayIP, "gateway-ip", "", "IP `address` of network gateway (default: second-to-last address of the subnet)")
	fs.StringVar(&o.MAC, "mac", "", "MAC `address` (required for evpn if port is not 'netns'; default for ipvpn 52:54:00:99:99:22)")
	fs.Var(constValue[bool]{&o.AdvertiseSub, false}, "advertise-singleton", "advertise IP address as a /32 (default)")
	fs.Var(constValue[bool]{&o.AdvertiseSub, true}, "advertise-subnet", "advertise the whole IP subnet")
	fs.BoolVar(&o.OVSPreplug, "ovs-preplug", false, "plug the port into an OVS bridge first (ipvpn)")
	fs.StringVar(&o.OVSBridge, "ovs-bridge", o.OVSBridge, "if preplug, which OVS `bridge` to use")
	fs.IntVar(&o.OVSVLAN, "ovs-vlan", 0, "if specified, only this `VLAN` from the OVS interface is attached to the VPN instance")
	fs.StringVar(&o.Netns, "netns", "", "`name` of network namespace (for use with --port netns; default: the VPN instance id)")
	fs.StringVar(&o.If2VPN, "if2vpn", o.If2VPN, "`name` of interface in netns toward VPN (for use with --port netns)")
	fs.Var(listValue{&o.ReadvFromRTs}, "readv-from-rt", "enables route readvertisement from these RTs, with --readv-to-rt (repeatable)")
	fs.Var(listValue{&o.ReadvToRTs}, "readv-to-rt", "enables route readvertisement to these RTs, with --readv-from-rt (repeatable)")
	fs.Var(listValue{&o.RedirectRTs}, "redirect-rts", "redirection route targets to attract traffic matching the classifier (repeatable)")
	fs.Var(classifierValue{&o.Classifier, "sourcePrefix"}, "source-prefix", "traffic classifier source prefix filter")
	fs.Var(classifierValue{&o.Classifier, "destinationPrefix"}, "destination-prefix", "traffic classifier destination prefix filter")
	fs.Var(classifierValue{&o.Classifier, "sourcePort"}, "source-port", "traffic classifier source port number or range filter")
	fs.Var(classifierValue{&o.Classifier, "destinationPort"}, "destination-port", "traffic classifier destination port number or range filter")
	fs.Var(classifierValue{&o.Classifier, "protocol"}, "protocol", "traffic classifier IP protocol filter")
	fs.Var(listValue{&o.AttractToRTs}, "attract-to-rt", "enables route advertisement to these RTs, with --static-destination-prefix (repeatable; sent as attract_traffic.to_rt)")
	fs.Var(listValue{&o.StaticDest}, "static-destination-prefix", "static destination prefix to advertise, with --attract-to-rt (repeatable)")
	fs.IntVar(&o.LBHashOrder, "lb-consistent-hash-order", 0, "load balancing consistent hash sort `order`")
	fs.IntVar(&o.VNI, "vni", 0, "VXLAN `VNI` to use for this VPN instance")
	fs.IntVar(&o.LocalPref, "local-pref", 0, "BGP LOCAL_PREF `value` (not sent when unset or 0)")
	fs.StringVar(&o.Server, "server", o.Server, "IP `address` or name of bagpipe-bgp's REST API")
	fs.IntVar(&o.APIPort, "api-port", 0, "`port` of bagpipe-bgp's REST API (default: [API] port of --config-file, else 8082)")
	fs.IntVar(&o.APIPort, "port-api", 0, "same as --api-port")
	fs.StringVar(&o.ConfigFile, "config-file", o.ConfigFile, "bagpipe-bgp configuration `file` to read [API] port from (used only if it exists, unless given explicitly)")
	if _, err := parseInterspersed(fs, args); err != nil {
		return nil, reportFlagError(fs, err, attachUsage, attachShortUsage, stdout, stderr)
	}
	fs.Visit(func(f *flag.Flag) { o.configExplicit = o.configExplicit || f.Name == "config-file" })
	return o, nil
}

// ResolveAPIPort sets APIPort, when no --api-port was given, from [API]
// port of the configuration file (which must exist only when --config-file
// was given explicitly), else 8082.
func (o *AttachOptions) ResolveAPIPort() error {
	if o.APIPort != 0 {
		return nil
	}
	port, err := ReadAPIPort(o.ConfigFile, o.configExplicit)
	if err != nil {
		return err
	}
	o.APIPort = port
	return nil
}
