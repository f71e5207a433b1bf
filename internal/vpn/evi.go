package vpn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// This file holds the E-VPN instance state (RFC 7432, RFC 8365; reference
// §2.3.4, §2.4, §5.2, §5.3, §5.5) as a plain object without goroutines:
// API operations and engine events go in, routes to publish, subscription
// changes and dataplane changes come out (effects). instance.go runs it on
// the instance goroutine; tests and benchmarks drive it directly.

// effects is what the owner of an instance state must do after an
// operation, in this order: unsubscribe, subscribe, publish, apply.
type effects struct {
	unsubscribe []engine.Match
	subscribe   []engine.Match
	publish     []engine.Event
	changes     []dataplane.EVIChange
	vrfChanges  []dataplane.VRFChange // IP VPN instances
}

// rdSource hands out per-endpoint RD numbers (the manager's shared RD
// allocator, reference §5.1).
type rdSource interface {
	allocRD() (uint16, error)
	releaseRD(n uint16)
}

// instanceBase is what every VPN instance type has: identity, route
// targets, local endpoints and their bookkeeping, and the engine source.
// A VRF will embed it beside the EVI.
type instanceBase struct {
	id          uint32
	externalID  string
	name        string // worker name: "EVI-<id>"
	vni         vniLease
	rdNum       uint16
	rd          route.RD
	bgpAddr     netip.Addr // BGP local address (RDs, type-3 originator)
	dpAddr      netip.Addr // dataplane local address (next hop, VTEP)
	src         *route.Source
	importRTs   []route.RT
	exportRTs   []route.RT
	description *string
	log         *slog.Logger
	rds         rdSource

	endpoints map[epKey]*endpoint
	macPort   map[route.MAC]dataplane.LocalPort // MAC → the port it is bound to
	ipMAC     map[netip.Prefix]route.MAC        // IP → the MAC it is bound to
	portEPs   map[string]int                    // linuxif → number of endpoints
	macEPs    map[route.MAC]int                 // MAC → number of endpoints
	// nAdv is the number of endpoints whose route is advertised (ep.adv
	// set), kept by setAdv so that the counters need no endpoint walk.
	nAdv int
}

// setAdv advertises r for endpoint ep in place of its current route
// (withdraws it when r is nil; see advertise), keeping nAdv.
func (b *instanceBase) setAdv(fx *effects, ep *endpoint, r *route.Route) {
	had := ep.adv != nil
	advertise(fx, &ep.adv, r)
	switch has := ep.adv != nil; {
	case has && !had:
		b.nAdv++
	case had && !has:
		b.nAdv--
	}
}

// addEP records a new endpoint k on port (endpoints, macPort, macEPs,
// portEPs); ipMAC is the caller's.
func (b *instanceBase) addEP(k epKey, ep *endpoint) {
	b.endpoints[k] = ep
	b.macPort[k.mac] = ep.port
	b.macEPs[k.mac]++
	b.portEPs[ep.port.LinuxIf]++
}

// dropEP forgets endpoint k (endpoints, macEPs and macPort, portEPs,
// ipMAC) and reports whether it was the last one of its MAC and of its
// port. Its route must be withdrawn already (setAdv with nil).
func (b *instanceBase) dropEP(k epKey, ep *endpoint) (lastOfMAC, lastOnPort bool) {
	delete(b.endpoints, k)
	if k.ip.IsValid() {
		delete(b.ipMAC, k.ip)
	}
	if b.portEPs[ep.port.LinuxIf]--; b.portEPs[ep.port.LinuxIf] <= 0 {
		delete(b.portEPs, ep.port.LinuxIf)
		lastOnPort = true
	}
	if b.macEPs[k.mac]--; b.macEPs[k.mac] <= 0 {
		delete(b.macEPs, k.mac)
		delete(b.macPort, k.mac)
		lastOfMAC = true
	}
	return lastOfMAC, lastOnPort
}

// clearEPs empties the endpoint bookkeeping (instance stop; the routes
// are withdrawn by engine Cleanup).
func (b *instanceBase) clearEPs() {
	clear(b.endpoints)
	clear(b.macPort)
	clear(b.macEPs)
	clear(b.ipMAC)
	clear(b.portEPs)
	b.nAdv = 0
}

