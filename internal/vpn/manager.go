package vpn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Engine is the route engine (*engine.Engine).
	Engine Engine
	// LocalAddress is the BGP local address: instance RDs
	// (<LocalAddress>:<n>) and the type-3 originator/next hop. IPv4.
	LocalAddress netip.Addr
	// DataplaneLocalAddress is the VTEP / MPLS next hop of local routes;
	// invalid: LocalAddress.
	DataplaneLocalAddress netip.Addr
	// IPVPNLocalAddress is the next hop of VRF routes (the IP VPN
	// driver's dataplane_local_address); invalid: DataplaneLocalAddress.
	IPVPNLocalAddress netip.Addr
	// EVPNDriver is the E-VPN dataplane driver; nil: evpn attaches fail
	// with 400 "No dataplane driver for VPN type evpn".
	EVPNDriver dataplane.EVPNDriver
	// IPVPNDriver is the IP VPN dataplane driver; nil: ipvpn attaches
	// fail with 400 "No dataplane driver for VPN type ipvpn".
	IPVPNDriver dataplane.IPVPNDriver
	// Links creates the veth pairs between an EVI and a VRF (ipvpn
	// attach with local_port.evpn, reference §5.5); nil: such attaches
	// fail with 400.
	Links Links
	// Log is the logger (nil: slog.Default()).
	Log *slog.Logger
	// Hostname salts the best-path tie-break (reference §4.6).
	Hostname string
}

// Manager owns the VPN instances by external id (reference §5.1).
type Manager struct {
	cfg      ManagerConfig
	log      *slog.Logger
	createMu sync.Mutex // serialises instance creation (may call drivers)
	linkMu   sync.Mutex // serialises EVI↔VRF link creation and removal

	mu        sync.Mutex // guards the fields below; held briefly
	ids       *allocs
	instances map[string]*instance
	evpnReady bool // EVPNDriver.ResetState done
	vpnReady  bool // IPVPNDriver.ResetState done
	// redirects are the redirect instances by RT, with their users
	// (reference §5.1, §5.7).
	redirects map[route.RT]*redirectRef
	// links are the EVI↔VRF links by VRF external id (reference §5.5).
	links map[string]*eviLink
}

// NewManager checks cfg and returns a manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Engine == nil {
		return nil, errors.New("vpn manager: no route engine configured")
	}
	if !cfg.LocalAddress.Is4() {
		return nil, fmt.Errorf("vpn manager: local address %q must be an IPv4 address (RDs are <IPv4>:<n>); set [BGP] local_address", cfg.LocalAddress)
	}
	if !cfg.DataplaneLocalAddress.IsValid() {
		cfg.DataplaneLocalAddress = cfg.LocalAddress
	}
	if !cfg.IPVPNLocalAddress.IsValid() {
		cfg.IPVPNLocalAddress = cfg.DataplaneLocalAddress
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Manager{
		cfg:       cfg,
		log:       cfg.Log.With("component", "vpn"),
		ids:       newAllocs(),
		instances: map[string]*instance{},
		redirects: map[route.RT]*redirectRef{},
		links:     map[string]*eviLink{},
	}, nil
}

// allocRD / releaseRD implement rdSource for instances.
func (m *Manager) allocRD() (uint16, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.ids.rds.allocate()
	return uint16(n), err
}

func (m *Manager) releaseRD(n uint16) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ids.rds.release(uint32(n)); err != nil {
		m.log.Error("RD bookkeeping error", "err", err)
	}
}

func (m *Manager) checkType(t Type) error {
	switch t {
	case EVPN:
		if m.cfg.EVPNDriver == nil {
			return clientErr(400, "No dataplane driver for VPN type %s", t)
		}
		return nil
	case IPVPN:
		if m.cfg.IPVPNDriver == nil {
			return clientErr(400, "No dataplane driver for VPN type %s", t)
		}
		return nil
	case "":
		return clientErr(400, "missing instance_type")
	}
	return clientErr(400, "unknown vpn_type: %s", t)
}

