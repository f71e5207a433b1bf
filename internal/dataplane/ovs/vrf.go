package ovs

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// VRF is the dataplane of one IP VPN instance. Its methods are called
// from the instance's goroutine; it keeps the state it programmed so that
// changes are computed as differences and Close removes everything.
type VRF struct {
	// mu serialises the methods (the instance goroutine and the looking
	// glass may call concurrently).
	mu    sync.Mutex
	d     *Driver
	cfg   dataplane.VRFConfig
	id    uint32
	log   *slog.Logger
	ports map[string]*plugged
	// labels are the encap-in flows: per local label, the to-port
	// endpoints using it and where the last one lives.
	labels map[uint32]*labelUse
	routes map[netip.Prefix]*prefixRoute
	// classifiers counts AddClassifier calls per (matches, redirect VRF).
	classifiers map[string]*classifierUse
	fallback    *dataplane.Fallback
	// vlan is the VLAN of the VRF's ports: upstream requires the same
	// VLAN (or none) on every port of a VRF. -1 until the first plug.
	vlan int
}

// labelUse is the encap-in state of one local label.
type labelUse struct {
	count int
	mac   string
	port  string // key in VRF.ports
}

// classifierUse is one classifier redirect and its reference count.
type classifierUse struct {
	count    int
	matches  []string
	redirect uint32
}

// plugged is a port plugged into the VRF.
type plugged struct {
	name   string // interface name, "" when given by number
	ofport int
	vlan   int
	input  bool // input-table flows installed (from-port)
	added  bool // we added the port to the bridge: delete it on last unplug
}

// member is one ECMP next hop of a prefix.
type member struct {
	nextHop netip.Addr
	label   uint32
	vxlan   bool
	lbOrder uint32
}

// prefixRoute is a prefix's select group and its next hops.
type prefixRoute struct {
	group   uint32
	members []member
}

func newVRF(d *Driver, cfg dataplane.VRFConfig) *VRF {
	return &VRF{
		d: d, cfg: cfg, id: cfg.InstanceID, vlan: -1,
		log:   d.log.With("vrf", cfg.InstanceID, "vpn", cfg.ExternalID),
		ports: map[string]*plugged{}, labels: map[uint32]*labelUse{}, routes: map[netip.Prefix]*prefixRoute{},
		classifiers: map[string]*classifierUse{},
	}
}

// portKey names a local port in v.ports (upstream keys on linuxif).
func portKey(p dataplane.LocalPort) string {
	if p.LinuxIf != "" {
		return p.LinuxIf
	}
	if p.OVS != nil && p.OVS.PortName != "" {
		return p.OVS.PortName
	}
	if p.OVS != nil {
		return "ofport:" + strconv.Itoa(p.OVS.PortNumber)
	}
	return ""
}

// resolvePort finds the OpenFlow port of a local port (reference §7.2
// "Port resolution"): ovs.plugged → port_number or port_name lookup;
// otherwise ovs.port_name or linuxif is added to the bridge if needed.
func (v *VRF) resolvePort(p dataplane.LocalPort) (*plugged, error) {
	pl := &plugged{}
	if p.OVS != nil {
		pl.vlan = p.OVS.VLAN
	}
	if p.OVS != nil && p.OVS.Plugged {
		if p.OVS.PortNumber > 0 {
			pl.ofport = p.OVS.PortNumber
			return pl, nil
		}
		if p.OVS.PortName == "" {
			return nil, fmt.Errorf("local_port.ovs is plugged but has neither port_number nor port_name")
		}
		n, err := v.d.portNumber(p.OVS.PortName)
		if err != nil {
			return nil, err
		}
		pl.name, pl.ofport = p.OVS.PortName, n
		return pl, nil
	}
	name := p.LinuxIf
	if p.OVS != nil && p.OVS.PortName != "" {
		name = p.OVS.PortName
	}
	if name == "" {
		return nil, fmt.Errorf("trying to find which port to plug, but no port name was provided (set local_port.linuxif or ovs.port_name)")
	}
	pl.name = name
	if n, err := v.d.portNumber(name); err == nil {
		pl.ofport = n
		return pl, nil
	} else if !errors.Is(err, errNoPort) {
		return nil, err
	}
	if _, err := v.d.r.vsctlRun("--may-exist", "add-port", v.d.opts.Bridge, name); err != nil {
		return nil, fmt.Errorf("adding port %s to bridge %s: %w", name, v.d.opts.Bridge, err)
	}
	n, err := v.d.portNumber(name)
	if err != nil {
		return nil, err
	}
	pl.ofport, pl.added = n, true
	return pl, nil
}