// epKey identifies a local endpoint; ip is invalid for a MAC-only
// (E-VPN wildcard) endpoint. The prefix is kept as given, so "10.0.0.5/24"
// and "10.0.0.5" (/32) are different endpoints, as upstream.
type epKey struct {
	mac route.MAC
	ip  netip.Prefix
}

func (k epKey) String() string {
	ip := "None"
	if k.ip.IsValid() {
		ip = k.ip.String()
	}
	return fmt.Sprintf("(%s, %s)", k.mac, ip)
}

// endpoint is a plugged (MAC, IP) and its advertised route.
type endpoint struct {
	port        dataplane.LocalPort
	rdNum       uint16
	rd          route.RD
	localPref   uint32
	lbOrder     uint32
	description json.RawMessage
	adv         *route.Route // advertised route, nil when not advertised
}

// evi is the state of one E-VPN instance.
type evi struct {
	instanceBase
	dp        dataplane.EVIDataplane
	advEncaps []route.Encap // driver encaps without EncapDefault (never advertised)
	mcRoute   *route.Route  // advertised Inclusive Multicast route, or nil
	rt        *tracker
}

// eviParams are what the manager allocated for a new EVI.
type eviParams struct {
	id         uint32
	externalID string
	vni        vniLease
	rdNum      uint16
	bgpAddr    netip.Addr
	dpAddr     netip.Addr
	hostname   string
	encaps     []route.Encap
	dp         dataplane.EVIDataplane
	rds        rdSource
	log        *slog.Logger
}

func newEVI(p eviParams) *evi {
	name := fmt.Sprintf("EVI-%d", p.id)
	e := &evi{
		instanceBase: instanceBase{
			id: p.id, externalID: p.externalID, name: name, vni: p.vni,
			rdNum: p.rdNum, rd: route.NewRDIPv4(p.bgpAddr, p.rdNum),
			bgpAddr: p.bgpAddr, dpAddr: p.dpAddr, rds: p.rds,
			log:       p.log.With("instance", name, "vpn_instance_id", p.externalID),
			endpoints: map[epKey]*endpoint{}, macPort: map[route.MAC]dataplane.LocalPort{},
			ipMAC: map[netip.Prefix]route.MAC{}, portEPs: map[string]int{}, macEPs: map[route.MAC]int{},
		},
		dp: p.dp,
		rt: newTracker(p.hostname, name, p.encaps),
	}
	for _, enc := range p.encaps {
		if enc != route.EncapDefault {
			e.advEncaps = append(e.advEncaps, enc)
		}
	}
	return e
}

// dedupRTs removes duplicate RTs, keeping the first occurrence's order.
func dedupRTs(rts []route.RT) []route.RT {
	out := make([]route.RT, 0, len(rts))
	for _, rt := range rts {
		if !slices.Contains(out, rt) {
			out = append(out, rt)
		}
	}
	return out
}

func sameRTSet(a, b []route.RT) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// samePort is the deep equality upstream applies to local_port objects.
func samePort(a, b dataplane.LocalPort) bool {
	if a.LinuxIf != b.LinuxIf || a.VLAN != b.VLAN || a.EVPN != b.EVPN || a.Raw != b.Raw {
		return false
	}
	if (a.OVS == nil) != (b.OVS == nil) {
		return false
	}
	return a.OVS == nil || *a.OVS == *b.OVS
}

