package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"unicode/utf8"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// errNoDetails is upstream's answer to an empty or non-JSON body (400
// without the "API error: " prefix).
var errNoDetails = errors.New("No local port details received")

// decodeBody parses a request body into an object (reference §2.1: the
// Content-Type is not checked). An empty, non-UTF-8 or non-JSON body is
// errNoDetails; a JSON value that is not an object is a validation error
// (upstream answers 500 there).
func decodeBody(body []byte) (params, error) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, errNoDetails
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, errNoDetails
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badf("the request body must be a JSON object, not %s", jsonType(v))
	}
	return params(m), nil
}

// vpnType checks vpn_type (upstream VPNManager._check_instance_type).
func vpnType(p params, hasDriver func(vpn.Type) bool) (vpn.Type, error) {
	v, ok := p["vpn_type"]
	if !ok || v == nil {
		return "", badf("missing instance_type")
	}
	s, _ := v.(string)
	t := vpn.Type(s)
	if t != vpn.EVPN && t != vpn.IPVPN {
		return "", badf("unknown vpn_type: %s", show(v))
	}
	if !hasDriver(t) {
		return "", badf("No dataplane driver for VPN type %s", t)
	}
	return t, nil
}

// common is what attach and detach share (upstream
// VPNInstance.validate_convert_params, in its order).
type common struct {
	typ        vpn.Type
	instanceID string
	mac        route.MAC
	ip         netip.Prefix
	localPort  dataplane.LocalPort
	advertise  bool
}

func parseCommon(p params, t vpn.Type, attach bool) (common, error) {
	c := common{typ: t}
	mandatory := []string{"vpn_instance_id", "mac_address", "local_port"}
	if attach {
		mandatory = append(mandatory, "import_rt", "export_rt")
	}
	if t == vpn.IPVPN {
		mandatory = append(mandatory, "ip_address")
	}
	for _, k := range mandatory {
		if !p.present(k) {
			return c, badf("Missing parameter: '%s'", k)
		}
	}
	id, err := str("vpn_instance_id", p["vpn_instance_id"])
	if err != nil {
		return c, err
	}
	if id == "" {
		return c, badf("'vpn_instance_id' must not be empty")
	}
	c.instanceID = id
	if c.localPort, err = localPort(p["local_port"]); err != nil {
		return c, err
	}
	if c.mac, err = parseMAC(p["mac_address"]); err != nil {
		return c, err
	}
	if p.present("ip_address") {
		if c.ip, err = parseIP(p["ip_address"]); err != nil {
			return c, err
		}
	}
	if v, ok := p["advertise_subnet"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return c, badf("'advertise_subnet' must be a boolean")
		}
		c.advertise = b
	}
	return c, nil
}

// parseAttach validates and normalises an attach_localport body
// (reference §2.3.1, §2.3.2, §2.5).
func parseAttach(p params, hasDriver func(vpn.Type) bool) (vpn.AttachRequest, error) {
	var req vpn.AttachRequest
	t, err := vpnType(p, hasDriver)
	if err != nil {
		return req, err
	}
	c, err := parseCommon(p, t, true)
	if err != nil {
		return req, err
	}
	if c.localPort.EVPN != "" {
		if t != vpn.IPVPN {
			return req, badf("'local_port.evpn' is only supported with vpn_type ipvpn")
		}
		if c.localPort.LinuxIf != "" {
			return req, badf("'local_port' cannot have both a non-empty 'linuxif' and 'evpn'")
		}
	}
	req = vpn.AttachRequest{
		Type: t, InstanceID: c.instanceID, MAC: c.mac, IP: c.ip,
		AdvertiseSubnet: c.advertise, LocalPort: c.localPort,
		Direction: dataplane.DirectionBoth,
	}

	// direction: missing, null or "" mean both (Python "or").
	if v := p["direction"]; v != nil && v != "" {
		s, _ := v.(string)
		switch d := dataplane.Direction(s); d {
		case dataplane.DirectionBoth, dataplane.DirectionToPort, dataplane.DirectionFromPort:
			req.Direction = d
		default:
			return req, badf("direction should be one of: both, to-port, from-port")
		}
	}
	if t == vpn.IPVPN && !p.present("gateway_ip") {
		return req, badf("Missing parameter: 'gateway_ip'")
	}
	if p.present("gateway_ip") {
		if req.GatewayIP, err = parseAddr4("gateway_ip", p["gateway_ip"]); err != nil {
			return req, err
		}
	}
	if req.ImportRTs, err = routeTargets("import_rt", p["import_rt"], true); err != nil {
		return req, err
	}
	if req.ExportRTs, err = routeTargets("export_rt", p["export_rt"], true); err != nil {
		return req, err
	}
	if req.Readvertise, err = readvertise(p["readvertise"]); err != nil {
		return req, err
	}
	if req.AttractTraffic, err = attractTraffic(p["attract_traffic"]); err != nil {
		return req, err
	}
	if v := p["lb_consistent_hash_order"]; v != nil {
		n, err := integer("lb_consistent_hash_order", v, 0, math.MaxUint32)
		if err != nil {
			return req, err
		}
		req.LBOrder = uint32(n)
	}
	if v := p["local_pref"]; v != nil {
		n, err := integer("local_pref", v, 0, math.MaxUint32)
		if err != nil {
			return req, err
		}
		// Upstream uses "local_pref or 100": 0 means the default too.
		if n != 0 {
			lp := uint32(n)
			req.LocalPref = &lp
		}
	}
	if v := p["vni"]; v != nil {
		n, err := integer("vni", v, 0, 1<<24-1)
		if err != nil {
			return req, err
		}
		req.VNI = uint32(n)
	}
	if v := p["linuxbr"]; v != nil {
		s, err := str("linuxbr", v)
		if err != nil {
			return req, err
		}
		if t == vpn.EVPN { // upstream ignores it for ipvpn
			req.LinuxBridge = s
		}
	}
	if req.Fallback, err = fallback(p["fallback"]); err != nil {
		return req, err
	}
	if v := p["instance_description"]; v != nil {
		s, err := str("instance_description", v)
		if err != nil {
			return req, err
		}
		req.InstanceDescription = &s
	}
	if v := p["description"]; v != nil {
		if req.Description, err = canonical("description", v); err != nil {
			return req, err
		}
	}
	return req, nil
}

