package ovs

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// Flow builders shared by the incremental methods and Resync.

// inputFlows send ip and arp from a plugged port to the VRF table.
func (v *VRF) inputFlows(pl *plugged) []string {
	match := portMatch(pl.ofport, pl.vlan)
	out := make([]string, 0, 2)
	for _, proto := range []string{"ip", "arp"} {
		out = append(out, flowAdd(v.id, v.d.inTable, DefaultPriority, join(match, proto), inputActions(pl.vlan, v.id, v.d.vrfTable)))
	}
	return out
}

// portDropFlow drops whatever a plugged port sends that the VRF does not
// take (IPv6, other ethertypes, IPv4 of a to-port-only port), so the
// bridge's default NORMAL flow cannot switch it to another VRF's port.
// Upstream has no such flow and leaks this traffic between VRFs.
func (v *VRF) portDropFlow(pl *plugged) string {
	return flowAdd(v.id, v.d.inTable, dropPriority, portMatch(pl.ofport, pl.vlan), "drop")
}

// arpResponderFlow answers ARP requests for the gateway (or any address
// with proxy_arp) with GatewayMAC.
func (v *VRF) arpResponderFlow() string {
	return flowAdd(v.id, v.d.vrfTable, DefaultPriority, arpResponderMatch(v.id, v.cfg.GatewayIP, v.d.opts.ProxyARP), arpResponderActions(v.vid()))
}

// encapInFlows deliver MPLS (and VXLAN) traffic for label to a VM.
func (v *VRF) encapInFlows(label uint32, mac string, ofport int) []string {
	acts := toPortActions(v.vid(), mac, ofport)
	out := []string{flowAdd(v.id, v.d.encapIn, DefaultPriority, mplsInMatch(label), "pop_mpls:0x0800,"+acts)}
	if v.d.opts.VXLANEncap {
		out = append(out, flowAdd(v.id, v.d.encapIn, DefaultPriority, vxlanInMatch(v.d.vxlanPort, label), acts))
	}
	return out
}

// fallbackFlow is the lowest-priority flow of the VRF (reference §5.8).
func (v *VRF) fallbackFlow(f *dataplane.Fallback) string {
	return flowAdd(v.id, v.d.vrfTable, FallbackPriority, vrfMatch(v.id, "", ""), fallbackActions(f, v.vid()))
}

// classifierFlows redirect traffic matching ms to VRF redirect's lookup.
func (v *VRF) classifierFlows(ms []string, redirect uint32) []string {
	acts := "set_field:" + strconv.FormatUint(uint64(redirect), 10) + "->" + vrfRegister + ",resubmit(," + strconv.Itoa(v.d.vrfTable) + ")"
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, flowAdd(v.id, v.d.vrfTable, DefaultPriority, vrfMatch(v.id, "", m), acts))
	}
	return out
}

// Lost reports whether OVS lost the driver's flows (ovs-vswitchd
// restarted: it keeps bridges and ports, not flows): the input-table flow
// that sends MPLS from the tunnel port to the encap-in table is missing.
// It is false before the first VRF.
func (d *Driver) Lost() (bool, error) {
	d.mu.Lock()
	init, port := d.initialised, d.mplsInPort
	d.mu.Unlock()
	if !init {
		return false, nil
	}
	out, err := d.r.ofctlRun("dump-flows", "table="+strconv.Itoa(d.inTable)+",cookie=0/-1,mpls")
	if err != nil {
		return false, fmt.Errorf("ovs driver: checking flows on %s: %w", d.opts.Bridge, err)
	}
	p := "in_port=" + strconv.Itoa(port)
	return !strings.Contains(out, p+" ") && !strings.Contains(out, p+","), nil
}

// Resync re-creates the tunnel ports and re-programs every VRF from the
// state the driver keeps (ports, endpoints, routes with their group ids,
// classifiers, fallback), one bundle per VRF. Use it after ovs-vswitchd
// restarted (Lost), as upstream's restart handling re-pushes flows.
func (d *Driver) Resync() error {
	d.mu.Lock()
	d.initialised = false
	clear(d.ofports)
	err := d.initialise()
	vrfs := slices.Collect(maps.Values(d.vrfs))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	slices.SortFunc(vrfs, func(a, b *VRF) int { return int(a.id) - int(b.id) })
	var errs []string
	for _, v := range vrfs {
		if err := v.resync(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ovs driver: resync: %s", strings.Join(errs, "; "))
	}
	d.log.Info("re-programmed OVS", "vrfs", len(vrfs))
	return nil
}

// Watch checks every interval, until ctx ends, whether OVS lost our flows
// (Lost) and re-programs them (Resync). Run it in its own goroutine.
func (d *Driver) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lost, err := d.Lost()
		if err != nil {
			d.log.Warn("checking OVS flows", "err", err)
			continue
		}
		if lost {
			d.log.Warn("OVS lost our flows (ovs-vswitchd restarted?), re-programming")
			if err := d.Resync(); err != nil {
				d.log.Error("re-programming OVS", "err", err)
			}
		}
	}
}

// resync replaces everything the VRF has in OVS by its kept state.
func (v *VRF) resync() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	lines := []string{"flow delete " + cookieMask(v.id)}
	for _, r := range v.routes {
		lines = append(lines, "group delete group_id="+strconv.FormatUint(uint64(r.group), 10))
	}
	for _, k := range slices.Sorted(maps.Keys(v.ports)) {
		pl := v.ports[k]
		if pl.name != "" {
			n, err := v.d.portNumber(pl.name)
			if err != nil {
				return fmt.Errorf("ovs VRF %d: resync: port %s: %w", v.id, pl.name, err)
			}
			pl.ofport = n
		}
		lines = append(lines, v.portDropFlow(pl))
		if pl.input {
			lines = append(lines, v.inputFlows(pl)...)
		}
	}
	if len(v.ports) > 0 && v.d.opts.ARPResponder {
		lines = append(lines, v.arpResponderFlow())
	}
	for _, l := range slices.Sorted(maps.Keys(v.labels)) {
		u := v.labels[l]
		if pl := v.ports[u.port]; pl != nil {
			lines = append(lines, v.encapInFlows(l, u.mac, pl.ofport)...)
		}
	}
	if v.fallback != nil {
		lines = append(lines, v.fallbackFlow(v.fallback))
	}
	for _, k := range slices.Sorted(maps.Keys(v.classifiers)) {
		u := v.classifiers[k]
		lines = append(lines, v.classifierFlows(u.matches, u.redirect)...)
	}
	prefixes := slices.SortedFunc(maps.Keys(v.routes), func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), a.Bits()-b.Bits())
	})
	var failed []string
	for _, p := range prefixes {
		r := v.routes[p]
		g, err := v.groupSpec(r.group, p, r.members)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		lines = append(lines, "group add "+g, flowAdd(v.id, v.d.vrfTable, prefixPriority(p), vrfMatch(v.id, "ip", prefixMatch(p)), v.routeActions(p, r.group)))
	}
	if err := v.d.r.bundle(lines); err != nil {
		return fmt.Errorf("ovs VRF %d: resync: %w", v.id, err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("ovs VRF %d: resync: %s", v.id, strings.Join(failed, "; "))
	}
	return nil
}
