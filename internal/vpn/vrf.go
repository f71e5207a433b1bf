package vpn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// This file holds the IP VPN instance state (BGP/MPLS IP VPN, RFC 4364;
// reference §2.3.4, §2.4, §5.2–5.4): endpoints, their VPNv4 routes and
// per-MAC MPLS labels, like evi.go a plain object driven by instance.go.
// vrf_routes.go handles received routes, redirect.go readvertise,
// attract_traffic and FlowSpec redirection.

// labelSource hands out per-MAC MPLS labels (the manager's label
// allocator, shared with instance labels, reference §5.1).
type labelSource interface {
	allocLabel() (uint32, error)
	releaseLabel(l uint32)
}

// redirectSource gives the internal id of the redirect instance of a
// redirect-to-VRF route target, creating it on first use, and takes it
// back (reference §5.1, §5.7).
type redirectSource interface {
	acquireRedirect(rt route.RT) (uint32, error)
	releaseRedirect(rt route.RT)
}

// vrfEndpoint is what a VRF keeps per endpoint beside the shared endpoint.
type vrfEndpoint struct {
	dir    dataplane.Direction
	prefix netip.Prefix // the advertised (and plugged) prefix
}

// attractCfg is a validated attract_traffic (reference §5.7).
type attractCfg struct {
	redirectRTs []route.RT
	classifier  dataplane.Classifier
	toRT        route.RT // the single "to" RT (T)
	static      []netip.Prefix
	raw         *AttractTraffic
}

// readvKey identifies a readvertised route: one per (endpoint, prefix).
type readvKey struct {
	ep epKey
	p  netip.Prefix
}

// redirection is a FlowSpec redirect installed in the dataplane.
type redirection struct {
	rt         route.RT
	classifier dataplane.Classifier
	to         uint32 // redirect instance id
}

// vrfStats are a VRF's received-route counters.
type vrfStats struct {
	Received        int // VPNv4 routes stored (imported or readvertise sources)
	Flows           int // FlowSpec routes stored
	IgnoredType     uint64
	IgnoredRT       uint64
	IgnoredEncap    uint64
	DataplaneErrors uint64
}

// vrf is the state of one IP VPN instance.
type vrf struct {
	instanceBase
	dp        dataplane.VRFDataplane
	drvName   string
	encaps    []route.Encap // driver encaps
	advEncaps []route.Encap // without EncapDefault
	gateway   netip.Addr
	prefixLen int
	fromRTs   []route.RT // readvertise from_rt
	toRTs     []route.RT // readvertise to_rt
	attract   *attractCfg
	fallback  *Fallback
	// redirectFor is the RT this instance is the redirect instance of
	// (0: a normal VRF). Redirect instances ignore FlowSpec routes.
	redirectFor route.RT
	labels      labelSource
	redirects   redirectSource

	macLabel map[route.MAC]uint32
	eps      map[epKey]*vrfEndpoint

	// Received routes.
	rt     *tracker // best-path tie-break only (salted hash)
	inst   *prefixTable
	readv  *prefixTable
	flows  map[string]*flowDest // FlowSpec by rules bytes
	stats  vrfStats
	ignore func(reason string, r *route.Route)

	// Derived advertisements.
	readvRoutes map[readvKey]*route.Route     // readvertise without attract
	defRoutes   map[epKey]*route.Route        // attract: 0.0.0.0/0 per endpoint
	flowRoutes  map[netip.Prefix]*route.Route // attract: FlowSpec per prefix
	reorig      map[string]*route.Route       // attract: re-originated FlowSpec
	redirected  map[string]redirection        // by rules bytes

	// failed holds dataplane changes of failed Apply calls.
	failed []dataplane.VRFChange
}

// vrfParams are what the manager allocated and validated for a new VRF.
type vrfParams struct {
	id          uint32
	externalID  string
	label       vniLease
	rdNum       uint16
	bgpAddr     netip.Addr
	dpAddr      netip.Addr
	hostname    string
	drv         dataplane.IPVPNDriver
	dp          dataplane.VRFDataplane
	gateway     netip.Addr
	prefixLen   int
	readv       *Readvertise
	attract     *attractCfg
	fallback    *Fallback
	redirectFor route.RT
	rds         rdSource
	labels      labelSource
	redirects   redirectSource
	log         *slog.Logger
}