func fromPort(dir dataplane.Direction) bool {
	return dir == "" || dir == dataplane.DirectionBoth || dir == dataplane.DirectionFromPort
}

func toPort(dir dataplane.Direction) bool {
	return dir == "" || dir == dataplane.DirectionBoth || dir == dataplane.DirectionToPort
}

// vid is the VRF's VLAN, 0 for none.
func (v *VRF) vid() int { return max(v.vlan, 0) }

// Plug implements dataplane.VRFDataplane.
func (v *VRF) Plug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := portKey(port)
	if label > 1<<20-1 {
		return fmt.Errorf("ovs VRF %d: plug %s: label %d does not fit an MPLS label (20 bits)", v.id, key, label)
	}
	pl, known := v.ports[key]
	if !known {
		var err error
		if pl, err = v.resolvePort(port); err != nil {
			return fmt.Errorf("ovs VRF %d: plug %s: %w", v.id, key, err)
		}
	}
	if v.vlan >= 0 && v.vlan != pl.vlan {
		return fmt.Errorf("ovs VRF %d: plug %s: can't specify a different VLAN for different interfaces (%d vs %d)", v.id, key, pl.vlan, v.vlan)
	}
	vlanWas := v.vlan
	v.vlan = pl.vlan
	var lines []string
	input := pl.input
	if !known {
		lines = append(lines, v.portDropFlow(pl))
	}
	if fromPort(dir) && !pl.input {
		lines = append(lines, v.inputFlows(pl)...)
		input = true
	}
	if len(v.ports) == 0 && v.d.opts.ARPResponder {
		lines = append(lines, v.arpResponderFlow())
	}
	if toPort(dir) {
		lines = append(lines, v.encapInFlows(label, net48(mac), pl.ofport)...)
	}
	// The fallback's VLAN push depends on the ports' VLAN (upstream
	// re-applies it on every plug).
	if v.fallback != nil {
		lines = append(lines, v.fallbackFlow(v.fallback))
	}
	if err := v.d.r.bundle(lines); err != nil {
		v.vlan = vlanWas
		if pl.added && !known {
			v.delPort(pl)
		}
		return fmt.Errorf("ovs VRF %d: plug %s %s: %w", v.id, key, ip, err)
	}
	pl.input = input
	v.ports[key] = pl
	if toPort(dir) {
		if u := v.labels[label]; u != nil {
			u.count, u.mac, u.port = u.count+1, net48(mac), key
		} else {
			v.labels[label] = &labelUse{count: 1, mac: net48(mac), port: key}
		}
	}
	v.log.Debug("plugged", "port", key, "ofport", pl.ofport, "mac", net48(mac), "ip", ip, "label", label, "direction", dir)
	return nil
}

func (v *VRF) delPort(pl *plugged) {
	if _, err := v.d.r.vsctlRun("--if-exists", "del-port", v.d.opts.Bridge, pl.name); err != nil {
		v.log.Warn("removing port we added", "port", pl.name, "err", err)
	}
	v.d.forgetPort(pl.name)
}

