package dataplane

import (
	"net/netip"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// IPVPNDriver creates per-VRF dataplanes (reference §7.2–7.3).
type IPVPNDriver interface {
	Driver
	// Directions lists the endpoint directions the driver supports
	// (upstream: only "both" except for the OVS driver).
	Directions() []Direction
	NewVRF(cfg VRFConfig) (VRFDataplane, error)
}

// VRFConfig identifies an IP VPN instance to its dataplane.
type VRFConfig struct {
	InstanceID   uint32 // internal id (1, 2, ...)
	ExternalID   string // vpn_instance_id from the API
	Label        uint32 // the instance label (MPLS label / VNI of the VRF)
	LocalAddress netip.Addr
	// GatewayIP and PrefixLen: the VRF subnet given at creation
	// (gateway_ip, prefix length of the first ip_address).
	GatewayIP netip.Addr
	PrefixLen int
	Fallback  *Fallback
}

// Fallback is the OVS driver's "send unmatched traffic there" (reference
// §5.8).
type Fallback struct {
	SrcMAC, DstMAC string
	OVSPortNumber  int
}

// PortRange is an inclusive range of TCP/UDP ports; the zero value means
// "any".
type PortRange struct{ Min, Max uint16 }

// Classifier selects traffic for a FlowSpec redirect (reference §4.7,
// §5.7): each set field must match.
type Classifier struct {
	SourcePrefix      netip.Prefix
	DestinationPrefix netip.Prefix
	SourcePort        PortRange
	DestinationPort   PortRange
	Protocol          uint8 // IP protocol number, 0 = any
}

// VRFChangeKind enumerates remote-route changes for a VRF.
type VRFChangeKind uint8

// VRF change kinds.
const (
	AddRoute    VRFChangeKind = iota + 1 // prefix via next hop (one ECMP member)
	RemoveRoute                          // remove that next hop of the prefix
)

func (k VRFChangeKind) String() string {
	return [...]string{"?", "add-route", "remove-route"}[k]
}

// VRFChange is one remote route next hop: traffic to Prefix goes to the
// PE NextHop with Label (MPLS label, or VNI with VXLAN), encapsulated with
// Encap (one of the driver's encaps that the route advertised). Several
// AddRoute for one prefix with different next hops form an ECMP group on
// drivers with ECMP; LBOrder is the route's consistent hash sort order
// (the OVS select-group bucket id).
type VRFChange struct {
	Kind    VRFChangeKind
	Prefix  netip.Prefix
	NextHop netip.Addr
	Label   uint32
	Encap   route.Encap
	LBOrder uint32
}

// VRFDataplane is the dataplane of one IP VPN instance. Methods are called
// from the instance's goroutine only.
type VRFDataplane interface {
	// Plug attaches a local endpoint: traffic from the port enters the VRF
	// (unless direction is to-port) and traffic to ip with label is sent
	// to the port (unless from-port).
	Plug(port LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir Direction) error
	// Unplug detaches it; last is true for the port's last endpoint.
	Unplug(port LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir Direction, last bool) error
	// Apply programs a batch of remote route changes, in order.
	Apply(changes []VRFChange) error
	// AddClassifier sends traffic matching c to the VRF redirectTo
	// (FlowSpec redirect-to-VRF); RemoveClassifier undoes it.
	AddClassifier(c Classifier, redirectTo uint32) error
	RemoveClassifier(c Classifier, redirectTo uint32) error
	// UpdateFallback changes the fallback (nil removes it).
	UpdateFallback(f *Fallback) error
	// Info is the per-instance looking-glass object.
	Info() map[string]any
	// Close removes the VRF's dataplane state.
	Close() error
}