// parseDetach validates a detach_localport body (reference §2.4).
func parseDetach(p params, hasDriver func(vpn.Type) bool) (vpn.DetachRequest, error) {
	t, err := vpnType(p, hasDriver)
	if err != nil {
		return vpn.DetachRequest{}, err
	}
	c, err := parseCommon(p, t, false)
	if err != nil {
		return vpn.DetachRequest{}, err
	}
	return vpn.DetachRequest{Type: t, InstanceID: c.instanceID, MAC: c.mac, IP: c.ip, LocalPort: c.localPort}, nil
}

// truthy is Python truthiness for decoded JSON (upstream tests
// "if readvertise:" and "if attract_traffic:").
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case json.Number:
		f, err := t.Float64()
		return err != nil || f != 0
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}

// readvertise reads {"from_rt": [...], "to_rt": [...]}; null or an empty
// value means none.
func readvertise(v any) (*vpn.Readvertise, error) {
	if !truthy(v) {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr("readvertise", "an object", v)
	}
	for _, k := range []string{"from_rt", "to_rt"} {
		if m[k] == nil {
			return nil, badf("Missing parameter: '%s' in 'readvertise'", k)
		}
	}
	from, err := routeTargets("readvertise.from_rt", m["from_rt"], false)
	if err != nil {
		return nil, err
	}
	to, err := routeTargets("readvertise.to_rt", m["to_rt"], false)
	if err != nil {
		return nil, err
	}
	return &vpn.Readvertise{FromRTs: from, ToRTs: to}, nil
}

// attractTraffic reads attract_traffic (reference §2.3.1, §5.7); null or
// {} (what bagpipe-rest-attach sends) means none. The constraints that
// depend on readvertise ("exactly one RT", equal to_rt lists) are checked
// at instance creation by the VPN manager, as upstream.
func attractTraffic(v any) (*vpn.AttractTraffic, error) {
	if !truthy(v) {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr("attract_traffic", "an object", v)
	}
	if m["redirect_rts"] == nil {
		return nil, badf("Missing parameter: 'redirect_rts' in 'attract_traffic'")
	}
	at := &vpn.AttractTraffic{}
	var err error
	if at.RedirectRTs, err = routeTargets("attract_traffic.redirect_rts", m["redirect_rts"], false); err != nil {
		return nil, err
	}
	cl, ok := m["classifier"]
	if !ok || cl == nil {
		return nil, badf("'attract_traffic' specified with no 'classifier'")
	}
	if _, ok := cl.(map[string]any); !ok {
		return nil, typeErr("attract_traffic.classifier", "an object", cl)
	}
	if at.Classifier, err = canonical("attract_traffic.classifier", cl); err != nil {
		return nil, err
	}
	if m["to_rt"] != nil {
		if at.ToRTs, err = routeTargets("attract_traffic.to_rt", m["to_rt"], false); err != nil {
			return nil, err
		}
		if m["static_destination_prefixes"] == nil {
			return nil, badf("'attract_traffic/to_rt' specified without 'static_destination_prefixes'")
		}
	}
	if x := m["static_destination_prefixes"]; x != nil {
		l, ok := x.([]any)
		if !ok {
			return nil, typeErr("attract_traffic.static_destination_prefixes", "a list of IPv4 prefixes", x)
		}
		for _, e := range l {
			pfx, err := parseIP(e)
			if err != nil {
				return nil, badf("in 'attract_traffic.static_destination_prefixes': %v", err)
			}
			at.StaticDestinationPrefixes = append(at.StaticDestinationPrefixes, pfx)
		}
	}
	return at, nil
}

// fallback reads {"src_mac", "dst_mac", "ovs_port_number"} (reference
// §5.8); null or {} means none. MACs are stored in canonical form.
func fallback(v any) (*vpn.Fallback, error) {
	if !truthy(v) {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, typeErr("fallback", "an object", v)
	}
	fb := &vpn.Fallback{}
	for _, k := range []string{"src_mac", "dst_mac"} {
		x := m[k]
		if x == nil {
			continue
		}
		mac, err := parseMAC(x)
		if err != nil {
			return nil, badf("in 'fallback.%s': %v", k, err)
		}
		if k == "src_mac" {
			fb.SrcMAC = mac.String()
		} else {
			fb.DstMAC = mac.String()
		}
	}
	if x := m["ovs_port_number"]; x != nil {
		n, err := intOrDigits("fallback.ovs_port_number", x, 0, math.MaxInt32)
		if err != nil {
			return nil, err
		}
		fb.OVSPortNumber = int(n)
	}
	return fb, nil
}