// Unplug implements dataplane.VRFDataplane.
func (v *VRF) Unplug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction, last bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	key := portKey(port)
	pl, ok := v.ports[key]
	if !ok {
		v.log.Warn("unplug of a port that is not plugged", "port", key)
		return nil
	}
	var lines []string
	labelGone := false
	if u := v.labels[label]; toPort(dir) && u != nil {
		if u.count == 1 {
			labelGone = true
			lines = append(lines, flowDel(v.id, v.d.encapIn, mplsInMatch(label)))
			if v.d.opts.VXLANEncap {
				lines = append(lines, flowDel(v.id, v.d.encapIn, vxlanInMatch(v.d.vxlanPort, label)))
			}
		}
	}
	lastPort := last && len(v.ports) == 1
	if last { // input flows and the drop flow
		lines = append(lines, flowDel(v.id, v.d.inTable, portMatch(pl.ofport, pl.vlan)))
	}
	if lastPort {
		lines = append(lines, flowDel(v.id, v.d.vrfTable, vrfMatch(v.id, "arp", "")))
	}
	if err := v.d.r.bundle(lines); err != nil {
		return fmt.Errorf("ovs VRF %d: unplug %s %s: %w", v.id, key, ip, err)
	}
	if labelGone {
		delete(v.labels, label)
	} else if u := v.labels[label]; toPort(dir) && u != nil {
		u.count--
	}
	if last {
		delete(v.ports, key)
		if pl.added {
			v.delPort(pl)
		} else if pl.name != "" {
			v.d.forgetPort(pl.name) // it may come back with another number
		}
		if len(v.ports) == 0 {
			v.vlan = -1
		}
	}
	v.log.Debug("unplugged", "port", key, "ip", ip, "label", label, "last", last)
	return nil
}

// Apply implements dataplane.VRFDataplane: the changes are folded into
// per-prefix next-hop sets, and each touched prefix becomes one group
// add/modify/delete (plus its VRF-table flow) in a single bundle. Changes
// the driver cannot program (not IPv4, label out of range, bare MPLS PE
// without a MAC) are left out and named in the returned error; the others
// are applied. If OVS refuses the bundle, nothing is applied.
func (v *VRF) Apply(changes []dataplane.VRFChange) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	work := map[netip.Prefix][]member{}
	var order []netip.Prefix
	var failed []string
	for _, c := range changes {
		vxlan := c.Encap == route.EncapVXLAN && v.d.opts.VXLANEncap
		if err := checkChange(c, vxlan); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		p := c.Prefix.Masked()
		ms, seen := work[p]
		if !seen {
			if r := v.routes[p]; r != nil {
				ms = slices.Clone(r.members)
			}
			order = append(order, p)
		}
		m := member{nextHop: c.NextHop, label: c.Label, vxlan: vxlan, lbOrder: c.LBOrder}
		i := slices.IndexFunc(ms, func(o member) bool {
			return o.nextHop == m.nextHop && o.label == m.label && o.vxlan == m.vxlan
		})
		if c.Kind == dataplane.AddRoute {
			if i >= 0 {
				ms[i] = m
			} else {
				ms = append(ms, m)
			}
		} else if i >= 0 {
			ms = slices.Delete(ms, i, i+1)
		} else {
			v.log.Warn("remove of an unknown route next hop", "prefix", p, "next_hop", c.NextHop, "label", c.Label)
		}
		work[p] = ms
	}
	// Group ids for new prefixes.
	var fresh []netip.Prefix
	for _, p := range order {
		if v.routes[p] == nil && len(work[p]) > 0 {
			fresh = append(fresh, p)
		}
	}
	gids := v.d.allocGroups(len(fresh))
	newGroup := make(map[netip.Prefix]uint32, len(fresh))
	for i, p := range fresh {
		newGroup[p] = gids[i]
	}
	lines := make([]string, 0, 2*len(order))
	var freed []uint32
	skip := map[netip.Prefix]bool{}
	for _, p := range order {
		ms, old := work[p], v.routes[p]
		switch {
		case old == nil && len(ms) == 0:
		case old == nil:
			g, err := v.groupSpec(newGroup[p], p, ms)
			if err != nil {
				failed, skip[p] = append(failed, err.Error()), true
				continue
			}
			lines = append(lines, "group add "+g,
				flowAdd(v.id, v.d.vrfTable, prefixPriority(p), vrfMatch(v.id, "ip", prefixMatch(p)), v.routeActions(p, newGroup[p])))
		case len(ms) == 0:
			// Deleting a group deletes the flows that forward to it
			// (OpenFlow 1.5.1 §6.5), here the prefix flow; a separate
			// delete_strict of the flow made removal 9 times slower.
			lines = append(lines, "group delete group_id="+strconv.FormatUint(uint64(old.group), 10))
			freed = append(freed, old.group)
		case !slices.Equal(sortMembers(ms), sortMembers(slices.Clone(old.members))):
			g, err := v.groupSpec(old.group, p, ms)
			if err != nil {
				failed, skip[p] = append(failed, err.Error()), true
				continue
			}
			lines = append(lines, "group modify "+g)
		}
	}
	if err := v.d.r.bundle(lines); err != nil {
		v.d.releaseGroups(gids)
		return fmt.Errorf("ovs VRF %d: applying %d route changes (nothing was changed): %w", v.id, len(changes), err)
	}
	var unused []uint32
	for _, p := range order {
		ms := work[p]
		switch {
		case skip[p]:
			if g, ok := newGroup[p]; ok {
				unused = append(unused, g)
			}
		case len(ms) == 0:
			delete(v.routes, p)
		case v.routes[p] == nil:
			v.routes[p] = &prefixRoute{group: newGroup[p], members: ms}
		default:
			v.routes[p].members = ms
		}
	}
	v.d.releaseGroups(append(freed, unused...))
	if len(failed) > 0 {
		more := ""
		if len(failed) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(failed)-5)
			failed = failed[:5]
		}
		return fmt.Errorf("ovs VRF %d: %s%s; the other route changes were applied", v.id, strings.Join(failed, "; "), more)
	}
	return nil
}

