package linuxipvpn

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// endpoint is a plugged local endpoint.
type endpoint struct {
	mac   route.MAC
	label uint32
	dir   dataplane.Direction
}

func (e endpoint) toPort() bool   { return e.dir != dataplane.DirectionFromPort }
func (e endpoint) fromPort() bool { return e.dir != dataplane.DirectionToPort }

// lport is a plugged interface and its endpoints (by prefix: a /32 for
// a VM address, a shorter prefix for a prefix route via the port).
type lport struct {
	name  string
	index int
	eps   map[netip.Prefix]endpoint
}

// nexthop is one ECMP member of a remote route.
type nexthop struct {
	pe    netip.Addr
	label uint32
}

// classKey is a classifier and the table it redirects to.
type classKey struct {
	c     dataplane.Classifier
	table int
}

// vrf is the dataplane of one IP VPN instance. mu guards everything below
// it (see the package comment for the locking rules).
type vrf struct {
	d     *Driver
	cfg   dataplane.VRFConfig
	table int
	lo    int // loopback index, for the gateway's local route
	log   *slog.Logger

	mu          sync.Mutex
	ports       map[string]*lport
	local       map[netip.Prefix]string // endpoint prefix routed to a port → port
	routes      map[netip.Prefix][]nexthop
	classifiers map[classKey]bool
	rules       map[rule]bool     // rules we installed
	labels      map[uint32]kroute // label table routes we installed, by label
	adopted     bool
	closed      bool
	detached    bool // the driver is closed: no more netlink use
	fbWarned    bool
	repairs     uint64
	reconciles  uint64
	lastErr     string
}

var _ dataplane.VRFDataplane = (*vrf)(nil)

// NewVRF implements dataplane.IPVPNDriver: it claims table TableBase +
// instance id (adopting what an earlier run left there) and installs the
// unreachable default and the gateway's local route.
func (d *Driver) NewVRF(cfg dataplane.VRFConfig) (dataplane.VRFDataplane, error) {
	if cfg.InstanceID == 0 || cfg.InstanceID >= TableSpan {
		return nil, fmt.Errorf("IP VPN instance %s: instance id %d out of range 1..%d", cfg.ExternalID, cfg.InstanceID, TableSpan-1)
	}
	if cfg.GatewayIP.IsValid() && !cfg.GatewayIP.Unmap().Is4() {
		return nil, fmt.Errorf("IP VPN instance %s: gateway %s is not IPv4; the linux driver routes IPv4 only", cfg.ExternalID, cfg.GatewayIP)
	}
	cfg.GatewayIP = cfg.GatewayIP.Unmap()
	lo, err := d.h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("IP VPN instance %s: looking up the loopback interface: %w", cfg.ExternalID, err)
	}
	v := &vrf{
		d: d, cfg: cfg, table: d.Table(cfg.InstanceID), lo: lo.Attrs().Index,
		log:         d.log.With("instance", cfg.ExternalID, "table", d.Table(cfg.InstanceID)),
		ports:       map[string]*lport{},
		local:       map[netip.Prefix]string{},
		routes:      map[netip.Prefix][]nexthop{},
		classifiers: map[classKey]bool{},
		rules:       map[rule]bool{},
		labels:      map[uint32]kroute{},
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("IP VPN instance %s: the linux driver is closed", cfg.ExternalID)
	}
	if other, dup := d.vrfs[v.table]; dup {
		d.mu.Unlock()
		return nil, fmt.Errorf("IP VPN instance %s: table %d is already used by instance %s; close it first", cfg.ExternalID, v.table, other.cfg.ExternalID)
	}
	v.adopted = d.inventory[v.table]
	delete(d.inventory, v.table)
	d.vrfs[v.table] = v
	d.mu.Unlock()

	var errs []error
	for _, p := range v.fixedPrefixes() {
		errs = append(errs, v.install(p))
	}
	if err := errors.Join(errs...); err != nil {
		d.mu.Lock()
		delete(d.vrfs, v.table)
		d.mu.Unlock()
		return nil, fmt.Errorf("IP VPN instance %s (table %d): %w", cfg.ExternalID, v.table, err)
	}
	if v.adopted {
		v.log.Info("adopted the routing table of an earlier run")
	}
	return v, nil
}

var defaultRoute = netip.PrefixFrom(netip.IPv4Unspecified(), 0)

