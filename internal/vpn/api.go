// Package vpn is the VPN layer of bagpipe-bgp (reference §5): the manager
// that owns VPN instances by external id, the identifier allocators (labels
// and VNIs, RDs, instance ids), and the instances themselves — E-VPN EVIs
// (evi.go) and IP VPN VRFs (vrf.go). Each instance is an engine worker with its own
// goroutine; it tracks received routes per destination, selects best paths
// and hands its dataplane only the differences.
package vpn

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Type is a VPN type: "evpn" or "ipvpn".
type Type string

// VPN types.
const (
	EVPN  Type = "evpn"
	IPVPN Type = "ipvpn"
)

// AttachRequest is a validated, normalised attach_localport request
// (reference §2.3). The REST layer builds it from JSON; tests and the
// controller may build it directly.
type AttachRequest struct {
	Type       Type
	InstanceID string // vpn_instance_id
	MAC        route.MAC
	// IP is the endpoint address with its prefix length ("a.b.c.d" is /32);
	// invalid when absent (E-VPN MAC-only endpoint).
	IP netip.Prefix
	// AdvertiseSubnet: advertise IP as given instead of a /32.
	AdvertiseSubnet bool
	LocalPort       dataplane.LocalPort
	ImportRTs       []route.RT
	ExportRTs       []route.RT
	GatewayIP       netip.Addr // ipvpn: required at creation
	LBOrder         uint32     // lb_consistent_hash_order
	LocalPref       *uint32    // nil → 100
	VNI             uint32     // 0: allocate
	LinuxBridge     string     // linuxbr (evpn)
	Direction       dataplane.Direction
	Readvertise     *Readvertise
	AttractTraffic  *AttractTraffic
	Fallback        *Fallback
	// InstanceDescription is overwritten on every attach (nil clears it).
	InstanceDescription *string
	// Description is the free-form per-endpoint description (raw JSON).
	Description json.RawMessage
}

// DetachRequest is a validated detach_localport request (reference §2.4).
type DetachRequest struct {
	Type       Type
	InstanceID string
	MAC        route.MAC
	IP         netip.Prefix // invalid: E-VPN wildcard detach (all IPs of MAC)
	LocalPort  dataplane.LocalPort
}

// Readvertise is the readvertise object (IP VPN, reference §5.6).
type Readvertise struct {
	FromRTs []route.RT
	ToRTs   []route.RT
}

// AttractTraffic is the attract_traffic object (reference §5.7).
type AttractTraffic struct {
	RedirectRTs               []route.RT
	Classifier                json.RawMessage
	ToRTs                     []route.RT
	StaticDestinationPrefixes []netip.Prefix
}

// Fallback is the fallback object (OVS IP VPN driver, reference §5.8).
type Fallback struct {
	SrcMAC        string `json:"src_mac"`
	DstMAC        string `json:"dst_mac"`
	OVSPortNumber int    `json:"ovs_port_number"`
}

// Error is a client mistake (the REST layer answers 4xx with Msg): unknown
// instance, endpoint not plugged, VNI clash, inconsistent port, ... Any
// other error from the manager is a server-side failure (500).
type Error struct {
	Status int // HTTP status to answer: 400, 404 or 409
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func clientErr(status int, format string, a ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// The manager's public methods (implemented in manager.go):
//
//	func NewManager(cfg ManagerConfig) (*Manager, error)
//	   ManagerConfig{Engine *engine.Engine; LocalAddress netip.Addr (BGP, RDs);
//	                 EVPNDriver dataplane.EVPNDriver; IPVPNDriver dataplane.IPVPNDriver;
//	                 Links Links (EVI↔VRF veths); Log *slog.Logger; Hostname string}
//	func (m *Manager) Attach(ctx context.Context, req AttachRequest) error
//	func (m *Manager) Detach(ctx context.Context, req DetachRequest) error
//	func (m *Manager) Instances() []InstanceInfo               // snapshot, never blocks route processing
//	func (m *Manager) Instance(externalID string) (InstanceInfo, bool)
//	func (m *Manager) Stop(ctx context.Context)               // stop every instance (dataplane cleanup)
