package daemon

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/api/lg"
	"github.com/bagpipe-go/bagpipe/internal/bgp"
	"github.com/bagpipe-go/bagpipe/internal/config"
	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// lookingGlass builds the upstream looking-glass tree (reference §2.6):
//
//	summary, config, logs, bgp/{peers, routes, workers, route_counts,
//	adv_routes}, vpns/{instances, dataplane, instances_per_vni}
//
// Every value comes from lock-free snapshots (engine stats, peer info,
// instance snapshots) except route listings, which are copied through the
// owning loop (O(routes of that family or instance), never a lock held
// over other processing).
func (d *Daemon) lookingGlass() *lg.Tree {
	root := &lg.Object{Map: map[string]lg.Entry{
		"summary": lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) { return d.summary(), nil }),
		"config":  lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) { return d.Config.Sections(), nil }),
		"logs":    d.Logs.Entry(),
		"bgp":     lg.DelegateEntry(d.bgpNode()),
		"vpns":    lg.DelegateEntry(d.vpnsNode()),
	}}
	t := lg.NewTree(root)
	t.SetLogger(d.Log)
	return t
}

func (d *Daemon) summary() map[string]any {
	st := d.Engine.Stats()
	return map[string]any{
		"BGP_established_peers": d.BGP.EstablishedPeers(),
		"route_counts": map[string]any{
			"local_routes_count":    st.LocalRoutes,
			"received_routes_count": st.ReceivedRoutes,
		},
		"vpn_instances_count": len(d.VPN.Instances()),
		"warnings_and_errors": d.Logs.Len(),
		"start_time":          d.Start.Format("2006-01-02 15:04:05"),
		"version":             Version,
	}
}

// lgFamilies are the families listed under bgp/routes, upstream order.
var lgFamilies = []route.Family{route.FamilyVPNv4, route.FamilyEVPN, route.FamilyRTC, route.FamilyFlowVPN}

func (d *Daemon) bgpNode() lg.Node {
	peers := lg.Funcs{
		ListFunc: func(ctx context.Context) ([]lg.Item, error) {
			var items []lg.Item
			for _, p := range d.BGP.Peers() {
				items = append(items, lg.Item{ID: p.Address.String(), Extra: map[string]any{"state": p.Session.State.String()}})
			}
			return items, nil
		},
		GetFunc: func(ctx context.Context, id string) (lg.Node, bool) {
			a, err := netip.ParseAddr(id)
			if err != nil {
				return nil, false
			}
			if _, ok := d.BGP.Peer(a); !ok {
				return nil, false
			}
			return d.peerNode(a), true
		},
	}
	routes := func(src func(*route.Route) bool) func(ctx context.Context, ref lg.Ref) (any, error) {
		return func(ctx context.Context, ref lg.Ref) (any, error) {
			out := map[string]any{}
			for _, f := range lgFamilies {
				var list []any
				for _, r := range d.Engine.Snapshot(f) {
					if src == nil || src(r) {
						list = append(list, renderRoute(r, ref))
					}
				}
				if list == nil {
					list = []any{}
				}
				out[f.String()+",*"] = list
			}
			return out, nil
		}
	}
	workers := lg.Funcs{
		ListFunc: func(ctx context.Context) ([]lg.Item, error) {
			var items []lg.Item
			for _, in := range d.VPN.Instances() {
				items = append(items, lg.Item{ID: in.Name})
			}
			for _, p := range d.BGP.Peers() {
				items = append(items, lg.Item{ID: "BGP-" + p.Address.String()})
			}
			return items, nil
		},
		GetFunc: func(ctx context.Context, id string) (lg.Node, bool) {
			for _, in := range d.VPN.Instances() {
				if in.Name == id {
					return d.instanceNode(in.ExternalID), true
				}
			}
			for _, p := range d.BGP.Peers() {
				if "BGP-"+p.Address.String() == id {
					return d.peerNode(p.Address), true
				}
			}
			return nil, false
		},
	}
	return &lg.Object{Map: map[string]lg.Entry{
		"peers":   lg.CollectionEntry(peers),
		"routes":  lg.SubtreeEntry(routes(nil)),
		"workers": lg.CollectionEntry(workers),
		"route_counts": lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) {
			st := d.Engine.Stats()
			return map[string]any{"local_routes_count": st.LocalRoutes, "received_routes_count": st.ReceivedRoutes}, nil
		}),
		"adv_routes": lg.SubtreeEntry(routes(func(r *route.Route) bool { return r.Source == d.BGP.Source() })),
	}}
}