// Attach plugs an endpoint into the instance req.InstanceID, creating the
// instance on first use (reference §2.3.2). Client mistakes are *Error.
func (m *Manager) Attach(ctx context.Context, req AttachRequest) error {
	if err := m.checkType(req.Type); err != nil {
		return err
	}
	if req.Type == IPVPN {
		if err := m.checkVRFRequest(&req); err != nil {
			return err
		}
	}
	if req.LocalPort.EVPN != "" {
		if in := m.lookup(req.LocalPort.EVPN); in == nil || in.typ != EVPN {
			return clientErr(400, "local_port.evpn: E-VPN instance %s does not exist; attach its endpoints first", req.LocalPort.EVPN)
		}
	}
	for {
		in, err := m.getOrCreate(req)
		if err != nil {
			return err
		}
		if req.LocalPort.EVPN != "" {
			if err := m.linkEVI(ctx, in, &req); err != nil {
				// Do not keep a VRF this attach just created empty.
				_ = in.do(ctx, func() error {
					if len(in.base().endpoints) == 0 && (in.v == nil || in.v.redirectFor == 0) {
						return in.shutdown()
					}
					return nil
				})
				return err
			}
		}
		var unlinked bool
		err = in.do(ctx, func() error {
			err := in.attach(&req)
			unlinked = err != nil && req.LocalPort.EVPN != "" && in.base().portEPs[req.LocalPort.LinuxIf] == 0
			return err
		})
		if unlinked {
			// The VRF side of a new link got no endpoint: undo the link.
			if lerr := m.unlinkEVI(ctx, req.InstanceID); lerr != nil {
				err = errors.Join(err, lerr)
			}
		}
		if errors.Is(err, errStopped) {
			continue // it stopped meanwhile: a fresh instance is made
		}
		return err
	}
}

func (m *Manager) lookup(id string) *instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.instances[id]
}

func (m *Manager) getOrCreate(req AttachRequest) (*instance, error) {
	in := m.lookup(req.InstanceID)
	if in == nil {
		m.createMu.Lock()
		defer m.createMu.Unlock()
		if in = m.lookup(req.InstanceID); in == nil {
			return m.create(req)
		}
	}
	if in.typ != req.Type {
		// Upstream answers 500 here.
		return nil, clientErr(400, "VPN instance %s already exists with type %s, it cannot be used as %s", req.InstanceID, in.typ, req.Type)
	}
	return in, nil
}