// localAttrs builds the path attributes of every route the EVI originates
// (reference §5.2, §6): NEXT_HOP, ORIGIN IGP, LOCAL_PREF always set, the
// export RTs, the Encapsulation communities of the driver (RFC 5512 §4.5,
// "default" never advertised) and, for endpoint routes, the Consistent Hash
// Sort Order community when the order is not 0 (see below). All wire-layout choices
// for local routes are made here.
func (e *evi) localAttrs(nextHop netip.Addr, localPref uint32, lbOrder *uint32, pmsi *route.PMSI) *route.Attrs {
	a := &route.Attrs{
		NextHop:      nextHop,
		Origin:       0,
		HasLocalPref: true,
		LocalPref:    localPref,
		RTs:          slices.Clone(e.exportRTs),
		Encaps:       slices.Clone(e.advEncaps),
		PMSI:         pmsi,
	}
	// Upstream means to send the Consistent Hash Sort Order community on
	// every endpoint route but never does (exabgp drops the second
	// extended-communities attribute it is added as). We send it when the
	// order is not the default 0, which receivers assume when it is absent:
	// default routes stay byte-identical to upstream's, and a non-zero order
	// reaches the receivers as intended.
	if lbOrder != nil && *lbOrder != 0 {
		a.HasLBOrder, a.LBOrder = true, *lbOrder
	}
	return a
}

// multicastRoute is the Inclusive Multicast Ethernet Tag route (type 3,
// RFC 7432 §7.3) with an ingress-replication PMSI tunnel attribute
// (RFC 7432 §11.2, RFC 6514 §5): tunnel id = VTEP, label = VNI
// (RFC 8365 §5.1.3).
func (e *evi) multicastRoute() *route.Route {
	pmsi := &route.PMSI{TunnelType: route.PMSIIngressReplication, Label: e.vni.vni, TunnelID: e.dpAddr}
	return &route.Route{
		Family: route.FamilyEVPN,
		Key:    route.EVPNMulticastKey(e.rd, 0, e.bgpAddr),
		Attrs:  e.localAttrs(e.bgpAddr, 100, nil, pmsi),
		Source: e.src,
	}
}

// endpointRoute is the MAC/IP Advertisement route (type 2, RFC 7432 §7.2)
// of an endpoint: ESI 0, Ethernet tag 0, label = VNI as a raw 24-bit value
// (RFC 8365 §5.1.3); RD = instance RD with an IP, per-endpoint RD for a
// MAC-only endpoint (upstream rule, reference §2.3.4).
func (e *evi) endpointRoute(k epKey, ep *endpoint) *route.Route {
	rd := e.rd
	var ip netip.Addr
	if k.ip.IsValid() {
		ip = k.ip.Addr()
	} else {
		rd = ep.rd
	}
	lb := ep.lbOrder
	return &route.Route{
		Family: route.FamilyEVPN,
		Label:  e.vni.vni,
		Key:    route.EVPNMACIPKey(rd, 0, k.mac, ip),
		Attrs:  e.localAttrs(e.dpAddr, ep.localPref, &lb, nil),
		Source: e.src,
	}
}

// advertise (re)publishes r in place of *cur when they differ, and
// withdraws *cur when r is nil.
func advertise(fx *effects, cur **route.Route, r *route.Route) {
	switch {
	case r == nil && *cur != nil:
		fx.publish = append(fx.publish, engine.Event{Kind: engine.Withdraw, Route: *cur})
	case r != nil && (*cur == nil || !route.Equal(*cur, r)):
		fx.publish = append(fx.publish, engine.Event{Kind: engine.Advertise, Route: r})
	default:
		return
	}
	*cur = r
}

// readvertiseEndpoint publishes the endpoint's route as it should be now
// (nothing when export RTs are empty).
func (e *evi) readvertiseEndpoint(fx *effects, k epKey, ep *endpoint) {
	var r *route.Route
	if len(e.exportRTs) > 0 {
		r = e.endpointRoute(k, ep)
	}
	e.setAdv(fx, ep, r)
}

func (e *evi) readvertiseMulticast(fx *effects) {
	var r *route.Route
	if len(e.exportRTs) > 0 {
		r = e.multicastRoute()
	}
	advertise(fx, &e.mcRoute, r)
}

// start produces the creation effects: subscriptions for the import RTs
// and the multicast route (reference §2.3.2 step 3).
func (e *evi) start(importRTs, exportRTs []route.RT) effects {
	var fx effects
	e.importRTs = dedupRTs(importRTs)
	e.exportRTs = dedupRTs(exportRTs)
	e.rt.imports = e.importRTs
	for _, rt := range e.importRTs {
		fx.subscribe = append(fx.subscribe, engine.Match{Family: route.FamilyEVPN, RT: rt})
	}
	e.readvertiseMulticast(&fx)
	return fx
}