// fixedPrefixes are the prefixes the VRF always routes: the default and
// the gateway.
func (v *vrf) fixedPrefixes() []netip.Prefix {
	ps := []netip.Prefix{defaultRoute}
	if v.cfg.GatewayIP.IsValid() {
		ps = append(ps, netip.PrefixFrom(v.cfg.GatewayIP, 32))
	}
	return ps
}

func (v *vrf) usable() error {
	if v.closed {
		return fmt.Errorf("IP VPN instance %s: dataplane closed", v.cfg.ExternalID)
	}
	if v.detached {
		return fmt.Errorf("IP VPN instance %s: the linux driver is closed", v.cfg.ExternalID)
	}
	return nil
}

// desiredRoute is what table T should hold for p: the gateway's local
// route, else a local endpoint, else the remote route, else (default
// only) unreachable. ok is false if p should be absent.
func (v *vrf) desiredRoute(p netip.Prefix) (kroute, bool) {
	r := kroute{Table: v.table, Dst: p, Type: unix.RTN_UNICAST}
	if v.cfg.GatewayIP.IsValid() && p == netip.PrefixFrom(v.cfg.GatewayIP, 32) {
		r.Type = unix.RTN_LOCAL
		return r, true
	}
	if name, ok := v.local[p]; ok {
		lp := v.ports[name]
		nh := knexthop{Oif: lp.index}
		if ep := lp.eps[p]; p.Bits() < 32 && !ep.mac.IsZero() {
			// A prefix behind the endpoint: towards its MAC (see neighAddr).
			nh.Gw = neighAddr(p, ep.mac)
		}
		r.Nexthops = []knexthop{nh}
		return r, true
	}
	for _, nh := range v.routes[p] {
		r.Nexthops = append(r.Nexthops, knexthop{Oif: v.d.vx(), Gw: v.d.gateway(nh.pe), Encap: ipEncap{ID: uint64(nh.label), Dst: nh.pe}})
	}
	if len(r.Nexthops) > 0 {
		r.sortNexthops()
		return r, true
	}
	if p == defaultRoute {
		r.Type = unix.RTN_UNREACHABLE
		return r, true
	}
	return r, false
}

// kernelRoute converts a desired route for the library.
func (v *vrf) kernelRoute(k kroute) *netlink.Route {
	r := &netlink.Route{Dst: ipNet(k.Dst), Table: k.Table, Type: int(k.Type), Protocol: rtProto, Priority: routeMetric(k.Dst)}
	switch {
	case k.Type == unix.RTN_LOCAL:
		r.LinkIndex, r.Scope = v.lo, netlink.SCOPE_HOST
	case k.Type != unix.RTN_UNICAST:
	case len(k.Nexthops) == 1 && !k.Nexthops[0].Gw.IsValid():
		r.LinkIndex, r.Scope = k.Nexthops[0].Oif, netlink.SCOPE_LINK
	case len(k.Nexthops) == 1:
		nh := k.Nexthops[0]
		r.LinkIndex, r.Gw, r.Flags = nh.Oif, nh.Gw.AsSlice(), int(netlink.FLAG_ONLINK)
		if nh.Encap.Dst.IsValid() {
			r.Encap = &ipEncap{ID: nh.Encap.ID, Dst: nh.Encap.Dst}
		}
	default:
		for _, nh := range k.Nexthops {
			r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{
				LinkIndex: nh.Oif, Gw: nh.Gw.AsSlice(), Flags: int(netlink.FLAG_ONLINK),
				Encap: &ipEncap{ID: nh.Encap.ID, Dst: nh.Encap.Dst},
			})
		}
	}
	return r
}

// install writes table T's entry for p as desiredRoute says.
func (v *vrf) install(p netip.Prefix) error {
	k, ok := v.desiredRoute(p)
	if !ok {
		err := v.d.h.RouteDel(&netlink.Route{Dst: ipNet(p), Table: v.table, Scope: netlink.SCOPE_NOWHERE})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting the route %s from table %d: %w", p, v.table, err)
		}
		return nil
	}
	if err := v.d.h.RouteReplace(v.kernelRoute(k)); err != nil {
		return fmt.Errorf("installing %s in table %d: %w", k.sig(), v.table, err)
	}
	return nil
}