func (d *Daemon) peerNode(a netip.Addr) lg.Node {
	return &lg.Object{LocalFunc: func(ctx context.Context, ref lg.Ref) (map[string]any, error) {
		p, _ := d.BGP.Peer(a)
		return peerLocal(p, d.Config.BGP.EnableRTC), nil
	}}
}

func peerLocal(p bgp.PeerInfo, rtcEnabled bool) map[string]any {
	s := p.Session
	fams := make([]string, 0, len(s.Families))
	for _, f := range s.Families {
		fams = append(fams, f.String())
	}
	var last any
	if !s.LastTransition.IsZero() {
		last = s.LastTransition.Format(time.DateTime)
	}
	return map[string]any{
		"peeringAddresses": map[string]any{"peer_address": p.Address.String(), "local_address": addrOrNil(s.LocalAddr)},
		"as_info":          map[string]any{"local": s.LocalAS, "peer": s.PeerAS},
		"rtc":              map[string]any{"active": s.RTC, "enabled": rtcEnabled},
		"active_families":  fams,
		"protocol": map[string]any{
			"state":                s.State.String(),
			"previous_state":       s.PreviousState.String(),
			"hold_time":            int(s.HoldTime / time.Second),
			"last_transition_time": last,
		},
		"name": "BGP-" + p.Address.String(),
		"internals": map[string]any{
			"messages_in": s.MsgsIn, "messages_out": s.MsgsOut,
			"routes_in": p.RoutesIn, "updates_out": p.Updates, "update_errors": p.Errors, "looped_routes_ignored": p.Looped,
			"established_count": s.Established, "last_error": s.LastError,
		},
	}
}

func addrOrNil(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.String()
}

// renderRoute renders a route as upstream does:
// {"<nlri>": {afi-safi, attributes, next_hop, source, route_targets}}.
func renderRoute(r *route.Route, ref lg.Ref) map[string]any {
	v := map[string]any{
		"afi-safi": r.Family.String(),
		"next_hop": addrOrNil(r.NextHop()),
	}
	if r.Source != nil {
		v["source"] = map[string]any{"id": r.Source.Name, "href": ref.Href("bgp", "workers", r.Source.Name)}
	}
	if r.Family == route.FamilyVPNv4 || r.Family == route.FamilyEVPN {
		rts := []string{}
		for _, rt := range r.RTs() {
			rts = append(rts, "target:"+rt.String())
		}
		v["route_targets"] = rts
	}
	v["attributes"] = renderAttrs(r)
	return map[string]any{r.String(): v}
}

func renderAttrs(r *route.Route) map[string]any {
	out := map[string]any{}
	a := r.Attrs
	if a == nil {
		return out
	}
	if a.HasLocalPref {
		out["local-preference"] = strconv.FormatUint(uint64(a.LocalPref), 10)
	}
	if a.HasMED {
		out["multi-exit-disc"] = strconv.FormatUint(uint64(a.MED), 10)
	}
	var ext []string
	for _, rt := range a.RTs {
		ext = append(ext, "target:"+rt.String())
	}
	for _, e := range a.Encaps {
		ext = append(ext, "encap:"+e.String())
	}
	if a.HasLBOrder {
		ext = append(ext, "consistent-hash-sort-order:"+strconv.FormatUint(uint64(a.LBOrder), 10))
	}
	for _, rt := range a.RTRecords {
		ext = append(ext, "rt-record:"+rt.String())
	}
	if a.HasRedirect {
		ext = append(ext, "redirect:"+a.Redirect.String())
	}
	for _, o := range a.OtherExtCommunities {
		ext = append(ext, "0x"+strconv.FormatUint(o, 16))
	}
	if ext != nil {
		out["extended-community"] = "[ " + strings.Join(ext, " ") + " ]"
	}
	if a.PMSI != nil {
		out["pmsi-tunnel"] = "pmsi:" + pmsiType(a.PMSI.TunnelType) + ":" + strconv.Itoa(int(a.PMSI.Flags)) + ":" +
			strconv.FormatUint(uint64(a.PMSI.Label), 10) + ":" + addrString(a.PMSI.TunnelID)
	}
	if r.Family == route.FamilyEVPN || r.Family == route.FamilyVPNv4 {
		out["label"] = strconv.FormatUint(uint64(r.Label), 10)
	}
	return out
}

