package vpn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/veth"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// This file is the manager side of IP VPN instances: VRF creation,
// per-MAC labels, redirect instances (reference §5.1, §5.7) and the
// EVI↔VRF links (reference §5.5).

// Links creates and deletes the veth pairs that link an EVI to a VRF
// (reference §5.5). The daemon provides a netlink implementation; tests
// record the calls.
type Links interface {
	// CreateVeth creates the veth pair a/b (MTU 65535, both up), deleting
	// an existing a first.
	CreateVeth(a, b string) error
	// DeleteVeth deletes the pair through its end a (no error if absent).
	DeleteVeth(a string) error
}

// eviLink is an EVI↔VRF link.
type eviLink struct {
	evi    *instance
	eviExt string
	vrfExt string
	eviIf  string
	vrfIf  string
}

// redirectRef is a redirect instance and how many redirections use it.
type redirectRef struct {
	in    *instance
	users int
}

// checkVRFRequest validates what an IP VPN attach needs before any
// instance is created or touched.
func (m *Manager) checkVRFRequest(req *AttachRequest) error {
	if req.Direction == "" {
		req.Direction = dataplane.DirectionBoth
	}
	if !slices.Contains(m.cfg.IPVPNDriver.Directions(), req.Direction) {
		return clientErr(400, "Unsupported direction: %s", req.Direction)
	}
	if !req.IP.IsValid() {
		return clientErr(400, "Missing parameter: 'ip_address'")
	}
	if !req.IP.Addr().Is4() {
		return clientErr(400, "IP VPN is IPv4 only: ip_address %s is not an IPv4 address", req.IP)
	}
	return nil
}

// allocLabel / releaseLabel implement labelSource: per-MAC MPLS labels
// from the label allocator, skipping labels used as instance VNIs.
func (m *Manager) allocLabel() (uint32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		l, err := m.ids.labels.allocate()
		if err != nil {
			return 0, err
		}
		if _, busy := m.ids.vnis[l]; !busy {
			return l, nil
		}
	}
}

func (m *Manager) releaseLabel(l uint32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ids.labels.release(l); err != nil {
		m.log.Error("label bookkeeping error", "err", err)
	}
}