func validLabel(l uint32) error {
	if l == 0 || l >= 1<<24 {
		return fmt.Errorf("label %d is not a valid 24-bit VXLAN VNI (1..16777215)", l)
	}
	return nil
}

// Plug implements dataplane.VRFDataplane.
func (v *vrf) Plug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction) error {
	if port.LinuxIf == "" {
		return fmt.Errorf("IP VPN instance %s: local_port has no linuxif; the linux driver plugs Linux interfaces only", v.cfg.ExternalID)
	}
	if !ip.IsValid() || !ip.Addr().Unmap().Is4() {
		return fmt.Errorf("IP VPN instance %s: endpoint address %s is not IPv4", v.cfg.ExternalID, ip)
	}
	if err := validLabel(label); err != nil {
		return fmt.Errorf("IP VPN instance %s: endpoint %s: %w", v.cfg.ExternalID, ip, err)
	}
	if label >= LabelSpan {
		return fmt.Errorf("IP VPN instance %s: endpoint %s: local label %d is not a 20-bit MPLS label; the linux driver has a delivery table per label below %d", v.cfg.ExternalID, ip, label, LabelSpan)
	}
	if dir == "" {
		dir = dataplane.DirectionBoth
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	lp := v.ports[port.LinuxIf]
	if lp == nil {
		l, err := v.d.h.LinkByName(port.LinuxIf)
		if err != nil {
			return fmt.Errorf("IP VPN instance %s: interface %s: %w (create it before plugging)", v.cfg.ExternalID, port.LinuxIf, err)
		}
		if err := v.d.h.LinkSetUp(l); err != nil {
			return fmt.Errorf("IP VPN instance %s: bringing %s up: %w", v.cfg.ExternalID, port.LinuxIf, err)
		}
		lp = &lport{name: port.LinuxIf, index: l.Attrs().Index, eps: map[netip.Prefix]endpoint{}}
		v.ports[port.LinuxIf] = lp
	}
	p := endpointPrefix(ip)
	if owner, ok := v.local[p]; ok && owner != lp.name {
		// The address moved to another port.
		olp := v.ports[owner]
		oep := olp.eps[p]
		delete(olp.eps, p)
		delete(v.local, p)
		if !oep.mac.IsZero() {
			if err := v.delNeigh(olp, p, oep.mac); err != nil {
				v.log.Warn("removing the neighbour of a moved endpoint", "error", err)
			}
		}
	}
	ep := endpoint{mac: mac, label: label, dir: dir}
	lp.eps[p] = ep
	var errs []error
	if ep.toPort() {
		v.local[p] = lp.name
		errs = append(errs, v.install(p), v.setNeigh(lp, p, ep))
	} else if v.local[p] == lp.name {
		delete(v.local, p)
		errs = append(errs, v.install(p))
	}
	errs = append(errs, v.syncDelivery())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("IP VPN instance %s: plugging %s on %s: %w", v.cfg.ExternalID, p, lp.name, err)
	}
	return nil
}

// endpointPrefix is the prefix an endpoint routes to its port: the
// masked prefix (the VPN layer passes a /32 for a VM address and the
// prefix itself for advertise_subnet, reference §2.3.1).
func endpointPrefix(ip netip.Prefix) netip.Prefix {
	bits := ip.Bits()
	if ip.Addr().Is4In6() {
		bits -= 96
	}
	return netip.PrefixFrom(ip.Addr().Unmap(), bits).Masked()
}

// neighAddr is the neighbour that resolves an endpoint's MAC on its port:
// the address itself for a /32; for a shorter prefix (a prefix route via
// the port, reference §2.3.1) a link-local next hop derived from the MAC,
// 169.254.<1+mac[4]%254>.<1+mac[5]%254>, which the route uses "onlink". The
// VM then receives the prefix's traffic at its MAC without answering ARP
// for addresses of the prefix. Two MACs with prefix routes on one port
// and the same derived address would clash (one port is one VM: one MAC in
// practice).
func neighAddr(p netip.Prefix, mac route.MAC) netip.Addr {
	if p.Bits() == 32 {
		return p.Addr()
	}
	return netip.AddrFrom4([4]byte{169, 254, 1 + mac[4]%254, 1 + mac[5]%254})
}

