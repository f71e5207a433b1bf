package controller

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Network is a Neutron network as stored and as shown by the API. Each
// field is the Neutron attribute named by its JSON tag; RouteTargets is
// ours: the network's E-VPN route targets.
type Network struct {
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Description    string   `json:"description"`
	ProjectID      string   `json:"project_id"`
	TenantID       string   `json:"tenant_id"`
	AdminStateUp   bool     `json:"admin_state_up"`
	Status         string   `json:"status"`
	Shared         bool     `json:"shared"`
	Subnets        []string `json:"subnets"`
	NetworkType    string   `json:"provider:network_type"`
	PhysNet        *string  `json:"provider:physical_network"`
	SegmentationID uint32   `json:"provider:segmentation_id"`
	// RouteTargets are the RTs this network's E-VPN uses for import and
	// export ("<as_number>:<nn>").
	RouteTargets   []string `json:"route_targets"`
	RevisionNumber int64    `json:"revision_number"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
}

// AllocationPool is a range of a subnet's addresses given to ports.
type AllocationPool struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Subnet is a Neutron subnet as stored and as shown by the API. Each
// field is the Neutron attribute named by its JSON tag; GatewayIP is nil
// for a subnet without gateway.
type Subnet struct {
	ID              string           `json:"id"`
	Name            string           `json:"name"`
	Description     string           `json:"description"`
	ProjectID       string           `json:"project_id"`
	TenantID        string           `json:"tenant_id"`
	NetworkID       string           `json:"network_id"`
	IPVersion       int              `json:"ip_version"`
	CIDR            string           `json:"cidr"`
	GatewayIP       *string          `json:"gateway_ip"`
	AllocationPools []AllocationPool `json:"allocation_pools"`
	EnableDHCP      bool             `json:"enable_dhcp"`
	RevisionNumber  int64            `json:"revision_number"`
	CreatedAt       string           `json:"created_at"`
	UpdatedAt       string           `json:"updated_at"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// Port is a Neutron port as stored and as shown by the API. Each field is
// the Neutron attribute named by its JSON tag (binding:* fields are the
// port binding extension's).
type Port struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Description    string         `json:"description"`
	ProjectID      string         `json:"project_id"`
	TenantID       string         `json:"tenant_id"`
	NetworkID      string         `json:"network_id"`
	MACAddress     string         `json:"mac_address"`
	AdminStateUp   bool           `json:"admin_state_up"`
	Status         string         `json:"status"`
	FixedIPs       []FixedIP      `json:"fixed_ips"`
	DeviceID       string         `json:"device_id"`
	DeviceOwner    string         `json:"device_owner"`
	HostID         string         `json:"binding:host_id"`
	VIFType        string         `json:"binding:vif_type"`
	VNICType       string         `json:"binding:vnic_type"`
	Profile        map[string]any `json:"binding:profile"`
	VIFDetails     map[string]any `json:"binding:vif_details"`
	SecurityGroups []string       `json:"security_groups"`
	RevisionNumber int64          `json:"revision_number"`
	CreatedAt      string         `json:"created_at"`
	UpdatedAt      string         `json:"updated_at"`
}

// Attachment is one bagpipe-bgp attach_localport request body (see the
// bagpipe-bgp REST API, POST /attach_localport); each field is the request
// field named by its JSON tag.
type Attachment struct {
	VPNType       string            `json:"vpn_type"`
	VPNInstanceID string            `json:"vpn_instance_id"`
	MACAddress    string            `json:"mac_address"`
	IPAddress     string            `json:"ip_address,omitempty"`
	GatewayIP     string            `json:"gateway_ip,omitempty"`
	LocalPort     map[string]string `json:"local_port"`
	ImportRT      []string          `json:"import_rt"`
	ExportRT      []string          `json:"export_rt"`
	VNI           uint32            `json:"vni"`
	Description   map[string]string `json:"description"`
}

// PortAttachments is what a host's agent must have attached for one port
// (PortID) of network NetworkID.
type PortAttachments struct {
	PortID      string       `json:"port_id"`
	NetworkID   string       `json:"network_id"`
	Attachments []Attachment `json:"attachments"`
}

// TapName is the Linux interface name of a port's tap device, as Nova and
// the Neutron agents name it: "tap" and the first 11 characters of its id.
func TapName(portID string) string {
	if len(portID) > 11 {
		portID = portID[:11]
	}
	return "tap" + portID
}

// ComputeAttachments returns the attachments of port p on network n (subnets
// by id): nil unless p is bound to a host and p and n are administratively
// up. One E-VPN
// attachment per port, with its first IPv4 address (MAC only without one),
// VNI = segmentation id, import = export = the network's route targets.
func ComputeAttachments(p *Port, n *Network, subnets map[string]*Subnet) *PortAttachments {
	if p.HostID == "" || !p.AdminStateUp || !n.AdminStateUp {
		return nil
	}
	a := Attachment{
		VPNType:       "evpn",
		VPNInstanceID: "evpn_" + n.ID,
		MACAddress:    p.MACAddress,
		LocalPort:     map[string]string{"linuxif": TapName(p.ID)},
		ImportRT:      append([]string{}, n.RouteTargets...),
		ExportRT:      append([]string{}, n.RouteTargets...),
		VNI:           n.SegmentationID,
		Description:   map[string]string{"port": p.ID},
	}
	for _, f := range p.FixedIPs {
		ip, err := netip.ParseAddr(f.IPAddress)
		if err != nil || !ip.Is4() {
			continue
		}
		a.IPAddress = f.IPAddress
		if s := subnets[f.SubnetID]; s != nil && s.GatewayIP != nil {
			a.GatewayIP = *s.GatewayIP
		}
		break
	}
	return &PortAttachments{PortID: p.ID, NetworkID: n.ID, Attachments: []Attachment{a}}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// validUUID says whether s is a UUID in its canonical textual form.
func validUUID(s string) bool { return uuidRE.MatchString(s) }

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// now is the timestamp format Neutron uses.
func now() string { return time.Now().UTC().Format("2006-01-02T15:04:05Z") }

// rtNN returns the number part of an "<asn>:<nn>" route target.
func rtNN(rt string) (uint32, bool) {
	i := strings.LastIndexByte(rt, ':')
	if i < 0 {
		return 0, false
	}
	v, err := strconv.ParseUint(rt[i+1:], 10, 32)
	return uint32(v), err == nil
}

// normMAC parses a MAC address and returns it lower-case, colon-separated.
func normMAC(s string) (string, bool) {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '-' })
	if len(parts) != 6 {
		return "", false
	}
	out := make([]string, 6)
	for i, p := range parts {
		if len(p) != 2 {
			return "", false
		}
		v, err := strconv.ParseUint(p, 16, 8)
		if err != nil {
			return "", false
		}
		out[i] = fmt.Sprintf("%02x", v)
	}
	if v, _ := strconv.ParseUint(out[0], 16, 8); v&1 == 1 {
		return "", false // multicast
	}
	return strings.Join(out, ":"), true
}
