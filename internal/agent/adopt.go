package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
)

// Endpoint is an endpoint bagpipe-bgp has, as its looking glass shows it.
type Endpoint struct {
	// VPNType is "evpn" (an EVI) or "ipvpn" (a VRF).
	VPNType string
	// InstanceID is the instance's vpn_instance_id.
	InstanceID string
	// LinuxIF is the local port name.
	LinuxIF string
	// MAC and IP are the endpoint's addresses (IP as "a.b.c.d/len", or "").
	MAC, IP string
	// PortID is the "port" of the endpoint's description (what the agent
	// and the Neutron agent put there); "" when there is none.
	PortID string
}

// Endpoints lists every endpoint of every VPN instance from bagpipe-bgp's
// looking glass (vpns/instances, then each instance and its ports).
func (c *BGPClient) Endpoints(ctx context.Context) ([]Endpoint, error) {
	var list []struct {
		ID string `json:"id"`
	}
	if err := c.getJSON(ctx, "/looking-glass/vpns/instances", &list); err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, in := range list {
		base := "/looking-glass/vpns/instances/" + url.PathEscape(in.ID)
		var info struct {
			Type string `json:"instance_type"`
		}
		var ports map[string]struct {
			Endpoints []struct {
				MAC         string          `json:"mac_address"`
				IP          *string         `json:"ip_address"`
				Description json.RawMessage `json:"description"`
			} `json:"endpoints"`
		}
		if err := c.getJSON(ctx, base, &info); err != nil {
			if _, gone := isRejected(err); gone {
				continue // stopped meanwhile
			}
			return nil, err
		}
		if err := c.getJSON(ctx, base+"/ports", &ports); err != nil {
			if _, gone := isRejected(err); gone {
				continue
			}
			return nil, err
		}
		typ := map[string]string{"EVI": "evpn", "VRF": "ipvpn"}[info.Type]
		if typ == "" {
			return nil, fmt.Errorf("bagpipe-bgp's looking glass gives instance %s the unknown type %q", in.ID, info.Type)
		}
		names := make([]string, 0, len(ports))
		for n := range ports {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, ep := range ports[n].Endpoints {
				e := Endpoint{VPNType: typ, InstanceID: in.ID, LinuxIF: n, MAC: ep.MAC}
				if ep.IP != nil {
					e.IP = *ep.IP
				}
				var d struct {
					Port string `json:"port"`
				}
				if json.Unmarshal(ep.Description, &d) == nil {
					e.PortID = d.Port
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// getJSON GETs path and decodes the JSON answer.
func (c *BGPClient) getJSON(ctx context.Context, path string, out any) error {
	b, err := c.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
		return fmt.Errorf("bagpipe-bgp's looking glass %s is not what the agent expects: %w", path, err)
	}
	return nil
}

// Attachment returns the attachment that bagpipe-bgp would detach e with
// (its identifying fields only).
func (e Endpoint) Attachment() Attachment {
	m := map[string]any{"vpn_type": e.VPNType, "vpn_instance_id": e.InstanceID, "mac_address": e.MAC,
		"local_port": map[string]string{"linuxif": e.LinuxIF}}
	if e.IP != "" {
		m["ip_address"] = e.IP
	}
	b, _ := json.Marshal(m)
	a, _ := ParseAttachment(b) // has vpn_type and vpn_instance_id
	return a
}

// Stale returns, by port id, the endpoints of eps made for a port (their
// description names one) that desired does not have: what bagpipe-bgp
// keeps from ports deleted, moved, set down or readdressed while the agent
// was not running. Endpoints without a port description (attached by
// hand) are never included.
func Stale(eps []Endpoint, desired map[string][]Attachment) map[string][]Attachment {
	want := map[string]bool{}
	for _, l := range desired {
		for _, a := range l {
			want[endpointID(a.Raw)] = true
		}
	}
	out := map[string][]Attachment{}
	for _, e := range eps {
		if e.PortID == "" {
			continue
		}
		a := e.Attachment()
		if want[endpointID(a.Raw)] {
			continue
		}
		out[e.PortID] = append(out[e.PortID], a)
	}
	return out
}

// endpointID identifies an attachment's endpoint the way bagpipe-bgp
// does, whatever the spelling: type, instance, local port name, MAC (lower
// case) and IP as a prefix (a bare IPv4 address is a /32, reference
// §2.3.1).
func endpointID(raw json.RawMessage) string {
	var m struct {
		Type     string          `json:"vpn_type"`
		Instance string          `json:"vpn_instance_id"`
		MAC      string          `json:"mac_address"`
		IP       string          `json:"ip_address"`
		Local    json.RawMessage `json:"local_port"`
	}
	_ = json.Unmarshal(raw, &m)
	var ifname string
	if json.Unmarshal(m.Local, &ifname) != nil {
		var lp struct {
			Linuxif string `json:"linuxif"`
		}
		_ = json.Unmarshal(m.Local, &lp)
		ifname = lp.Linuxif
	}
	ip := m.IP
	if p, err := netip.ParsePrefix(ip); err == nil {
		ip = p.String()
	} else if a, err := netip.ParseAddr(ip); err == nil {
		ip = netip.PrefixFrom(a, a.BitLen()).String()
	}
	return strings.Join([]string{m.Type, m.Instance, ifname, strings.ToLower(m.MAC), ip}, "|")
}
