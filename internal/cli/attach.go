package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Values of --network-type and --direction, as upstream.
const (
	IPVPN = "ipvpn"
	EVPN  = "evpn"

	DirectionBoth     = "both"
	DirectionToPort   = "to-port"
	DirectionFromPort = "from-port"
)

// Upstream rest_attach.py defaults.
const (
	// DefaultVPNInstanceID becomes "<type>-bagpipe-test".
	DefaultVPNInstanceID = "bagpipe-test"
	// DefaultIPVPNRT and DefaultEVPNRT are used when no RT option is given.
	DefaultIPVPNRT = "64512:512"
	DefaultEVPNRT  = "64512:513"
	// DefaultIPVPNMAC is the MAC sent for an ipvpn port without --mac.
	DefaultIPVPNMAC = "52:54:00:99:99:22"
	// DefaultIf2VPN is the interface name inside a netns port's namespace.
	DefaultIf2VPN = "tovpn"
	// DefaultOVSBridge is the bridge of --ovs-preplug.
	DefaultOVSBridge = "br-int"
	// linuxDevLen is the longest Linux interface name (IFNAMSIZ-1).
	linuxDevLen = 15
)

// UsageError is a command-line mistake: the tool prints the usage and
// exits with status 2, as optparse's parser.error does.
type UsageError struct{ Msg string }

// Error implements error.
func (e *UsageError) Error() string { return e.Msg }

func usageErrorf(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// KV is one classifier option, in command-line order.
type KV struct{ Key, Value string }

// Classifier is attract_traffic.classifier: the traffic classifier options
// in the order they were first given (a repeated option keeps its place and
// takes the last value, like a Python dict update).
type Classifier []KV

// Set records key=value.
func (c *Classifier) Set(key, value string) {
	for i := range *c {
		if (*c)[i].Key == key {
			(*c)[i].Value = value
			return
		}
	}
	*c = append(*c, KV{key, value})
}

// MarshalJSON renders the classifier as an object in option order.
func (c Classifier) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.Key)
		v, _ := json.Marshal(kv.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// AttachOptions are bagpipe-rest-attach's options (upstream names in
// comments where the field name differs).
type AttachOptions struct {
	Operation     string // "attach" or "detach"
	NetworkType   string // --network-type
	VPNInstanceID string
	Port          string // --port: <if>, netns[:<if>] or evpn:<id>
	Direction     string
	RTs           []string // --rt
	ImportRTs     []string // --import-rt
	ExportRTs     []string // --export-rt
	IP            string
	GatewayIP     string // --gateway-ip
	MAC           string
	AdvertiseSub  bool // --advertise-subnet / --advertise-singleton
	OVSPreplug    bool
	OVSBridge     string
	OVSVLAN       int
	Netns         string
	If2VPN        string
	ReadvFromRTs  []string
	ReadvToRTs    []string
	RedirectRTs   []string
	Classifier    Classifier
	AttractToRTs  []string // --attract-to-rt
	StaticDest    []string // --static-destination-prefix
	LBHashOrder   int      // --lb-consistent-hash-order
	VNI           int
	LocalPref     int // 0: not sent (upstream tests "if options.local_pref")
	Server        string
	APIPort       int    // 0: from ConfigFile or 8082
	ConfigFile    string // --config-file

	// If2Netns is the host-side interface of a netns port, set by
	// Normalize for --port netns[:<if>].
	If2Netns string

	// configExplicit records that --config-file was given.
	configExplicit bool
}

// NetnsMode reports whether --port asks for a namespace port (valid after
// Normalize, which sets If2Netns then).
func (o *AttachOptions) NetnsMode() bool { return o.If2Netns != "" }

var hasMask = regexp.MustCompile(`/[0-9]+$`)

// Normalize checks the mandatory options and applies upstream's defaults,
// in upstream's order: RTs, /24 mask, gateway (announced on out as
// upstream prints it), "<type>-bagpipe-test" instance id, and for a netns
// port the namespace name and host-side interface name.
func (o *AttachOptions) Normalize(out io.Writer) error {
	switch {
	case o.Operation == "":
		return usageErrorf("Need to specify --attach or --detach")
	case o.Port == "":
		return usageErrorf("Need to specify --port <localport>")
	case o.NetworkType == "":
		return usageErrorf("Need to specify --network-type")
	case o.IP == "":
		return usageErrorf("Need to specify --ip")
	}
	if len(o.RTs) == 0 && len(o.ImportRTs) == 0 && len(o.ExportRTs) == 0 {
		if o.NetworkType == IPVPN {
			o.RTs = []string{DefaultIPVPNRT}
		} else {
			o.RTs = []string{DefaultEVPNRT}
		}
	}
	if !hasMask.MatchString(o.IP) {
		o.IP += "/24"
	}
	if o.GatewayIP == "" {
		gw, err := DefaultGateway(o.IP)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "using %s as gateway address\n", gw)
		o.GatewayIP = gw.String()
	}
	if o.VPNInstanceID == DefaultVPNInstanceID {
		o.VPNInstanceID = o.NetworkType + "-" + o.VPNInstanceID
	}
	if strings.HasPrefix(o.Port, "netns") {
		if o.Netns == "" {
			o.Netns = o.VPNInstanceID
		}
		if parts := strings.Split(o.Port, ":"); len(parts) == 2 {
			o.If2Netns = parts[1]
		} else {
			o.If2Netns = HostIfName(o.Netns)
		}
		if o.If2Netns == "" {
			return usageErrorf("--port netns: needs an interface name after the colon")
		}
	}
	return nil
}