func pmsiType(t uint8) string {
	if t == route.PMSIIngressReplication {
		return "ingressreplication"
	}
	return strconv.Itoa(int(t))
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func (d *Daemon) vpnsNode() lg.Node {
	instances := lg.Funcs{
		ListFunc: func(ctx context.Context) ([]lg.Item, error) {
			var items []lg.Item
			for _, in := range d.VPN.Instances() {
				extra := map[string]any{"name": in.Name}
				if in.Description != nil {
					extra["description"] = *in.Description
				}
				items = append(items, lg.Item{ID: in.ExternalID, Extra: extra})
			}
			return items, nil
		},
		GetFunc: func(ctx context.Context, id string) (lg.Node, bool) {
			if _, ok := d.VPN.Instance(id); !ok {
				return nil, false
			}
			return d.instanceNode(id), true
		},
	}
	drivers := lg.Funcs{
		ListFunc: func(ctx context.Context) ([]lg.Item, error) {
			var items []lg.Item
			if d.ipvpnDriver != nil {
				items = append(items, lg.Item{ID: "ipvpn"})
			}
			if d.evpnDriver != nil {
				items = append(items, lg.Item{ID: "evpn"})
			}
			return items, nil
		},
		GetFunc: func(ctx context.Context, id string) (lg.Node, bool) {
			var drv dataplane.Driver
			var dc config.Dataplane
			switch {
			case id == "evpn" && d.evpnDriver != nil:
				drv, dc = d.evpnDriver, d.Config.EVPN
			case id == "ipvpn" && d.ipvpnDriver != nil:
				drv, dc = d.ipvpnDriver, d.Config.IPVPN
			default:
				return nil, false
			}
			return &lg.Object{LocalFunc: func(ctx context.Context, _ lg.Ref) (map[string]any, error) {
				info := map[string]any{
					"name":             drv.Name(),
					"local_address":    addrString(dc.LocalAddress),
					"supported_encaps": encapNames(drv.Encaps()),
					"config":           dc.Options,
				}
				for k, v := range drv.Info() {
					info[k] = v
				}
				return info, nil
			}}, true
		},
	}
	return &lg.Object{Map: map[string]lg.Entry{
		"instances": lg.CollectionEntry(instances),
		"dataplane": lg.DelegateEntry(&lg.Object{Map: map[string]lg.Entry{
			"drivers": lg.CollectionEntry(drivers),
			"ids": lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) {
				out := map[string]any{}
				for _, in := range d.VPN.Instances() {
					out[strconv.FormatUint(uint64(in.VNI), 10)] = in.Name + " (" + in.ExternalID + ")"
				}
				return out, nil
			}),
		}}),
		"instances_per_vni": lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) {
			out := map[string]any{}
			for _, in := range d.VPN.Instances() {
				if in.ForcedVNI {
					out[strconv.FormatUint(uint64(in.VNI), 10)] = map[string]any{"name": in.Name, "external_instance_id": in.ExternalID}
				}
			}
			return out, nil
		}),
	}}
}

func encapNames(es []route.Encap) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.String()
	}
	return out
}

func rtStrings(rts []route.RT) []string {
	out := make([]string, len(rts))
	for i, rt := range rts {
		out[i] = rt.String()
	}
	return out
}

