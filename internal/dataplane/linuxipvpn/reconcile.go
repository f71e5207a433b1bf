package linuxipvpn

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// reconcile repairs the VRF's kernel state against its desired state.
// have holds our rules found by the driver's dump, kr the routes of the
// VRF's table; both were dumped before the desired state is read here, so
// an entry that changed meanwhile is at worst rewritten, never lost.
// While the adoption grace runs, an adopted VRF keeps routes it has not
// (yet) re-added.
func (v *vrf) reconcile(have map[rule]bool, kr []kroute, grace bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || v.detached {
		return nil
	}
	v.reconciles++
	var errs []error
	repaired := 0

	// Ports: an interface recreated under the same name gets a new index.
	moved := map[string]bool{}
	for name, lp := range v.ports {
		l, err := v.d.h.LinkByName(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("port %s: %w (is the VM gone without an unplug?)", name, err))
			continue
		}
		if l.Attrs().Index != lp.index {
			lp.index = l.Attrs().Index
			moved[name] = true
			repaired++
		}
	}

	for r := range v.desiredRules() {
		if have[r] {
			continue
		}
		if err := v.d.raw.ruleAdd(r, rtProto); err != nil {
			errs = append(errs, fmt.Errorf("re-adding the rule %s: %w", r, err))
			continue
		}
		v.rules[r] = true
		repaired++
	}

	got := make(map[netip.Prefix]kroute, len(kr))
	for _, r := range kr {
		got[r.Dst] = r
	}
	want := map[netip.Prefix]bool{}
	check := func(p netip.Prefix) {
		if want[p] {
			return
		}
		want[p] = true
		k, ok := v.desiredRoute(p)
		g, present := got[p]
		switch {
		case ok && (!present || g.sig() != k.sig()):
			repaired++
			errs = append(errs, v.install(p))
		case !ok && present:
			want[p] = false // removed below
		}
	}
	for _, p := range v.fixedPrefixes() {
		check(p)
	}
	for p := range v.local {
		check(p)
	}
	for p := range v.routes {
		check(p)
	}
	if !(v.adopted && grace) {
		for p, g := range got {
			if !want[p] {
				repaired++
				errs = append(errs, v.d.delRoute(g))
			}
		}
	}

	// Neighbours of the local endpoints.
	for name, lp := range v.ports {
		list, err := v.d.h.NeighList(lp.index, netlink.FAMILY_V4)
		if err != nil {
			errs = append(errs, fmt.Errorf("listing the neighbours of %s: %w", name, err))
			continue
		}
		cur := map[netip.Addr]netlink.Neigh{}
		for _, n := range list {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				cur[a.Unmap()] = n
			}
		}
		for p, ep := range lp.eps {
			if !ep.toPort() || ep.mac.IsZero() || v.local[p] != name {
				continue
			}
			n, ok := cur[p.Addr()]
			if ok && !moved[name] && n.State&netlink.NUD_PERMANENT != 0 && n.HardwareAddr.String() == ep.mac.String() {
				continue
			}
			repaired++
			errs = append(errs, v.setNeigh(lp, p, ep))
		}
	}
	v.repairs += uint64(repaired)
	v.d.repairs.Add(uint64(repaired))
	err := errors.Join(errs...)
	v.lastErr = ""
	if err != nil {
		v.lastErr = err.Error()
		return fmt.Errorf("IP VPN instance %s: reconcile: %w", v.cfg.ExternalID, err)
	}
	if repaired > 0 {
		v.log.Info("reconcile repaired kernel state", "objects", repaired)
	}
	return nil
}
