// Package dataplane defines the interface between VPN instances and the
// packet dataplane (reference §7): one driver per VPN type, chosen in
// bgp.conf, and one dataplane object per VPN instance. VPN instances compute
// what changed (best paths) and hand the drivers only the differences, in
// batches. Drivers live in sub-packages (dummy, linux, ovs).
package dataplane

import (
	"net/netip"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Direction of an IP VPN endpoint (reference §2.3.1).
type Direction string

// Directions.
const (
	DirectionBoth     Direction = "both"
	DirectionToPort   Direction = "to-port"
	DirectionFromPort Direction = "from-port"
)

// LocalPort describes where an endpoint is plugged (the API's local_port,
// normalised). Raw keeps the original JSON object for consistency checks
// and the looking glass.
type LocalPort struct {
	LinuxIf string
	// VLAN is local_port.vlan (E-VPN OVS driver), 0 if absent.
	VLAN int
	// EVPN is local_port.evpn.id (IP VPN: plug an E-VPN), "" if absent.
	EVPN string
	// OVS is local_port.ovs, nil if absent.
	OVS *OVSPort
	// Raw is the local_port object as received, canonical JSON.
	Raw string
}

// OVSPort is local_port.ovs (IP VPN OVS driver).
type OVSPort struct {
	Plugged    bool   `json:"plugged"`
	PortName   string `json:"port_name,omitempty"`
	PortNumber int    `json:"port_number,omitempty"`
	VLAN       int    `json:"vlan,omitempty"`
}

// Driver is a dataplane driver for one VPN type.
type Driver interface {
	// Name is the driver name as configured ("dummy", "linux", "ovs").
	Name() string
	// Encaps are the encapsulations the driver can receive and send;
	// routes are imported only if their encapsulations intersect these.
	Encaps() []route.Encap
	// ECMP reports whether the driver installs several equal best paths.
	ECMP() bool
	// ResetState removes state left by an earlier run that no instance
	// claims (called once before the first instance, and by
	// bagpipe-bgp-cleanup).
	ResetState() error
	// Info is the driver's looking-glass object.
	Info() map[string]any
	// Close releases driver resources (netlink handles); it does not remove
	// live dataplane state.
	Close() error
}

// EVPNDriver creates per-EVI dataplanes.
type EVPNDriver interface {
	Driver
	NewEVI(cfg EVIConfig) (EVIDataplane, error)
}

// EVIConfig identifies an E-VPN instance to its dataplane.
type EVIConfig struct {
	InstanceID   uint32 // internal id (1, 2, ...)
	ExternalID   string // vpn_instance_id from the API
	VNI          uint32
	LocalAddress netip.Addr // dataplane_local_address (VTEP)
	LinuxBridge  string     // linuxbr, "" to let the driver create one
}

// EVIChangeKind enumerates remote-state changes for an EVI.
type EVIChangeKind uint8

// EVI change kinds.
const (
	AddRemoteMAC    EVIChangeKind = iota + 1 // unicast: MAC → VTEP/VNI (fdb)
	RemoveRemoteMAC                          //
	AddFlood                                 // BUM: flood to VTEP/VNI (ingress replication)
	RemoveFlood                              //
	AddRemoteIP                              // ARP proxy: IP → MAC (permanent neighbour)
	RemoveRemoteIP                           //
)

func (k EVIChangeKind) String() string {
	return [...]string{"?", "add-mac", "remove-mac", "add-flood", "remove-flood", "add-ip", "remove-ip"}[k]
}

// EVIChange is one remote-state change. MAC is set for *RemoteMAC and
// *RemoteIP; IP for *RemoteIP; VTEP and VNI for *RemoteMAC and *Flood.
type EVIChange struct {
	Kind EVIChangeKind
	MAC  route.MAC
	IP   netip.Addr
	VTEP netip.Addr
	VNI  uint32
}

// EVIDataplane is the dataplane of one E-VPN instance. Methods are called
// from the instance's goroutine only.
type EVIDataplane interface {
	// Plug attaches a local endpoint (first endpoint of a port plugs the
	// port itself).
	Plug(port LocalPort, mac route.MAC, ip netip.Addr) error
	// Unplug detaches a local endpoint; last is true when it was the last
	// endpoint on that port.
	Unplug(port LocalPort, mac route.MAC, ip netip.Addr, last bool) error
	// Apply programs a batch of remote-state changes, in order. An error
	// names the changes that failed; the instance retries them later.
	Apply(changes []EVIChange) error
	// SetGatewayPort / GatewayPortDown plug or unplug the EVI↔VRF link.
	SetGatewayPort(linuxIf string) error
	GatewayPortDown(linuxIf string) error
	// Info is the per-instance looking-glass object.
	Info() map[string]any
	// Close removes the instance's dataplane state (last detach).
	Close() error
}