// checkChange refuses what the driver cannot program.
func checkChange(c dataplane.VRFChange, vxlan bool) error {
	switch {
	case c.Kind != dataplane.AddRoute && c.Kind != dataplane.RemoveRoute:
		return fmt.Errorf("route %s: unknown change kind %d", c.Prefix, c.Kind)
	case !c.Prefix.IsValid() || !c.Prefix.Addr().Is4():
		return fmt.Errorf("route %s: only IPv4 prefixes are supported", c.Prefix)
	case !c.NextHop.Is4():
		return fmt.Errorf("route %s: next hop %s is not IPv4", c.Prefix, c.NextHop)
	case vxlan && c.Label > 1<<24-1:
		return fmt.Errorf("route %s: VNI %d does not fit 24 bits", c.Prefix, c.Label)
	case !vxlan && c.Label > 1<<20-1:
		return fmt.Errorf("route %s: MPLS label %d does not fit 20 bits", c.Prefix, c.Label)
	}
	return nil
}

// sortMembers orders next hops by consistent hash sort order, then next
// hop, label and encapsulation, so bucket ids are deterministic.
func sortMembers(ms []member) []member {
	slices.SortFunc(ms, func(a, b member) int {
		return cmp.Or(cmp.Compare(a.lbOrder, b.lbOrder), a.nextHop.Compare(b.nextHop), cmp.Compare(a.label, b.label),
			boolCmp(a.vxlan, b.vxlan))
	})
	return ms
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// groupSpec is the select group of prefix p: one bucket per next hop,
// bucket id = the route's consistent hash sort order (upstream's
// lb_consistent_hash_order hint) or, if two next hops share an order, the
// next free id above it.
func (v *VRF) groupSpec(id uint32, p netip.Prefix, ms []member) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "group_id=%d,type=select,selection_method=%s", id, v.d.opts.HashMethod)
	if v.d.opts.HashMethodParam != 0 {
		fmt.Fprintf(&b, ",selection_method_param=%d", v.d.opts.HashMethodParam)
	}
	if v.d.opts.HashMethod == "hash" && len(v.d.opts.HashFields) > 0 {
		fmt.Fprintf(&b, ",fields(%s)", strings.Join(v.d.opts.HashFields, ","))
	}
	used := map[uint32]bool{}
	for _, m := range sortMembers(slices.Clone(ms)) {
		bid := m.lbOrder
		for used[bid] {
			bid++
		}
		used[bid] = true
		acts, err := v.bucketActions(m)
		if err != nil {
			return "", fmt.Errorf("ovs VRF %d: route %s via %s: %w", v.id, p, m.nextHop, err)
		}
		fmt.Fprintf(&b, ",bucket=bucket_id:%d,actions=%s", bid, acts)
	}
	return b.String(), nil
}

// routeActions are the actions of prefix p's VRF-table flow: [dec_ttl],
// group. Upstream puts dec_ttl in every bucket; the effect is the same
// (it depends on the prefix only), and OVS 3.1 ignores dec_ttl inside a
// select-group bucket followed by push_mpls (observed: the inner IP TTL
// stays 64), so it goes before the group here.
func (v *VRF) routeActions(p netip.Prefix, group uint32) string {
	g := "group:" + strconv.FormatUint(uint64(group), 10)
	if v.inSubnet(p) {
		return g
	}
	return "dec_ttl," + g
}