// setNeigh installs the permanent neighbour of the endpoint (neighAddr)
// → mac on the port.
func (v *vrf) setNeigh(lp *lport, p netip.Prefix, ep endpoint) error {
	if ep.mac.IsZero() {
		return nil
	}
	a := neighAddr(p, ep.mac)
	err := v.d.h.NeighSet(&netlink.Neigh{LinkIndex: lp.index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: a.AsSlice(), HardwareAddr: ep.mac[:]})
	if err != nil {
		return fmt.Errorf("adding the neighbour %s → %s on %s: %w", a, ep.mac, lp.name, err)
	}
	return nil
}

// delNeigh removes the neighbour of the endpoint p, mac on the port,
// unless another prefix endpoint routed to the port still uses it.
func (v *vrf) delNeigh(lp *lport, p netip.Prefix, mac route.MAC) error {
	a := neighAddr(p, mac)
	if p.Bits() < 32 {
		for q, ep := range lp.eps {
			if q != p && q.Bits() < 32 && v.local[q] == lp.name && !ep.mac.IsZero() && neighAddr(q, ep.mac) == a {
				return nil
			}
		}
	}
	err := v.d.h.NeighDel(&netlink.Neigh{LinkIndex: lp.index, Family: netlink.FAMILY_V4, IP: a.AsSlice()})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("removing the neighbour %s on %s: %w", a, lp.name, err)
	}
	return nil
}

// Unplug implements dataplane.VRFDataplane. The interface itself is left
// as it is (it belongs to the VM).
func (v *vrf) Unplug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction, last bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	lp := v.ports[port.LinuxIf]
	if lp == nil {
		return nil
	}
	p := endpointPrefix(ip)
	ep, ok := lp.eps[p]
	if !ok {
		return nil
	}
	delete(lp.eps, p)
	var errs []error
	if v.local[p] == lp.name {
		delete(v.local, p)
		errs = append(errs, v.install(p))
		if !ep.mac.IsZero() {
			errs = append(errs, v.delNeigh(lp, p, ep.mac))
		}
	}
	if len(lp.eps) == 0 {
		delete(v.ports, lp.name)
	} else if last {
		v.log.Warn("unplug says last endpoint, but the port still has endpoints", "port", lp.name, "endpoints", len(lp.eps))
	}
	errs = append(errs, v.syncDelivery())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("IP VPN instance %s: unplugging %s from %s: %w", v.cfg.ExternalID, p, lp.name, err)
	}
	return nil
}

// desiredRules: per port with a from-port endpoint "iif <port> lookup T",
// per label delivered to an endpoint (desiredLabels) "tun_id <label>
// lookup <label table>", and per classifier and such port the redirect
// rule.
func (v *vrf) desiredRules() map[rule]bool { return v.rulesFor(v.desiredLabels()) }

// rulesFor is desiredRules with the label deliveries already computed.
func (v *vrf) rulesFor(labels map[uint32]kroute) map[rule]bool {
	out := make(map[rule]bool, len(labels)+len(v.rules))
	for l, k := range labels {
		out[rule{Pref: prefVRF, Table: k.Table, TunID: uint64(l)}] = true
	}
	for name, lp := range v.ports {
		from := false
		for _, ep := range lp.eps {
			if ep.fromPort() {
				from = true
			}
		}
		if !from {
			continue
		}
		out[rule{Pref: prefVRF, Table: v.table, Iif: name}] = true
		for ck := range v.classifiers {
			out[classifierRule(ck, name)] = true
		}
	}
	return out
}

func portRange(p dataplane.PortRange) [2]uint16 {
	if p.Max < p.Min {
		p.Max = p.Min
	}
	return [2]uint16{p.Min, p.Max}
}

// classifierRule is the rule redirecting traffic from iif matching ck.
func classifierRule(ck classKey, iif string) rule {
	c := ck.c
	r := rule{Pref: prefClassifier, Table: ck.table, Iif: iif, IPProto: c.Protocol,
		Sport: portRange(c.SourcePort), Dport: portRange(c.DestinationPort)}
	if c.SourcePrefix.IsValid() && c.SourcePrefix.Bits() > 0 {
		r.Src = c.SourcePrefix.Masked()
	}
	if c.DestinationPrefix.IsValid() && c.DestinationPrefix.Bits() > 0 {
		r.Dst = c.DestinationPrefix.Masked()
	}
	return r
}

// syncRules adds the desired rules we have not installed and deletes the
// installed ones no longer desired.
func (v *vrf) syncRules() error { return v.syncRulesTo(v.desiredRules()) }