func (d *Daemon) instanceNode(id string) lg.Node {
	in, _ := d.VPN.Instance(id)
	isVRF := in.Type == "VRF"
	routesEntry := func(best bool) lg.Entry {
		return lg.SubtreeEntry(func(ctx context.Context, ref lg.Ref) (any, error) {
			received, bests, err := d.VPN.InstanceRoutes(ctx, id)
			if err != nil {
				return nil, err
			}
			list := received
			if best {
				list = bests
			}
			out := map[string]any{}
			for _, r := range list {
				k := trackedEntry(r)
				l, _ := out[k].([]any)
				out[k] = append(l, renderRoute(r, ref))
			}
			return out, nil
		})
	}
	node := &lg.Object{
		LocalFunc: func(ctx context.Context, ref lg.Ref) (map[string]any, error) {
			in, ok := d.VPN.Instance(id)
			if !ok {
				return nil, &lg.NotFoundError{Segment: id, Prefix: ref.URL()}
			}
			local := instanceLocal(in)
			if in.Type == "VRF" {
				vrfLocal(local, in, ref, d.VPN)
			} else if l := in.Link; l != nil {
				local["gateway_port"] = map[string]any{"interface": l.EVIIf, "ipvpn": linkPeer(ref, l.VRF, d.VPN)}
			}
			return local, nil
		},
		Map: map[string]lg.Entry{
			"ports": lg.SubtreeEntry(func(ctx context.Context, _ lg.Ref) (any, error) {
				in, ok := d.VPN.Instance(id)
				if !ok {
					return map[string]any{}, nil
				}
				return portsLocal(in), nil
			}),
			"received_routes": routesEntry(false),
			"best_routes":     routesEntry(true),
			"adv_routes": lg.SubtreeEntry(func(ctx context.Context, ref lg.Ref) (any, error) {
				in, ok := d.VPN.Instance(id)
				if !ok {
					return []any{}, nil
				}
				var list []any
				for _, f := range []route.Family{route.FamilyEVPN, route.FamilyVPNv4, route.FamilyFlowVPN} {
					for _, r := range d.Engine.Snapshot(f) {
						if r.Source != nil && r.Source.Name == in.Name {
							list = append(list, renderRoute(r, ref))
						}
					}
				}
				if list == nil {
					list = []any{}
				}
				return list, nil
			}),
			"dataplane": lg.SubtreeEntry(func(ctx context.Context, ref lg.Ref) (any, error) {
				info, err := d.VPN.InstanceDataplane(ctx, id)
				if err != nil {
					return nil, err
				}
				in, _ := d.VPN.Instance(id)
				out := map[string]any{}
				for k, v := range info {
					out[k] = v
				}
				out["driver"] = map[string]any{"id": string(in.VPNType), "href": ref.Href("vpns", "dataplane", "drivers", string(in.VPNType))}
				return out, nil
			}),
		},
	}
	if isVRF {
		// The routes the VRF readvertises (readvertise, attract_traffic).
		node.Map["readvertised"] = lg.SubtreeEntry(func(ctx context.Context, ref lg.Ref) (any, error) {
			in, _ := d.VPN.Instance(id)
			list := []any{}
			for _, r := range in.Readvertised {
				list = append(list, renderRoute(r, ref))
			}
			return list, nil
		})
	}
	return node
}