// createVRF builds and starts a VRF; called with createMu held.
// redirectFor is non-zero for a redirect instance.
func (m *Manager) createVRF(req AttachRequest, redirectFor route.RT) (*instance, error) {
	if !req.GatewayIP.IsValid() {
		return nil, clientErr(400, "Missing parameter: 'gateway_ip'")
	}
	at, err := newAttract(req.AttractTraffic, req.Readvertise)
	if err != nil {
		return nil, err
	}
	drv := m.cfg.IPVPNDriver
	in, err := m.createInstance(req, instanceKind{
		typ: IPVPN, name: "IP VPN", drv: drv, ready: &m.vpnReady,
		build: func(in *instance, ids newIDs) error {
			if req.Fallback != nil && drv.Name() != "ovs" {
				m.log.Warn("fallback is only implemented by the ovs IP VPN driver", "driver", drv.Name(), "vpn_instance_id", req.InstanceID)
			}
			dp, err := drv.NewVRF(dataplane.VRFConfig{
				InstanceID: ids.id, ExternalID: req.InstanceID, Label: ids.lease.vni, LocalAddress: m.cfg.IPVPNLocalAddress,
				GatewayIP: req.GatewayIP, PrefixLen: req.IP.Bits(), Fallback: dpFallback(req.Fallback),
			})
			if err != nil {
				return fmt.Errorf("creating the IP VPN dataplane for instance %s (label %d) with driver %q: %w", req.InstanceID, ids.lease.vni, drv.Name(), err)
			}
			var fb *Fallback
			if req.Fallback != nil {
				c := *req.Fallback
				fb = &c
			}
			in.v = newVRF(vrfParams{
				id: ids.id, externalID: req.InstanceID, label: ids.lease, rdNum: ids.rdNum,
				bgpAddr: m.cfg.LocalAddress, dpAddr: m.cfg.IPVPNLocalAddress, hostname: m.cfg.Hostname,
				drv: drv, dp: dp, gateway: req.GatewayIP, prefixLen: req.IP.Bits(),
				readv: req.Readvertise, attract: at, fallback: fb, redirectFor: redirectFor,
				rds: m, labels: m, redirects: m, log: m.log,
			})
			in.v.ignore = in.warnIgnored
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	v := in.v
	v.log.Info("IP VPN instance created", "label", v.vni.vni, "forced_label", v.vni.forced, "rd", v.rd.String(),
		"gateway_ip", req.GatewayIP.String(), "redirect_for", redirectFor.String())
	return in, nil
}

// acquireRedirect implements redirectSource: the redirect instance of rt
// ("redirect-to-ipvpn-<asn>_<nn>": imports rt, exports nothing, gateway
// 127.0.0.1/24, no ports), created on first use and reference-counted.
// Called on a VRF goroutine; redirect instances never call it.
func (m *Manager) acquireRedirect(rt route.RT) (uint32, error) {
	get := func() (uint32, bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if ref := m.redirects[rt]; ref != nil {
			ref.users++
			return ref.in.v.id, true
		}
		return 0, false
	}
	if id, ok := get(); ok {
		return id, nil
	}
	m.createMu.Lock()
	defer m.createMu.Unlock()
	if id, ok := get(); ok {
		return id, nil
	}
	ext := RedirectInstanceID(IPVPN, rt)
	if m.lookup(ext) != nil {
		return 0, fmt.Errorf("an instance named %s exists but is not the redirect instance of %s: choose another vpn_instance_id", ext, rt)
	}
	in, err := m.createVRF(AttachRequest{
		Type: IPVPN, InstanceID: ext, ImportRTs: []route.RT{rt},
		GatewayIP: netip.MustParseAddr("127.0.0.1"), IP: netip.MustParsePrefix("127.0.0.1/24"),
	}, rt)
	if err != nil {
		return 0, fmt.Errorf("creating redirect instance %s: %w", ext, err)
	}
	m.mu.Lock()
	m.redirects[rt] = &redirectRef{in: in, users: 1}
	m.mu.Unlock()
	return in.v.id, nil
}

// releaseRedirect implements redirectSource: the redirect instance stops
// when its last user releases it.
func (m *Manager) releaseRedirect(rt route.RT) {
	m.mu.Lock()
	ref := m.redirects[rt]
	if ref == nil {
		m.mu.Unlock()
		return
	}
	if ref.users--; ref.users > 0 {
		m.mu.Unlock()
		return
	}
	delete(m.redirects, rt)
	if m.instances[ref.in.v.externalID] == ref.in {
		delete(m.instances, ref.in.v.externalID)
	}
	m.mu.Unlock()
	if err := ref.in.do(context.Background(), ref.in.shutdown); err != nil && !errors.Is(err, errStopped) {
		m.log.Error("stopping redirect instance", "vpn_instance_id", ref.in.v.externalID, "err", err)
	}
}

// linkVRFIf returns the VRF-side interface of a VRF's EVI link.
func (m *Manager) linkVRFIf(vrfExt string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.links[vrfExt]; l != nil {
		return l.vrfIf, true
	}
	return "", false
}

func (l *eviLink) info() *LinkInfo {
	return &LinkInfo{EVI: l.eviExt, VRF: l.vrfExt, EVIIf: l.eviIf, VRFIf: l.vrfIf}
}

// linkOfEVI / linkOfVRF describe the link of an instance, or nil.
func (m *Manager) linkOfEVI(eviExt string) *LinkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.links {
		if l.eviExt == eviExt {
			return l.info()
		}
	}
	return nil
}

func (m *Manager) linkOfVRF(vrfExt string) *LinkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.links[vrfExt]; l != nil {
		return l.info()
	}
	return nil
}

// linkEVI plugs the E-VPN instance named by local_port.evpn into the VRF
// (reference §5.5): a veth pair evpn<evi>-ipvpn<vrf> / ipvpn<vrf>-evpn<evi>,
// the E-VPN side set as the EVI's gateway port, the IP VPN side used as
// the endpoint's linuxif (req is updated). One EVI per VRF, one VRF per
// EVI.
func (m *Manager) linkEVI(ctx context.Context, vrfIn *instance, req *AttachRequest) error {
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	eviExt := req.LocalPort.EVPN
	eviIn := m.lookup(eviExt)
	if eviIn == nil || eviIn.typ != EVPN {
		return clientErr(400, "local_port.evpn: E-VPN instance %s does not exist; attach its endpoints first", eviExt)
	}
	if m.cfg.Links == nil {
		return clientErr(400, "local_port.evpn: E-VPN ↔ IP VPN links are not available with this configuration")
	}
	m.mu.Lock()
	if l := m.links[req.InstanceID]; l != nil {
		m.mu.Unlock()
		if l.eviExt != eviExt {
			return clientErr(400, "VRF %s is already linked to E-VPN instance %s, it cannot be linked to %s too", req.InstanceID, l.eviExt, eviExt)
		}
		req.LocalPort.LinuxIf = l.vrfIf
		return nil
	}
	for _, l := range m.links {
		if l.eviExt == eviExt {
			m.mu.Unlock()
			return clientErr(400, "E-VPN instance %s is already linked to VRF %s", eviExt, l.vrfExt)
		}
	}
	m.mu.Unlock()
	vid, eid := vrfIn.base().id, eviIn.base().id
	l := &eviLink{evi: eviIn, eviExt: eviExt, vrfExt: req.InstanceID}
	l.eviIf, l.vrfIf = veth.Names(eid, vid) // upstream's names when they fit in 15 characters
	if err := m.cfg.Links.CreateVeth(l.eviIf, l.vrfIf); err != nil {
		return fmt.Errorf("creating the veth pair %s/%s between %s and %s: %w", l.eviIf, l.vrfIf, eviExt, req.InstanceID, err)
	}
	m.mu.Lock()
	m.links[req.InstanceID] = l
	m.mu.Unlock()
	err := eviIn.do(ctx, func() error { return eviIn.e.dp.SetGatewayPort(l.eviIf) })
	if err != nil {
		m.mu.Lock()
		delete(m.links, req.InstanceID)
		m.mu.Unlock()
		if derr := m.cfg.Links.DeleteVeth(l.eviIf); derr != nil {
			m.log.Error("deleting a veth after a failed gateway port plug", "interface", l.eviIf, "err", derr)
		}
		if errors.Is(err, errStopped) {
			return clientErr(400, "local_port.evpn: E-VPN instance %s stopped meanwhile", eviExt)
		}
		return fmt.Errorf("plugging %s as the gateway port of E-VPN instance %s: %w", l.eviIf, eviExt, err)
	}
	req.LocalPort.LinuxIf = l.vrfIf
	return nil
}

// unlinkEVI undoes linkEVI once the VRF has no endpoint left on the link:
// the EVI's gateway port is unset and the veth pair deleted.
func (m *Manager) unlinkEVI(ctx context.Context, vrfExt string) error {
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	m.mu.Lock()
	l := m.links[vrfExt]
	delete(m.links, vrfExt)
	m.mu.Unlock()
	if l == nil {
		return nil
	}
	var errs []error
	err := l.evi.do(ctx, func() error { return l.evi.e.dp.GatewayPortDown(l.eviIf) })
	if err != nil && !errors.Is(err, errStopped) {
		errs = append(errs, fmt.Errorf("unplugging gateway port %s of E-VPN instance %s: %w", l.eviIf, l.eviExt, err))
	}
	if err := m.cfg.Links.DeleteVeth(l.eviIf); err != nil {
		errs = append(errs, fmt.Errorf("deleting veth %s: %w", l.eviIf, err))
	}
	return errors.Join(errs...)
}

// counts are a VRF's route counters.
func (v *vrf) counts() RouteCounts {
	adv := len(v.readvRoutes) + len(v.defRoutes) + len(v.flowRoutes) + len(v.reorig) + v.nAdv
	return RouteCounts{
		Received: v.stats.Received + v.stats.Flows, Best: len(v.inst.dests) + len(v.flows), Advertised: adv,
		IgnoredType: v.stats.IgnoredType, IgnoredRT: v.stats.IgnoredRT, IgnoredEncap: v.stats.IgnoredEncap,
		DataplaneErrors: v.stats.DataplaneErrors,
	}
}

// readvertised lists the readvertise and attract-traffic routes.
func (v *vrf) readvertised() []*route.Route {
	var out []*route.Route
	for _, r := range v.readvRoutes {
		out = append(out, r)
	}
	for _, r := range v.defRoutes {
		out = append(out, r)
	}
	for _, r := range v.flowRoutes {
		out = append(out, r)
	}
	for _, r := range v.reorig {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *route.Route) int { return cmpString(a.String(), b.String()) })
	return out
}