// inSubnet reports whether p lies inside the VRF's gateway subnet (then
// TTL is not decremented, as upstream).
func (v *VRF) inSubnet(p netip.Prefix) bool {
	if !v.cfg.GatewayIP.IsValid() || v.cfg.PrefixLen <= 0 {
		return false
	}
	sub := netip.PrefixFrom(v.cfg.GatewayIP, v.cfg.PrefixLen).Masked()
	return p.Bits() >= sub.Bits() && sub.Contains(p.Addr())
}

// bucketActions encapsulates for one next hop (upstream
// _match_label_action + _match_output_action). The TTL decrement is not
// here but in the prefix flow (see routeActions).
func (v *VRF) bucketActions(m member) (string, error) {
	d := v.d
	lbl := strconv.FormatUint(uint64(m.label), 10)
	label := "push_mpls:0x8847,set_field:" + lbl + "->mpls_label"
	if m.vxlan {
		label = "set_field:" + lbl + "->tun_id"
	}
	local := m.nextHop == d.opts.LocalAddress || (v.cfg.LocalAddress.IsValid() && m.nextHop == v.cfg.LocalAddress)
	switch {
	case local && m.vxlan:
		return join(label, fmt.Sprintf("resubmit(%d,%d)", d.vxlanPort, d.encapIn)), nil
	case local:
		return join(label, fmt.Sprintf("resubmit(%d,%d)", d.mplsInPort, d.encapIn)), nil
	case m.vxlan:
		return join(label, "set_field:"+m.nextHop.String()+"->tun_dst", "output:"+strconv.Itoa(d.vxlanPort)), nil
	case d.useGRE:
		return join(label, "set_field:"+m.nextHop.String()+"->tun_dst", "output:"+strconv.Itoa(d.mplsInPort)), nil
	}
	mac, err := d.remoteMAC(m.nextHop)
	if err != nil {
		return "", err
	}
	return join(label, "mod_dl_src:"+d.mplsIfMAC, "mod_dl_dst:"+net48(mac), "output:"+strconv.Itoa(d.mplsIfPort)), nil
}

// classifierKey identifies a classifier redirect.
func classifierKey(matches []string, redirect uint32) string {
	return strings.Join(matches, ";") + "→" + strconv.FormatUint(uint64(redirect), 10)
}

// AddClassifier implements dataplane.VRFDataplane: traffic of this VRF
// matching c is looked up in VRF redirectTo instead (priority 0x9000,
// above every prefix).
func (v *VRF) AddClassifier(c dataplane.Classifier, redirectTo uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	ms, err := classifierMatches(c)
	if err != nil {
		return fmt.Errorf("ovs VRF %d: %w", v.id, err)
	}
	key := classifierKey(ms, redirectTo)
	if v.classifiers[key] == nil {
		if err := v.d.r.bundle(v.classifierFlows(ms, redirectTo)); err != nil {
			return fmt.Errorf("ovs VRF %d: classifier redirect to VRF %d: %w", v.id, redirectTo, err)
		}
	}
	if u := v.classifiers[key]; u != nil {
		u.count++
	} else {
		v.classifiers[key] = &classifierUse{count: 1, matches: ms, redirect: redirectTo}
	}
	return nil
}

// RemoveClassifier implements dataplane.VRFDataplane.
func (v *VRF) RemoveClassifier(c dataplane.Classifier, redirectTo uint32) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	ms, err := classifierMatches(c)
	if err != nil {
		return fmt.Errorf("ovs VRF %d: %w", v.id, err)
	}
	key := classifierKey(ms, redirectTo)
	u := v.classifiers[key]
	switch {
	case u == nil:
		v.log.Warn("removing an unknown classifier", "redirect_to", redirectTo, "matches", ms)
		return nil
	case u.count == 1:
		lines := make([]string, 0, len(ms))
		for _, m := range ms {
			lines = append(lines, flowDelStrict(v.id, v.d.vrfTable, DefaultPriority, vrfMatch(v.id, "", m)))
		}
		if err := v.d.r.bundle(lines); err != nil {
			return fmt.Errorf("ovs VRF %d: removing classifier redirect to VRF %d: %w", v.id, redirectTo, err)
		}
		delete(v.classifiers, key)
	default:
		u.count--
	}
	return nil
}