func newVRF(p vrfParams) *vrf {
	name := fmt.Sprintf("VRF-%d", p.id)
	v := &vrf{
		instanceBase: instanceBase{
			id: p.id, externalID: p.externalID, name: name, vni: p.label,
			rdNum: p.rdNum, rd: route.NewRDIPv4(p.bgpAddr, p.rdNum),
			bgpAddr: p.bgpAddr, dpAddr: p.dpAddr, rds: p.rds,
			log:       p.log.With("instance", name, "vpn_instance_id", p.externalID),
			endpoints: map[epKey]*endpoint{}, macPort: map[route.MAC]dataplane.LocalPort{},
			ipMAC: map[netip.Prefix]route.MAC{}, portEPs: map[string]int{}, macEPs: map[route.MAC]int{},
		},
		dp: p.dp, drvName: p.drv.Name(), encaps: p.drv.Encaps(),
		gateway: p.gateway, prefixLen: p.prefixLen, attract: p.attract, fallback: p.fallback,
		redirectFor: p.redirectFor, labels: p.labels, redirects: p.redirects,
		macLabel: map[route.MAC]uint32{}, eps: map[epKey]*vrfEndpoint{},
		rt:    newTracker(p.hostname, name, p.drv.Encaps()),
		flows: map[string]*flowDest{}, readvRoutes: map[readvKey]*route.Route{},
		defRoutes: map[epKey]*route.Route{}, flowRoutes: map[netip.Prefix]*route.Route{},
		reorig: map[string]*route.Route{}, redirected: map[string]redirection{},
	}
	v.inst = newPrefixTable(v.rt, p.drv.ECMP())
	v.readv = newPrefixTable(v.rt, false)
	if p.readv != nil {
		v.fromRTs, v.toRTs = dedupRTs(p.readv.FromRTs), dedupRTs(p.readv.ToRTs)
	}
	for _, enc := range v.encaps {
		if enc != route.EncapDefault {
			v.advEncaps = append(v.advEncaps, enc)
		}
	}
	return v
}

// vrfAttrs builds the path attributes of the routes a VRF originates
// (reference §5.2, §6): NEXT_HOP, ORIGIN IGP, LOCAL_PREF, the given RTs,
// the driver's Encapsulation communities (RFC 5512 §4.5, "default" never
// advertised) and the Consistent Hash Sort Order community when the order
// is not 0 (the EVI's rule, see evi.localAttrs: default routes stay
// byte-identical to upstream's).
func (v *vrf) vrfAttrs(localPref, lbOrder uint32, rts []route.RT) *route.Attrs {
	a := &route.Attrs{
		NextHop: v.dpAddr, Origin: 0, HasLocalPref: true, LocalPref: localPref,
		RTs: slices.Clone(rts), Encaps: slices.Clone(v.advEncaps),
	}
	if lbOrder != 0 {
		a.HasLBOrder, a.LBOrder = true, lbOrder
	}
	return a
}

// advPrefix is the prefix an endpoint advertises and plugs: the /32 of
// the IP, or the prefix as given with advertise_subnet (reference §5.4).
func advPrefix(ip netip.Prefix, subnet bool) netip.Prefix {
	if subnet {
		return ip.Masked()
	}
	return netip.PrefixFrom(ip.Addr(), ip.Addr().BitLen())
}

// vpnRD is the RD of an endpoint's routes: the instance RD for a host
// route, the per-endpoint RD otherwise (reference §2.3.4).
func (v *vrf) vpnRD(p netip.Prefix, ep *endpoint) route.RD {
	if p.Bits() == p.Addr().BitLen() {
		return v.rd
	}
	return ep.rd
}

// endpointRoute is the VPNv4 route of an endpoint (RFC 4364 §4.3.4): the
// MAC's label, next hop the dataplane address, export RTs.
func (v *vrf) endpointRoute(k epKey, ep *endpoint) *route.Route {
	p := v.eps[k].prefix
	return &route.Route{
		Family: route.FamilyVPNv4,
		Label:  v.macLabel[k.mac],
		Key:    route.VPNv4Key(v.vpnRD(p, ep), p),
		Attrs:  v.vrfAttrs(ep.localPref, ep.lbOrder, v.exportRTs),
		Source: v.src,
	}
}