// vrfLocal adds the VRF fields of an instance's looking-glass object
// (reference §2.6).
func vrfLocal(local map[string]any, in vpn.InstanceInfo, ref lg.Ref, m *vpn.Manager) {
	delete(local, "gateway_port")
	local["gateway_ip"] = addrString(in.GatewayIP)
	local["subnet_prefix_length"] = in.SubnetPrefixLen
	rv := map[string]any{}
	if in.Readvertise != nil {
		rv = map[string]any{"from": rtStrings(in.Readvertise.FromRTs), "to": rtStrings(in.Readvertise.ToRTs)}
	}
	local["readvertise"] = rv
	at := map[string]any{}
	if a := in.AttractTraffic; a != nil {
		var cl any
		_ = json.Unmarshal(a.Classifier, &cl)
		prefixes := []string{}
		for _, p := range a.StaticDestinationPrefixes {
			prefixes = append(prefixes, p.String())
		}
		at = map[string]any{"redirect_rts": rtStrings(a.RedirectRTs), "classifier": cl, "to": rtStrings(a.ToRTs),
			"static_destination_prefixes": prefixes}
	}
	local["attract_traffic"] = at
	var fb any
	if in.Fallback != nil {
		fb = map[string]any{"src_mac": in.Fallback.SrcMAC, "dst_mac": in.Fallback.DstMAC, "ovs_port_number": in.Fallback.OVSPortNumber}
	}
	local["fallback"] = fb
	if in.RedirectFor != 0 {
		local["redirect_for"] = in.RedirectFor.String()
	}
	var link any
	if l := in.Link; l != nil {
		link = map[string]any{"interface": l.VRFIf, "evpn": linkPeer(ref, l.EVI, m)}
	}
	local["evpn_link"] = link
}

// linkPeer renders the other side of an EVI↔VRF link.
func linkPeer(ref lg.Ref, ext string, m *vpn.Manager) map[string]any {
	out := map[string]any{"id": ext, "external_instance_id": ext, "href": ref.Href("vpns", "instances", ext)}
	if in, ok := m.Instance(ext); ok {
		out["id"] = in.Name
	}
	return out
}

// trackedEntry is the key routes are grouped under in received/best routes.
func trackedEntry(r *route.Route) string {
	switch r.EVPNType() {
	case route.EVPNMACIP:
		mac, ip, _ := r.MACIP()
		if ip.IsValid() {
			return "MAC:" + mac.String() + "/" + ip.String()
		}
		return "MAC:" + mac.String()
	case route.EVPNMulticast:
		o, _ := r.Originator()
		rd, _ := r.RD()
		return "Multicast:" + o.String() + "/" + rd.String()
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.String()
}

func instanceLocal(in vpn.InstanceInfo) map[string]any {
	var desc any
	if in.Description != nil {
		desc = *in.Description
	}
	return map[string]any{
		"instance_type":         in.Type,
		"external_instance_id":  in.ExternalID,
		"description":           desc,
		"name":                  in.Name,
		"route_targets":         map[string]any{"import": rtStrings(in.ImportRTs), "export": rtStrings(in.ExportRTs)},
		"instance_dataplane_id": in.VNI,
		"rd":                    in.RD.String(),
		"forced_vni":            in.ForcedVNI,
		"gateway_port":          nil,
		"internals": map[string]any{
			"received_routes":  in.Routes.Received,
			"best_routes":      in.Routes.Best,
			"flood_targets":    in.Routes.FloodTargets,
			"ignored_encap":    in.Routes.IgnoredEncap,
			"dataplane_errors": in.Routes.DataplaneErrors,
		},
	}
}

func portsLocal(in vpn.InstanceInfo) map[string]any {
	out := map[string]any{}
	names := make([]string, 0, len(in.Ports))
	for n := range in.Ports {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		eps := []any{}
		for _, ep := range in.Ports[n] {
			var ip any
			if ep.IP.IsValid() {
				ip = ep.IP.String()
			}
			var desc any
			if len(ep.Description) > 0 {
				desc = slices.Clone(ep.Description)
			}
			eps = append(eps, map[string]any{
				"label": ep.Label, "mac_address": ep.MAC.String(), "ip_address": ip,
				"local_pref": ep.LocalPref, "rd": ep.RD.String(), "description": desc,
				"direction": direction(ep.Direction),
			})
		}
		out[n] = map[string]any{"endpoints": eps}
	}
	return out
}

// direction renders an endpoint direction ("both" when unset, as for EVIs).
func direction(d dataplane.Direction) string {
	if d == "" {
		return string(dataplane.DirectionBoth)
	}
	return string(d)
}