// updateRTs applies the import/export lists of an attach (reference §5.3).
func (e *evi) updateRTs(fx *effects, importRTs, exportRTs []route.RT) {
	imp, exp := dedupRTs(importRTs), dedupRTs(exportRTs)
	for _, rt := range e.importRTs {
		if !slices.Contains(imp, rt) {
			fx.unsubscribe = append(fx.unsubscribe, engine.Match{Family: route.FamilyEVPN, RT: rt})
		}
	}
	for _, rt := range imp {
		if !slices.Contains(e.importRTs, rt) {
			fx.subscribe = append(fx.subscribe, engine.Match{Family: route.FamilyEVPN, RT: rt})
		}
	}
	e.importRTs = imp
	e.rt.imports = imp
	if !sameRTSet(exp, e.exportRTs) {
		e.exportRTs = exp
		// Unlike upstream, the multicast route follows export changes too.
		e.readvertiseMulticast(fx)
		for _, k := range e.sortedEndpoints() {
			e.readvertiseEndpoint(fx, k, e.endpoints[k])
		}
	}
}

// sortedEndpoints lists the endpoint keys in a stable order: MAC, then
// IP as text ("None" and "invalid Prefix" sort as such).
func (b *instanceBase) sortedEndpoints() []epKey {
	keys := make([]epKey, 0, len(b.endpoints))
	for k := range b.endpoints {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmpEPKey)
	return keys
}

// cmpEPKey orders endpoint keys by MAC, then by IP text (formatted only
// for keys of the same MAC).
func cmpEPKey(a, b epKey) int {
	if c := bytes.Compare(a.mac[:], b.mac[:]); c != 0 {
		return c
	}
	if a.ip == b.ip {
		return 0
	}
	return strings.Compare(a.ip.String(), b.ip.String())
}

// attach plugs (or refreshes) an endpoint and applies the instance-level
// parameters of the request. A rejected request leaves the state unchanged.
func (e *evi) attach(req *AttachRequest) (effects, error) {
	var fx effects
	k := epKey{mac: req.MAC, ip: req.IP}
	if req.IP.IsValid() && req.AdvertiseSubnet && req.IP.Bits() != req.IP.Addr().BitLen() {
		// Upstream fails with 500 here too (reference §2.3.1).
		return fx, fmt.Errorf("E-VPN cannot advertise subnet %s: MAC/IP routes carry a single address (RFC 7432 §7.2); attach with a /32 or without advertise_subnet", req.IP)
	}
	if port, ok := e.macPort[req.MAC]; ok && !samePort(port, req.LocalPort) {
		return fx, clientErr(400, "Port information is not consistent. MAC address cannot be bound to two different ports. Previous plug for port %s (%s) vs. port %s (%s)",
			port.LinuxIf, req.MAC, req.LocalPort.LinuxIf, req.MAC)
	}
	if req.IP.IsValid() {
		if mac, ok := e.ipMAC[req.IP]; ok && mac != req.MAC {
			return fx, clientErr(400, "Inconsistent endpoint info: IP %s already bound to a MAC address different from %s (%s)", req.IP, req.MAC, mac)
		}
	}
	localPref := uint32(100)
	if req.LocalPref != nil {
		localPref = *req.LocalPref
	}

	ep, exists := e.endpoints[k]
	if !exists {
		n, err := e.rds.allocRD()
		if err != nil {
			return fx, fmt.Errorf("plugging endpoint %s: %w", k, err)
		}
		if err := e.dp.Plug(req.LocalPort, req.MAC, req.IP.Addr()); err != nil {
			e.rds.releaseRD(n)
			return fx, fmt.Errorf("dataplane plug of endpoint %s on port %q failed: %w", k, req.LocalPort.LinuxIf, err)
		}
		// Committed from here on.
		if req.IP.IsValid() {
			// E-VPN wildcard: a MAC-only endpoint gives way to MAC+IP ones.
			// The dataplane is told after the new endpoint is plugged on
			// the same port, so the port is never the last one here.
			if wk := (epKey{mac: req.MAC}); e.endpoints[wk] != nil {
				wport := e.endpoints[wk].port
				e.forget(&fx, wk)
				if uerr := e.dp.Unplug(wport, req.MAC, netip.Addr{}, false); uerr != nil {
					e.log.Warn("dataplane unplug of the replaced MAC-only endpoint failed", "mac", req.MAC.String(), "err", uerr)
				}
			}
			e.ipMAC[req.IP] = req.MAC
		}
		ep = &endpoint{port: req.LocalPort, rdNum: n, rd: route.NewRDIPv4(e.bgpAddr, n)}
		e.addEP(k, ep)
	}
	// Refresh (or first set) of the per-endpoint parameters.
	ep.localPref, ep.lbOrder = localPref, req.LBOrder
	ep.description = slices.Clone(req.Description)
	e.description = req.InstanceDescription
	e.updateRTs(&fx, req.ImportRTs, req.ExportRTs)
	e.readvertiseEndpoint(&fx, k, ep)
	return fx, nil
}