// UpdateFallback implements dataplane.VRFDataplane (reference §5.8).
func (v *VRF) UpdateFallback(f *dataplane.Fallback) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f == nil {
		if v.fallback == nil {
			return nil
		}
		if err := v.d.r.bundle([]string{flowDelStrict(v.id, v.d.vrfTable, FallbackPriority, vrfMatch(v.id, "", ""))}); err != nil {
			return fmt.Errorf("ovs VRF %d: removing fallback: %w", v.id, err)
		}
		v.fallback = nil
		return nil
	}
	for _, mac := range []string{f.SrcMAC, f.DstMAC} {
		if _, err := route.ParseMAC(mac); err != nil {
			return fmt.Errorf("ovs VRF %d: fallback: %w", v.id, err)
		}
	}
	if f.OVSPortNumber <= 0 {
		return fmt.Errorf("ovs VRF %d: fallback without ovs_port_number", v.id)
	}
	if err := v.d.r.bundle([]string{v.fallbackFlow(f)}); err != nil {
		return fmt.Errorf("ovs VRF %d: fallback: %w", v.id, err)
	}
	c := *f
	v.fallback = &c
	return nil
}

// flowNoise is what changes between two dumps of the same flow.
var flowNoise = regexp.MustCompile(`\s*(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*,`)

// Info implements dataplane.VRFDataplane: ports, routes and the live
// flows (dump-flows cookie=<VRF id>/-1) and groups of the VRF.
func (v *VRF) Info() map[string]any {
	v.mu.Lock()
	defer v.mu.Unlock()
	ports := map[string]any{}
	for k, p := range v.ports {
		ports[k] = map[string]any{"ofport": p.ofport, "vlan": p.vlan, "added_by_us": p.added}
	}
	groups := map[uint32]bool{}
	routes := map[string]any{}
	for p, r := range v.routes {
		groups[r.group] = true
		var nh []string
		for _, m := range r.members {
			nh = append(nh, fmt.Sprintf("%s label %d order %d vxlan %t", m.nextHop, m.label, m.lbOrder, m.vxlan))
		}
		routes[p.String()] = map[string]any{"group": r.group, "next_hops": nh}
	}
	info := map[string]any{"ovs_bridge": v.d.opts.Bridge, "ports": ports, "routes": routes}
	flows := []string{}
	if out, err := v.d.r.ofctlRun("dump-flows", cookieMask(v.id)); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "OFPST") && !strings.HasPrefix(l, "NXST") {
				flows = append(flows, flowNoise.ReplaceAllString(l, ""))
			}
		}
	} else {
		info["flows_error"] = err.Error()
	}
	info["flows"] = flows
	gl := []string{}
	if out, err := v.d.r.ofctlRun("dump-groups"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSpace(l)
			if id, ok := groupIDOf(l); ok && groups[id] {
				gl = append(gl, l)
			}
		}
	}
	info["groups"] = gl
	return info
}

// groupIDOf parses the group_id of a dump-groups line.
func groupIDOf(l string) (uint32, bool) {
	rest, ok := strings.CutPrefix(l, "group_id=")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.SplitN(rest, ",", 2)[0], 10, 32)
	return uint32(n), err == nil
}

// Close implements dataplane.VRFDataplane: every flow with the VRF's
// cookie and every group of the VRF go in one bundle; ports the driver
// added are deleted.
func (v *VRF) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	lines := []string{"flow delete " + cookieMask(v.id)}
	var gids []uint32
	for _, r := range v.routes {
		gids = append(gids, r.group)
	}
	slices.Sort(gids)
	for _, g := range gids {
		lines = append(lines, "group delete group_id="+strconv.FormatUint(uint64(g), 10))
	}
	if err := v.d.r.bundle(lines); err != nil {
		return fmt.Errorf("ovs VRF %d: close: %w", v.id, err)
	}
	for _, p := range v.ports {
		if p.added {
			v.delPort(p)
		}
	}
	v.d.releaseGroups(gids)
	clear(v.routes)
	clear(v.ports)
	v.d.dropVRF(v.id)
	return nil
}