// HostIfName is the default host-side interface of the netns port of
// namespace ns: "ns-<ns>" truncated to 15 characters.
func HostIfName(ns string) string {
	n := "ns-" + ns
	if len(n) > linuxDevLen {
		n = n[:linuxDevLen]
	}
	return n
}

// DefaultGateway returns the second-to-last address of the subnet of ip
// ("a.b.c.d/len"), as upstream's netaddr net[-2]: 10.0.0.5/24 gives
// 10.0.0.254.
func DefaultGateway(ip string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(ip)
	if err != nil {
		return netip.Addr{}, usageErrorf("--ip %s is not an IP address with an optional /mask: %v", ip, err)
	}
	bits := p.Addr().BitLen()
	if p.Bits() == bits {
		return netip.Addr{}, usageErrorf("--ip %s has no second-to-last address: give --gateway-ip", ip)
	}
	b := p.Masked().Addr().AsSlice()
	// Set every host bit (the last address), then subtract one.
	for i := p.Bits(); i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	for i := len(b) - 1; i >= 0; i-- {
		b[i]--
		if b[i] != 0xff {
			break
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}

// LocalPort is the local_port object of a request.
type LocalPort struct {
	LinuxIf string    `json:"linuxif,omitempty"`
	OVS     *OVSPort  `json:"ovs,omitempty"`
	EVPN    *EVPNPort `json:"evpn,omitempty"`
}

// OVSPort is local_port.ovs, sent with --ovs-preplug.
type OVSPort struct {
	PortName string `json:"port_name"`
	Plugged  bool   `json:"plugged"`
	VLAN     int    `json:"vlan,omitempty"`
}

// EVPNPort is local_port.evpn: plug an E-VPN instance into an IP VPN.
type EVPNPort struct {
	ID string `json:"id"`
}

// Readvertise is the readvertise object.
type Readvertise struct {
	FromRT []string `json:"from_rt"`
	ToRT   []string `json:"to_rt"`
}

// AttractTraffic is the attract_traffic object ({} when unused).
type AttractTraffic struct {
	RedirectRTs               []string   `json:"redirect_rts,omitempty"`
	Classifier                Classifier `json:"classifier,omitempty"`
	ToRT                      []string   `json:"to_rt,omitempty"`
	StaticDestinationPrefixes []string   `json:"static_destination_prefixes,omitempty"`
}

// AttachBody is the JSON body bagpipe-rest-attach posts, with upstream's
// keys in upstream's order (reference §2.3.3, last example).
type AttachBody struct {
	ImportRT              []string       `json:"import_rt"`
	ExportRT              []string       `json:"export_rt"`
	LocalPort             LocalPort      `json:"local_port"`
	VPNInstanceID         string         `json:"vpn_instance_id"`
	VPNType               string         `json:"vpn_type"`
	GatewayIP             string         `json:"gateway_ip"`
	MACAddress            string         `json:"mac_address"`
	IPAddress             string         `json:"ip_address"`
	AdvertiseSubnet       bool           `json:"advertise_subnet"`
	Readvertise           *Readvertise   `json:"readvertise"`
	AttractTraffic        AttractTraffic `json:"attract_traffic"`
	LBConsistentHashOrder int            `json:"lb_consistent_hash_order"`
	VNI                   int            `json:"vni"`
	LocalPref             *int           `json:"local_pref,omitempty"`
	Direction             string         `json:"direction"`
}

// Body builds the request body from normalised options. o.Port must
// already be the final local port name (for a netns port, the host-side
// interface) and o.MAC the netns interface's MAC when it was read there.
// Upstream's one deviation fixed here: --attract-to-rt is sent as
// attract_traffic.to_rt (upstream sends "to", which the server ignores).
func (o *AttachOptions) Body() (*AttachBody, error) {
	b := &AttachBody{
		ImportRT:              append(append([]string{}, o.RTs...), o.ImportRTs...),
		ExportRT:              append(append([]string{}, o.RTs...), o.ExportRTs...),
		VPNInstanceID:         o.VPNInstanceID,
		VPNType:               o.NetworkType,
		GatewayIP:             o.GatewayIP,
		IPAddress:             o.IP,
		AdvertiseSubnet:       o.AdvertiseSub,
		LBConsistentHashOrder: o.LBHashOrder,
		VNI:                   o.VNI,
		Direction:             o.Direction,
	}
	if id, ok := strings.CutPrefix(o.Port, "evpn:"); ok {
		if o.NetworkType != IPVPN {
			return nil, fmt.Errorf("--port %s: can only plug an evpn into an ipvpn (use --network-type ipvpn)", o.Port)
		}
		b.LocalPort.EVPN = &EVPNPort{ID: id}
	} else {
		b.LocalPort.LinuxIf = o.Port
		if o.OVSPreplug && o.NetworkType == IPVPN {
			b.LocalPort.OVS = &OVSPort{PortName: o.Port, Plugged: true, VLAN: o.OVSVLAN}
		}
	}
	b.MACAddress = o.MAC
	if b.MACAddress == "" {
		if o.NetworkType != IPVPN {
			return nil, usageErrorf("Need to specify --mac for an EVPN network attachment if port is not 'netns'")
		}
		b.MACAddress = DefaultIPVPNMAC
	}
	if len(o.ReadvToRTs) > 0 {
		b.Readvertise = &Readvertise{FromRT: append([]string{}, o.ReadvFromRTs...), ToRT: o.ReadvToRTs}
	}
	if len(o.RedirectRTs) > 0 {
		if len(o.Classifier) == 0 {
			return nil, usageErrorf("Need to specify --redirect-rt and at least one traffic classifier option")
		}
		b.AttractTraffic.RedirectRTs = o.RedirectRTs
		b.AttractTraffic.Classifier = o.Classifier
		if len(o.AttractToRTs) > 0 {
			if len(o.StaticDest) == 0 {
				return nil, usageErrorf("Need to specify --attract-to-rt and at least one static destination prefix option")
			}
			b.AttractTraffic.ToRT = o.AttractToRTs
			b.AttractTraffic.StaticDestinationPrefixes = o.StaticDest
		}
	}
	if o.LocalPref != 0 {
		lp := o.LocalPref
		b.LocalPref = &lp
	}
	return b, nil
}

// PythonJSON renders v the way Python's json.dumps does by default (what
// upstream prints and sends): ", " and ": " separators, non-ASCII
// characters escaped as \uXXXX, "<", ">" and "&" left as they are.
func PythonJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("cannot encode the request as JSON: %w", err)
	}
	in := bytes.TrimRight(buf.Bytes(), "\n")
	out := make([]byte, 0, len(in)+len(in)/4)
	inString, escaped := false, false
	for i := 0; i < len(in); {
		c := in[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(in[i:])
			if r >= 0x10000 {
				r -= 0x10000
				out = fmt.Appendf(out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				out = fmt.Appendf(out, `\u%04x`, r)
			}
			i += size
			continue
		}
		out = append(out, c)
		i++
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			out = append(out, ' ')
		}
	}
	return out, nil
}