// cmpString orders strings (cmp.Compare, named for sort callbacks).
func cmpString(a, b string) int { return cmp.Compare(a, b) }

// publishVRFInfo rebuilds a VRF's snapshot (loop only).
func (in *instance) publishVRFInfo() {
	v := in.v
	info := &InstanceInfo{
		Type: "VRF", VPNType: in.typ, Name: v.name, ID: v.id, ExternalID: v.externalID,
		Description: v.description, ImportRTs: slices.Clone(v.importRTs), ExportRTs: slices.Clone(v.exportRTs),
		VNI: v.vni.vni, ForcedVNI: v.vni.forced, RD: v.rd, Driver: v.drvName,
		Routes: v.counts(), Stopped: in.stopped.Load(),
		GatewayIP: v.gateway, SubnetPrefixLen: v.prefixLen, RedirectFor: v.redirectFor,
		Readvertised: v.readvertised(), Link: in.m.linkOfVRF(v.externalID),
	}
	if len(v.fromRTs) > 0 || len(v.toRTs) > 0 {
		info.Readvertise = &Readvertise{FromRTs: slices.Clone(v.fromRTs), ToRTs: slices.Clone(v.toRTs)}
	}
	if v.attract != nil {
		info.AttractTraffic = v.attract.raw
	}
	if v.fallback != nil {
		fb := *v.fallback
		info.Fallback = &fb
	}
	in.info.Store(info) // Ports: built when read (instance.snapshot)
}