// syncRulesTo is syncRules towards want.
func (v *vrf) syncRulesTo(want map[rule]bool) error {
	var errs []error
	for r := range v.rules {
		if want[r] {
			continue
		}
		if err := v.d.raw.ruleDel(r, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("deleting the rule %s: %w", r, err))
			continue
		}
		delete(v.rules, r)
	}
	for r := range want {
		if v.rules[r] {
			continue
		}
		if err := v.d.raw.ruleAdd(r, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("adding the rule %s: %w", r, err))
			continue
		}
		v.rules[r] = true
	}
	return errors.Join(errs...)
}

// Apply implements dataplane.VRFDataplane: the changes update the desired
// routes, then each prefix they touched is written once (RouteReplace, or
// RouteDel when its last next hop went).
func (v *vrf) Apply(changes []dataplane.VRFChange) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	var errs []error
	dirty := make([]netip.Prefix, 0, len(changes))
	seen := make(map[netip.Prefix]bool, len(changes))
	for _, c := range changes {
		p, nh, err := v.checkChange(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s via %s label %d: %w", c.Kind, c.Prefix, c.NextHop, c.Label, err))
			continue
		}
		cur := v.routes[p]
		i := slices.IndexFunc(cur, func(x nexthop) bool { return x.pe == nh.pe })
		switch c.Kind {
		case dataplane.AddRoute:
			if i >= 0 {
				if cur[i].label == nh.label {
					continue
				}
				cur[i].label = nh.label
			} else {
				v.routes[p] = append(cur, nh)
				if err := v.ref(nh.pe, 1); err != nil {
					errs = append(errs, err)
				}
			}
		case dataplane.RemoveRoute:
			if i < 0 {
				continue
			}
			if len(cur) == 1 {
				delete(v.routes, p)
			} else {
				v.routes[p] = slices.Delete(cur, i, i+1)
			}
			if err := v.ref(nh.pe, -1); err != nil {
				errs = append(errs, err)
			}
		}
		if !seen[p] {
			seen[p] = true
			dirty = append(dirty, p)
		}
	}
	for _, p := range dirty {
		if err := v.install(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("IP VPN instance %s: %w", v.cfg.ExternalID, err)
	}
	return nil
}

// checkChange validates a change and returns its prefix and next hop.
func (v *vrf) checkChange(c dataplane.VRFChange) (netip.Prefix, nexthop, error) {
	if c.Kind != dataplane.AddRoute && c.Kind != dataplane.RemoveRoute {
		return netip.Prefix{}, nexthop{}, fmt.Errorf("unknown change kind %d", c.Kind)
	}
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Unmap().Is4() {
		return netip.Prefix{}, nexthop{}, errors.New("the prefix is not IPv4")
	}
	if !c.NextHop.Unmap().Is4() {
		return netip.Prefix{}, nexthop{}, errors.New("the next hop is not an IPv4 address")
	}
	if c.Encap != 0 && c.Encap != route.EncapVXLAN {
		return netip.Prefix{}, nexthop{}, fmt.Errorf("encapsulation %v: the linux IP VPN driver sends VXLAN only", c.Encap)
	}
	if err := validLabel(c.Label); err != nil && c.Kind == dataplane.AddRoute {
		return netip.Prefix{}, nexthop{}, err
	}
	p := netip.PrefixFrom(c.Prefix.Addr().Unmap(), c.Prefix.Bits()).Masked()
	return p, nexthop{pe: c.NextHop.Unmap(), label: c.Label}, nil
}

// ref counts a next hop's use of its gateway (see Driver.gateway).
func (v *vrf) ref(pe netip.Addr, delta int) error {
	return v.d.peRef(v.d.gateway(pe), delta)
}

// AddClassifier implements dataplane.VRFDataplane: traffic from the VRF's
// ports matching c looks up the table of instance redirectTo.
func (v *vrf) AddClassifier(c dataplane.Classifier, redirectTo uint32) error {
	return v.classifier(c, redirectTo, true)
}

// RemoveClassifier implements dataplane.VRFDataplane.
func (v *vrf) RemoveClassifier(c dataplane.Classifier, redirectTo uint32) error {
	return v.classifier(c, redirectTo, false)
}