// readvertiseEndpoint publishes the endpoint's route as it should be now:
// nothing when export RTs are empty or the endpoint is from-port.
func (v *vrf) readvertiseEndpoint(fx *effects, k epKey, ep *endpoint) {
	var r *route.Route
	if len(v.exportRTs) > 0 && v.eps[k].dir != dataplane.DirectionFromPort {
		r = v.endpointRoute(k, ep)
	}
	v.setAdv(fx, ep, r)
}

// subscriptions are the matches of a VRF (reference §5.2): VPNv4 and
// FlowSpec-VPN per import RT, VPNv4 per readvertise from_rt.
func subscriptions(imports, fromRTs []route.RT) []engine.Match {
	var ms []engine.Match
	for _, rt := range imports {
		ms = append(ms, engine.Match{Family: route.FamilyVPNv4, RT: rt}, engine.Match{Family: route.FamilyFlowVPN, RT: rt})
	}
	for _, rt := range fromRTs {
		if !slices.Contains(imports, rt) {
			ms = append(ms, engine.Match{Family: route.FamilyVPNv4, RT: rt})
		}
	}
	return ms
}

// start produces the creation effects (subscriptions).
func (v *vrf) start(importRTs, exportRTs []route.RT) effects {
	var fx effects
	v.importRTs, v.exportRTs = dedupRTs(importRTs), dedupRTs(exportRTs)
	fx.subscribe = subscriptions(v.importRTs, v.fromRTs)
	return fx
}

// updateRTs applies the import/export lists of an attach (reference §5.3).
func (v *vrf) updateRTs(fx *effects, importRTs, exportRTs []route.RT) {
	imp, exp := dedupRTs(importRTs), dedupRTs(exportRTs)
	oldSubs, newSubs := subscriptions(v.importRTs, v.fromRTs), subscriptions(imp, v.fromRTs)
	for _, m := range oldSubs {
		if !slices.Contains(newSubs, m) {
			fx.unsubscribe = append(fx.unsubscribe, m)
		}
	}
	for _, m := range newSubs {
		if !slices.Contains(oldSubs, m) {
			fx.subscribe = append(fx.subscribe, m)
		}
	}
	if !sameRTSet(imp, v.importRTs) {
		v.importRTs = imp
		// Routes still delivered through a readvertise subscription
		// but no longer imported leave the dataplane now.
		v.refilter(fx)
	}
	if !sameRTSet(exp, v.exportRTs) {
		v.exportRTs = exp
		for _, k := range v.sortedEndpoints() {
			v.readvertiseEndpoint(fx, k, v.endpoints[k])
		}
	}
}

// attach plugs (or refreshes) an endpoint and applies the instance-level
// parameters of the request. A rejected request leaves the state unchanged.
func (v *vrf) attach(req *AttachRequest) (effects, error) {
	var fx effects
	if v.redirectFor != 0 {
		return fx, clientErr(400, "VPN instance %s is an internal redirect instance: it cannot have endpoints", v.externalID)
	}
	if !req.IP.IsValid() || !req.IP.Addr().Is4() {
		return fx, clientErr(400, "IP VPN endpoints need an IPv4 ip_address, got %q", req.IP)
	}
	k := epKey{mac: req.MAC, ip: req.IP}
	if port, ok := v.macPort[req.MAC]; ok && !samePort(port, req.LocalPort) {
		return fx, clientErr(400, "Port information is not consistent. MAC address cannot be bound to two different ports. Previous plug for port %s (%s) vs. port %s (%s)",
			port.LinuxIf, req.MAC, req.LocalPort.LinuxIf, req.MAC)
	}
	if mac, ok := v.ipMAC[req.IP]; ok && mac != req.MAC {
		return fx, clientErr(400, "Inconsistent endpoint info: IP %s already bound to a MAC address different from %s (%s)", req.IP, req.MAC, mac)
	}
	dir := req.Direction
	if dir == "" {
		dir = dataplane.DirectionBoth
	}
	if vep := v.eps[k]; vep != nil && vep.dir != dir {
		return fx, clientErr(400, "Endpoint %s is plugged with direction %s; detach it before plugging it with direction %s", k, vep.dir, dir)
	}
	localPref := uint32(100)
	if req.LocalPref != nil {
		localPref = *req.LocalPref
	}

	ep, exists := v.endpoints[k]
	if !exists {
		n, err := v.rds.allocRD()
		if err != nil {
			return fx, fmt.Errorf("plugging endpoint %s: %w", k, err)
		}
		label, newLabel := v.macLabel[req.MAC], false
		if label == 0 {
			if label, err = v.labels.allocLabel(); err != nil {
				v.rds.releaseRD(n)
				return fx, fmt.Errorf("plugging endpoint %s: %w", k, err)
			}
			newLabel = true
		}
		p := advPrefix(req.IP, req.AdvertiseSubnet)
		if err := v.dp.Plug(req.LocalPort, req.MAC, p, label, dir); err != nil {
			v.rds.releaseRD(n)
			if newLabel {
				v.labels.releaseLabel(label)
			}
			return fx, fmt.Errorf("dataplane plug of endpoint %s on port %q failed: %w", k, req.LocalPort.LinuxIf, err)
		}
		// Committed from here on.
		v.macLabel[req.MAC] = label
		v.ipMAC[req.IP] = req.MAC
		ep = &endpoint{port: req.LocalPort, rdNum: n, rd: route.NewRDIPv4(v.bgpAddr, n)}
		v.eps[k] = &vrfEndpoint{dir: dir, prefix: p}
		v.addEP(k, ep)
	}
	ep.localPref, ep.lbOrder = localPref, req.LBOrder
	ep.description = slices.Clone(req.Description)
	v.description = req.InstanceDescription
	v.updateRTs(&fx, req.ImportRTs, req.ExportRTs)
	var err error
	if req.Fallback != nil && (v.fallback == nil || *v.fallback != *req.Fallback) {
		// Upstream updates the fallback when it changes (reference §5.3).
		if ferr := v.dp.UpdateFallback(dpFallback(req.Fallback)); ferr != nil {
			err = fmt.Errorf("updating the fallback of %s: %w", v.name, ferr)
		} else {
			fb := *req.Fallback
			v.fallback = &fb
		}
	}
	v.readvertiseEndpoint(&fx, k, ep)
	v.syncDerived(&fx)
	return fx, err
}