// create builds and starts an EVI or a VRF; called with createMu held.
func (m *Manager) create(req AttachRequest) (*instance, error) {
	if req.Type == IPVPN {
		return m.createVRF(req, 0)
	}
	drv := m.cfg.EVPNDriver
	in, err := m.createInstance(req, instanceKind{
		typ: EVPN, name: "E-VPN", drv: drv, ready: &m.evpnReady,
		build: func(in *instance, ids newIDs) error {
			dp, err := drv.NewEVI(dataplane.EVIConfig{
				InstanceID: ids.id, ExternalID: req.InstanceID, VNI: ids.lease.vni,
				LocalAddress: m.cfg.DataplaneLocalAddress, LinuxBridge: req.LinuxBridge,
			})
			if err != nil {
				return fmt.Errorf("creating the E-VPN dataplane for instance %s (VNI %d) with driver %q: %w", req.InstanceID, ids.lease.vni, drv.Name(), err)
			}
			in.e = newEVI(eviParams{
				id: ids.id, externalID: req.InstanceID, vni: ids.lease, rdNum: ids.rdNum,
				bgpAddr: m.cfg.LocalAddress, dpAddr: m.cfg.DataplaneLocalAddress,
				hostname: m.cfg.Hostname, encaps: drv.Encaps(), dp: dp, rds: m, log: m.log,
			})
			in.e.rt.onIgnore = in.warnIgnored
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	e := in.e
	e.log.Info("E-VPN instance created", "vni", e.vni.vni, "forced_vni", e.vni.forced, "rd", e.rd.String())
	return in, nil
}

// newIDs are the identifiers the manager reserves for a new instance.
type newIDs struct {
	id    uint32   // instance id (worker name, dataplane)
	lease vniLease // the E-VPN VNI or the IP VPN instance label
	rdNum uint16   // RD assigned number
}

// instanceKind is what differs between creating an EVI and a VRF;
// createInstance does the rest.
type instanceKind struct {
	typ  Type
	name string // "E-VPN" or "IP VPN", for error messages
	drv  dataplane.Driver
	// ready points to the manager's "drv.ResetState done" flag (guarded
	// by m.mu).
	ready *bool
	// build creates the dataplane and sets in.e or in.v (with its
	// "route ignored" hook) from the reserved identifiers. On error the
	// identifiers are released.
	build func(in *instance, ids newIDs) error
}

// createInstance reserves the identifiers of a new instance, resets the
// driver's state before its first instance, builds the instance with
// k.build, then registers it with the engine, starts it and runs its
// goroutine. Called with createMu held.
func (m *Manager) createInstance(req AttachRequest, k instanceKind) (*instance, error) {
	m.mu.Lock()
	id, err := m.ids.instanceID()
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	lease, err := m.ids.takeVNI(req.VNI, req.InstanceID)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	rdNum, err := m.ids.rds.allocate()
	if err != nil {
		_ = m.ids.releaseVNI(lease)
		m.mu.Unlock()
		return nil, err
	}
	ready := *k.ready
	m.mu.Unlock()
	undo := func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		_ = m.ids.releaseVNI(lease)
		_ = m.ids.rds.release(rdNum)
	}
	if !ready {
		if err := k.drv.ResetState(); err != nil {
			undo()
			return nil, fmt.Errorf("resetting the state of %s dataplane driver %q: %w", k.name, k.drv.Name(), err)
		}
		m.mu.Lock()
		*k.ready = true
		m.mu.Unlock()
	}
	in := &instance{typ: k.typ, m: m, eng: m.cfg.Engine, done: make(chan struct{})}
	in.q.signal = make(chan struct{}, 1)
	if err := k.build(in, newIDs{id: id, lease: lease, rdNum: uint16(rdNum)}); err != nil {
		undo()
		return nil, err
	}
	b := in.base()
	b.src = m.cfg.Engine.Register(in)
	if in.v != nil {
		in.exec(in.v.start(req.ImportRTs, req.ExportRTs))
	} else {
		in.exec(in.e.start(req.ImportRTs, req.ExportRTs))
	}
	in.publishInfo()
	m.mu.Lock()
	m.instances[req.InstanceID] = in
	m.mu.Unlock()
	go in.run()
	return in, nil
}

// instanceStopped releases what the manager gave a stopped instance and
// forgets it. Called on the instance goroutine.
func (m *Manager) instanceStopped(in *instance) {
	b := in.base()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ids.releaseVNI(b.vni); err != nil {
		m.log.Error("VNI bookkeeping error", "err", err)
	}
	// Unlike upstream, the instance RD is released too.
	if err := m.ids.rds.release(uint32(b.rdNum)); err != nil {
		m.log.Error("RD bookkeeping error", "err", err)
	}
	if m.instances[b.externalID] == in {
		delete(m.instances, b.externalID)
	}
	b.log.Info("VPN instance stopped", "type", in.typ)
}

// Detach unplugs an endpoint (reference §2.4). An unknown instance is a
// 404 *Error (upstream answers 400).
func (m *Manager) Detach(ctx context.Context, req DetachRequest) error {
	in := m.lookup(req.InstanceID)
	if in == nil {
		return clientErr(404, "VPN %s could not be found", req.InstanceID)
	}
	if req.Type != "" && in.typ != req.Type {
		return clientErr(400, "VPN instance %s is of type %s, not %s", req.InstanceID, in.typ, req.Type)
	}
	if in.v != nil && in.v.redirectFor != 0 {
		return clientErr(400, "VPN instance %s is an internal redirect instance: it has no endpoints", req.InstanceID)
	}
	vrfIf, linked := m.linkVRFIf(req.InstanceID)
	var lastOnLink bool
	err := in.do(ctx, func() error {
		err := in.detach(&req)
		lastOnLink = linked && in.base().portEPs[vrfIf] == 0
		return err
	})
	if errors.Is(err, errStopped) {
		return clientErr(404, "VPN %s could not be found", req.InstanceID)
	}
	if lastOnLink {
		if lerr := m.unlinkEVI(ctx, req.InstanceID); lerr != nil {
			err = errors.Join(err, lerr)
		}
	}
	return err
}

// InstanceRoutes returns the received and best routes of an instance
// (looking glass), computed on the instance goroutine.
func (m *Manager) InstanceRoutes(ctx context.Context, externalID string) (received, best []*route.Route, err error) {
	in := m.lookup(externalID)
	if in == nil {
		return nil, nil, clientErr(404, "VPN %s could not be found", externalID)
	}
	err = in.do(ctx, func() error {
		if in.v != nil {
			received, best = in.v.routes()
		} else {
			received, best = in.e.rt.routes()
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		return nil, nil, clientErr(404, "VPN %s could not be found", externalID)
	}
	return received, best, err
}

// Instances returns a snapshot of every instance, sorted by external id.
// It never waits for an instance goroutine.
func (m *Manager) Instances() []InstanceInfo {
	m.mu.Lock()
	ins := make([]*instance, 0, len(m.instances))
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	out := make([]InstanceInfo, 0, len(ins))
	for _, in := range ins {
		out = append(out, in.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExternalID < out[j].ExternalID })
	return out
}

// Instance returns the snapshot of one instance.
func (m *Manager) Instance(externalID string) (InstanceInfo, bool) {
	in := m.lookup(externalID)
	if in == nil {
		return InstanceInfo{}, false
	}
	return in.snapshot(), true
}

// Stop stops every instance: routes withdrawn, dataplane state removed,
// identifiers released (upstream does this on SIGTERM, reference §5.1).
func (m *Manager) Stop(ctx context.Context) {
	m.mu.Lock()
	ins := make([]*instance, 0, len(m.instances))
	for _, in := range m.instances {
		ins = append(ins, in)
	}
	m.mu.Unlock()
	for _, in := range ins {
		if err := in.do(ctx, in.shutdown); err != nil && !errors.Is(err, errStopped) {
			m.log.Error("stopping VPN instance", "vpn_instance_id", in.base().externalID, "err", err)
		}
		select {
		case <-in.done:
		case <-ctx.Done():
			return
		}
	}
	// Upstream deletes the veths it created on shutdown (reference §5.1).
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	m.mu.Lock()
	links := m.links
	m.links = map[string]*eviLink{}
	m.mu.Unlock()
	for _, l := range links {
		if err := m.cfg.Links.DeleteVeth(l.eviIf); err != nil {
			m.log.Error("deleting an E-VPN ↔ IP VPN veth", "interface", l.eviIf, "err", err)
		}
	}
}

// InstanceInfo is a read-only snapshot of an instance for the looking
// glass (reference §2.6).
type InstanceInfo struct {
	Type        string // "EVI" or "VRF"
	VPNType     Type
	Name        string // worker name "EVI-<id>"
	ID          uint32
	ExternalID  string
	Description *string
	ImportRTs   []route.RT
	ExportRTs   []route.RT
	VNI         uint32 // instance_dataplane_id
	ForcedVNI   bool
	RD          route.RD
	Driver      string
	// Ports maps linuxif to the endpoints plugged there.
	Ports  map[string][]EndpointInfo
	Routes RouteCounts
	// Stopped is true in the final snapshot of a stopped instance.
	Stopped bool
	// VRF only: the subnet given at creation, the creation-time
	// readvertise / attract_traffic objects (nil when absent), the
	// current fallback, whether it is an internal redirect instance, and
	// the routes it readvertises (readvertise and attract_traffic).
	GatewayIP       netip.Addr
	SubnetPrefixLen int
	Readvertise     *Readvertise
	AttractTraffic  *AttractTraffic
	Fallback        *Fallback
	RedirectFor     route.RT
	Readvertised    []*route.Route
	// Link is the EVI↔VRF link of the instance (both sides), or nil.
	Link *LinkInfo
}

// LinkInfo describes an EVI↔VRF link (reference §5.5).
type LinkInfo struct {
	EVI, VRF string // external ids
	EVIIf    string // the EVI side of the veth ("evpn<evi>-ipvpn<vrf>")
	VRFIf    string // the VRF side ("ipvpn<vrf>-evpn<evi>")
}

// EndpointInfo is one endpoint of InstanceInfo.Ports.
type EndpointInfo struct {
	MAC         route.MAC
	IP          netip.Prefix // invalid for a MAC-only endpoint
	RD          route.RD     // per-endpoint RD (shown for every endpoint, as upstream)
	LocalPref   uint32
	LBOrder     uint32
	Label       uint32 // the VNI for E-VPN
	Description json.RawMessage
	Port        dataplane.LocalPort
	Direction   dataplane.Direction // VRF endpoints
}

// RouteCounts are an instance's route counters.
type RouteCounts struct {
	Received     int // routes stored (type 2 + type 3)
	Best         int // destinations with a best route
	Type2        int
	Type3        int
	MACs         int
	FloodTargets int
	Advertised   int
	IgnoredType  uint64
	IgnoredRT    uint64
	IgnoredEncap uint64
	// DataplaneErrors counts failed dataplane batches.
	DataplaneErrors uint64
}

func (in *instance) counts() RouteCounts {
	if in.v != nil {
		return in.v.counts()
	}
	s := in.e.rt.stats
	adv := in.e.nAdv
	if in.e.mcRoute != nil {
		adv++
	}
	return RouteCounts{
		Received: s.Type2Routes + s.Type3Routes, Best: s.Type2Dests + len(in.e.rt.mcast),
		Type2: s.Type2Routes, Type3: s.Type3Routes, MACs: s.MACs, FloodTargets: len(in.e.rt.flood),
		Advertised: adv, IgnoredType: s.IgnoredType, IgnoredRT: s.IgnoredRT, IgnoredEncap: s.IgnoredEncap,
		DataplaneErrors: s.DataplaneErrors,
	}
}

// publishInfo rebuilds the snapshot (after API operations; loop only),
// except its Ports, which snapshot builds when read: rebuilding them on
// every attach made attaching n endpoints into one instance O(n²).
func (in *instance) publishInfo() {
	if in.v != nil {
		in.publishVRFInfo()
		return
	}
	e := in.e
	info := &InstanceInfo{
		Type: "EVI", VPNType: in.typ, Name: e.name, ID: e.id, ExternalID: e.externalID,
		Description: e.description, ImportRTs: slices.Clone(e.importRTs), ExportRTs: slices.Clone(e.exportRTs),
		VNI: e.vni.vni, ForcedVNI: e.vni.forced, RD: e.rd, Driver: in.m.cfg.EVPNDriver.Name(),
		Routes: in.counts(), Stopped: in.stopped.Load(),
	}
	info.Link = in.m.linkOfEVI(e.externalID)
	in.info.Store(info)
}

// portsSnap is a built InstanceInfo.Ports and the epGen it reflects.
type portsSnap struct {
	gen   uint64
	ports map[string][]EndpointInfo
}

// snapshot returns the instance's last published snapshot with its
// current Ports. Any goroutine but the instance loop may call it.
func (in *instance) snapshot() InstanceInfo {
	info := *in.info.Load()
	info.Ports = in.portsSnapshot()
	return info
}

// portsSnapshot returns the endpoints by port, rebuilt only when a request
// ran since the last build. It waits at most for the request the loop is
// running (never for route processing). The map is shared between
// callers: read only.
func (in *instance) portsSnapshot() map[string][]EndpointInfo {
	if p := in.ports.Load(); p != nil && p.gen == in.epGen.Load() {
		return p.ports
	}
	in.epMu.RLock()
	gen := in.epGen.Load()
	ports := in.buildPorts()
	in.epMu.RUnlock()
	in.ports.Store(&portsSnap{gen: gen, ports: ports})
	return ports
}

// buildPorts lists the endpoints by port, each port's in (MAC, IP)
// order. Called with epMu held (read or write).
func (in *instance) buildPorts() map[string][]EndpointInfo {
	b := in.base()
	ports := make(map[string][]EndpointInfo, len(b.portEPs))
	for _, k := range b.sortedEndpoints() {
		ep := b.endpoints[k]
		ei := EndpointInfo{
			MAC: k.mac, IP: k.ip, RD: ep.rd, LocalPref: ep.localPref, LBOrder: ep.lbOrder,
			Label: b.vni.vni, Description: ep.description, Port: ep.port,
		}
		if v := in.v; v != nil {
			ei.Label, ei.Direction = v.macLabel[k.mac], v.eps[k].dir
		}
		ports[ep.port.LinuxIf] = append(ports[ep.port.LinuxIf], ei)
	}
	return ports
}

// publishCounts refreshes only the counters (after route events).
func (in *instance) publishCounts() {
	if in.v != nil {
		in.publishVRFInfo() // readvertised routes change with events too
		return
	}
	old := in.info.Load()
	info := *old
	info.Routes = in.counts()
	in.info.Store(&info)
}

// String renders an instance for logs.
func (i InstanceInfo) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (vni %d, rd %s)", i.Name, i.ExternalID, i.VNI, i.RD)
	return b.String()
}

// HasDriver reports whether a dataplane driver is configured for VPN type t.
func (m *Manager) HasDriver(t Type) bool {
	switch t {
	case EVPN:
		return m.cfg.EVPNDriver != nil
	case IPVPN:
		return m.cfg.IPVPNDriver != nil
	}
	return false
}

// InstanceDataplane returns the looking-glass object of an instance's
// dataplane (driver specific), read on the instance goroutine.
func (m *Manager) InstanceDataplane(ctx context.Context, externalID string) (map[string]any, error) {
	in := m.lookup(externalID)
	if in == nil {
		return nil, clientErr(404, "VPN %s could not be found", externalID)
	}
	var info map[string]any
	err := in.do(ctx, func() error {
		if in.v != nil {
			info = in.v.dp.Info()
		} else {
			info = in.e.dp.Info()
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		return nil, clientErr(404, "VPN %s could not be found", externalID)
	}
	return info, err
}