// forget withdraws an endpoint's route and drops its bookkeeping without
// calling the dataplane (its port stays plugged for the endpoint that
// replaces it, or the dataplane was already told).
func (e *evi) forget(fx *effects, k epKey) {
	ep := e.endpoints[k]
	e.setAdv(fx, ep, nil)
	e.rds.releaseRD(ep.rdNum)
	e.dropEP(k, ep)
}

// detach unplugs an endpoint, or with no IP every endpoint of the MAC (its
// IPs first, then the MAC-only one). It reports whether the instance has
// no endpoint left (it must then stop).
func (e *evi) detach(req *DetachRequest) (fx effects, empty bool, err error) {
	var keys []epKey
	if req.IP.IsValid() {
		k := epKey{mac: req.MAC, ip: req.IP}
		if e.endpoints[k] == nil {
			return fx, false, clientErr(400, "Endpoint %s not plugged yet, can't unplug", k)
		}
		keys = []epKey{k}
	} else {
		if e.macEPs[req.MAC] > 0 {
			for k := range e.endpoints {
				if k.mac == req.MAC && k.ip.IsValid() {
					keys = append(keys, k)
				}
			}
			slices.SortFunc(keys, cmpEPKey)
		}
		if wk := (epKey{mac: req.MAC}); e.endpoints[wk] != nil {
			keys = append(keys, wk)
		}
		if len(keys) == 0 {
			return fx, false, clientErr(400, "Endpoint %s not plugged yet, can't unplug", epKey{mac: req.MAC})
		}
	}
	var errs []error
	for _, k := range keys {
		ep := e.endpoints[k]
		port := ep.port
		e.forget(&fx, k)
		last := e.portEPs[port.LinuxIf] == 0
		// The endpoint is forgotten even if the dataplane fails: its route
		// is withdrawn and a retry of the detach would find nothing.
		if uerr := e.dp.Unplug(port, k.mac, k.ip.Addr(), last); uerr != nil {
			errs = append(errs, fmt.Errorf("dataplane unplug of endpoint %s from port %q failed: %w", k, port.LinuxIf, uerr))
		}
	}
	return fx, len(e.endpoints) == 0, errors.Join(errs...)
}

// stop releases the endpoints' RDs and closes the dataplane; the owner
// then calls engine Cleanup (which withdraws every route of the instance)
// and releases the instance identifiers.
func (e *evi) stop() error {
	var errs []error
	for _, k := range e.sortedEndpoints() {
		e.rds.releaseRD(e.endpoints[k].rdNum)
	}
	e.clearEPs()
	if err := e.dp.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the dataplane of %s: %w", e.name, err))
	}
	return errors.Join(errs...)
}

// receive processes engine events; the returned changes go to the
// dataplane in one Apply call.
func (e *evi) receive(events []engine.Event, changes []dataplane.EVIChange) []dataplane.EVIChange {
	return e.rt.handle(events, changes)
}