func (v *vrf) classifier(c dataplane.Classifier, redirectTo uint32, add bool) error {
	for _, p := range []netip.Prefix{c.SourcePrefix, c.DestinationPrefix} {
		if p.IsValid() && !p.Addr().Is4() {
			return fmt.Errorf("IP VPN instance %s: classifier prefix %s is not IPv4", v.cfg.ExternalID, p)
		}
	}
	if redirectTo == 0 || redirectTo >= TableSpan {
		return fmt.Errorf("IP VPN instance %s: redirect target instance id %d out of range", v.cfg.ExternalID, redirectTo)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.usable(); err != nil {
		return err
	}
	ck := classKey{c: c, table: v.d.Table(redirectTo)}
	if add {
		v.classifiers[ck] = true
	} else {
		delete(v.classifiers, ck)
	}
	if err := v.syncRules(); err != nil {
		return fmt.Errorf("IP VPN instance %s: classifier rules: %w", v.cfg.ExternalID, err)
	}
	return nil
}

// UpdateFallback implements dataplane.VRFDataplane: not supported (as
// upstream's non-OVS drivers); logged once.
func (v *vrf) UpdateFallback(f *dataplane.Fallback) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f != nil && !v.fbWarned {
		v.fbWarned = true
		v.log.Warn("fallback is not supported by the linux IP VPN driver; unmatched traffic hits the VRF's unreachable default")
	}
	return nil
}

// Info implements dataplane.VRFDataplane.
func (v *vrf) Info() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	rules := make([]string, 0, len(v.rules))
	for r := range v.rules {
		rules = append(rules, r.String())
	}
	sort.Strings(rules)
	ports := make([]string, 0, len(v.ports))
	for n := range v.ports {
		ports = append(ports, n)
	}
	sort.Strings(ports)
	labels := make(map[uint32]int, len(v.labels))
	for l, k := range v.labels {
		labels[l] = k.Table
	}
	return map[string]any{
		"table":              v.table,
		"label_tables":       labels,
		"rules":              rules,
		"routes":             len(v.routes),
		"local_routes":       len(v.local),
		"ports":              ports,
		"adopted":            v.adopted,
		"repairs":            v.repairs,
		"reconciles":         v.reconciles,
		"last_reconcile_err": v.lastErr,
	}
}

// Close implements dataplane.VRFDataplane: it removes the VRF's rules,
// every route of its table and of its label tables and the neighbours it
// added on the ports; the ports themselves are left alone.
func (v *vrf) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	if v.detached {
		v.closed = true
		return nil
	}
	v.closed = true
	var errs []error
	for r := range v.rules {
		if err := v.d.raw.ruleDel(r, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("deleting the rule %s: %w", r, err))
		}
	}
	clear(v.rules)
	errs = append(errs, v.closeLabels())
	for p, name := range v.local {
		lp := v.ports[name]
		if mac := lp.eps[p].mac; !mac.IsZero() {
			errs = append(errs, v.delNeigh(lp, p, mac))
		}
		delete(v.local, p) // so that the last user of a shared neighbour removes it
	}
	for _, nhs := range v.routes {
		for _, nh := range nhs {
			errs = append(errs, v.ref(nh.pe, -1))
		}
	}
	routes, err := v.d.raw.routes(func(t int) bool { return t == v.table })
	if err != nil {
		errs = append(errs, fmt.Errorf("listing table %d: %w", v.table, err))
	}
	for _, r := range routes {
		errs = append(errs, v.d.delRoute(r))
	}
	v.d.mu.Lock()
	delete(v.d.vrfs, v.table)
	v.d.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("IP VPN instance %s: closing: %w", v.cfg.ExternalID, err)
	}
	return nil
}

// routeMetric is the metric (priority) of our route for p: a hash of p,
// fixed for a prefix so that a replace hits the same route. The kernel
// shares identical route information between routes and finds it through
// a hash of the protocol, scope, preferred source, metric and output
// devices, not the gateway or the encapsulation: with one metric, every
// remote route through our device lands in one hash bucket, and each
// insert compares against all of them (50,000 routes: minutes instead of
// a second). One route per prefix per table, so the metric never decides
// between routes.
func routeMetric(p netip.Prefix) int {
	a := p.Addr().As4()
	h := uint32(2166136261) // FNV-1a
	for _, b := range append(a[:], byte(p.Bits())) {
		h = (h ^ uint32(b)) * 16777619
	}
	return 1 + int(h%65535)
}
