package lab

import (
	"fmt"
	"net/netip"
	"strings"
)

// AS is the AS of every lab speaker (iBGP).
const AS = 64512

// APIPort is the REST API port of bagpipe-bgp in a node namespace (each
// namespace has its own loopback, so every node uses upstream's default).
const APIPort = 8082

// BagpipeConf returns the bgp.conf of a compute node: local_address and
// the VTEP are the node's underlay address, the peer is the route
// reflector (BGP port 179), the REST API listens on 127.0.0.1:8082 of the
// node's namespace and E-VPN uses evpnDriver ("linux" for real VXLAN).
func BagpipeConf(local, rr netip.Addr, evpnDriver string) string {
	return fmt.Sprintf(`[BGP]
local_address = %s
peers = %s
my_as = %d
connect_retry = 1

[API]
host = 127.0.0.1
port = %d

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = %s
`, local, rr, AS, APIPort, evpnDriver)
}

// GoBGPFamilies are the AFI-SAFIs the gobgpd route reflector carries, as
// upstream's samples/gobgp.conf.
var GoBGPFamilies = []string{"l2vpn-evpn", "l3vpn-ipv4-unicast", "l3vpn-ipv4-flowspec", "rtc"}

// GoBGPConf returns a gobgpd TOML configuration: a route reflector on
// rr:179 (router ID and cluster ID rr) waiting for its passive clients.
func GoBGPConf(rr netip.Addr, clients []netip.Addr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[global.config]\n  as = %d\n  router-id = %q\n  port = 179\n  local-address-list = [%q]\n", AS, rr, rr)
	for _, c := range clients {
		fmt.Fprintf(&b, "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = %q\n    peer-as = %d\n", c, AS)
		fmt.Fprintf(&b, "  [neighbors.transport.config]\n    passive-mode = true\n    local-address = %q\n", rr)
		fmt.Fprintf(&b, "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = %q\n", rr)
		for _, f := range GoBGPFamilies {
			fmt.Fprintf(&b, "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = %q\n", f)
		}
	}
	return b.String()
}

// GoBGPArgs are gobgpd's arguments for a configuration file: its gRPC API
// on 127.0.0.1:50051 of its namespace, no pprof.
func GoBGPArgs(conf string) []string {
	return []string{"-f", conf, "-t", "toml", "--api-hosts", "127.0.0.1:50051", "-p", "--pprof-disable"}
}