func dpFallback(f *Fallback) *dataplane.Fallback {
	if f == nil {
		return nil
	}
	return &dataplane.Fallback{SrcMAC: f.SrcMAC, DstMAC: f.DstMAC, OVSPortNumber: f.OVSPortNumber}
}

// detach unplugs an endpoint (an IP VPN detach always names the IP). It
// reports whether the instance has no endpoint left and whether the
// endpoint was the last one of its port.
func (v *vrf) detach(req *DetachRequest) (fx effects, empty, lastOnPort bool, err error) {
	k := epKey{mac: req.MAC, ip: req.IP}
	ep := v.endpoints[k]
	if ep == nil {
		// Upstream answers 500 here (reference §11).
		return fx, false, false, clientErr(400, "Endpoint %s not plugged yet, can't unplug", k)
	}
	vep := v.eps[k]
	label := v.macLabel[k.mac]
	port := ep.port
	v.setAdv(&fx, ep, nil)
	v.rds.releaseRD(ep.rdNum)
	delete(v.eps, k)
	lastOfMAC, lastOnPort := v.dropEP(k, ep)
	if lastOfMAC {
		delete(v.macLabel, k.mac)
		v.labels.releaseLabel(label)
	}
	v.syncDerived(&fx)
	// The endpoint is forgotten even if the dataplane fails: its route is
	// withdrawn and a retry of the detach would find nothing.
	if uerr := v.dp.Unplug(port, k.mac, vep.prefix, label, vep.dir, lastOnPort); uerr != nil {
		err = fmt.Errorf("dataplane unplug of endpoint %s from port %q failed: %w", k, port.LinuxIf, uerr)
	}
	return fx, len(v.endpoints) == 0, lastOnPort, err
}

// stop releases the endpoints' RDs and labels, removes the FlowSpec
// redirections and closes the dataplane; the owner then calls engine
// Cleanup (which withdraws every route of the instance).
func (v *vrf) stop() error {
	var errs []error
	for _, k := range v.sortedEndpoints() {
		v.rds.releaseRD(v.endpoints[k].rdNum)
	}
	for _, l := range v.macLabel {
		v.labels.releaseLabel(l)
	}
	clear(v.macLabel)
	clear(v.eps)
	v.clearEPs()
	for _, rules := range sortedKeys(v.redirected) {
		if err := v.unredirect(rules); err != nil {
			errs = append(errs, err)
		}
	}
	if err := v.dp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the dataplane of %s: %w", v.name, err))
	}
	return errors.Join(errs...)
}
