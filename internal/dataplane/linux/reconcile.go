package linux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// fdbKey identifies a VXLAN fdb entry (one remote of a MAC).
type fdbKey struct {
	mac route.MAC
	dst dest
}

// snapshot is one dump of the namespace's fdb (bridge family) and
// neighbour tables, indexed by interface: the kernel walks every entry of
// a table whatever the filter, so the driver dumps once per round for all
// EVIs.
type snapshot struct {
	fdb   map[int][]netlink.Neigh
	neigh map[int][]netlink.Neigh // both families
}

// takeSnapshot dumps the fdb and the IPv4 and IPv6 neighbour tables.
func (d *Driver) takeSnapshot() (*snapshot, error) {
	s := &snapshot{fdb: map[int][]netlink.Neigh{}, neigh: map[int][]netlink.Neigh{}}
	fdb, err := dumpRetry(func() ([]netlink.Neigh, error) { return d.h.NeighList(0, unix.AF_BRIDGE) })
	if err != nil {
		return nil, fmt.Errorf("dumping the fdb: %w", err)
	}
	for _, n := range fdb {
		s.fdb[n.LinkIndex] = append(s.fdb[n.LinkIndex], n)
	}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		list, err := dumpRetry(func() ([]netlink.Neigh, error) { return d.h.NeighList(0, fam) })
		if err != nil {
			return nil, fmt.Errorf("dumping the neighbours: %w", err)
		}
		for _, n := range list {
			s.neigh[n.LinkIndex] = append(s.neigh[n.LinkIndex], n)
		}
	}
	return s, nil
}

// reconcile brings the kernel in line with the EVI's desired state
// (field notes §A4): devices recreated if deleted, put back in the bridge
// and up; missing fdb, flood and neighbour entries re-added; permanent
// entries nobody asked for removed from our VXLAN device (never from a
// reused one). After an adoption this is what removes the stale entries
// of the earlier run, from the first reconcile at least ReconcileInterval
// after the adoption (time for the instance to relearn its routes). Each
// repair is counted.
//
// snap is a dump taken by Driver.Reconcile when the EVI's generation was
// gen; it is used only if the EVI has not changed since and no device had
// to be recreated, otherwise the EVI dumps again under its lock.
func (e *evi) reconcile(snap *snapshot, gen uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.detached {
		return nil
	}
	start := time.Now()
	before := e.repairs
	if e.gen != gen {
		snap = nil
	}
	err := e.reconcileLocked(snap)
	e.reconciles++
	e.lastReconcile, e.lastReconcileTook = start, time.Since(start)
	e.lastReconcileErr = ""
	if err != nil {
		e.lastReconcileErr = err.Error()
		err = fmt.Errorf("reconciling E-VPN instance %s: %w", e.cfg.ExternalID, err)
	}
	if n := e.repairs - before; n > 0 {
		e.d.repairs.Add(n)
		e.log.Warn("reconcile repaired the dataplane", "repairs", n)
	}
	return err
}

func (e *evi) repaired(what string, args ...any) {
	e.repairs++
	e.log.Info("reconcile: "+what, args...)
}

func (e *evi) reconcileLocked(snap *snapshot) error {
	before := e.repairs
	if err := e.reconcileDevices(); err != nil {
		return err
	}
	if snap == nil || e.repairs != before {
		var err error
		if snap, err = e.d.takeSnapshot(); err != nil {
			return err
		}
	}
	var errs []error
	if err := e.reconcileFDB(snap); err != nil {
		errs = append(errs, err)
	}
	if err := e.reconcileNeigh(snap.neigh[e.vxIndex]); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reconcileDevices recreates our bridge and VXLAN device if they are gone
// and puts the VXLAN device and the ports back in the bridge.
func (e *evi) reconcileDevices() error {
	h := e.d.h
	// Bridge.
	br, err := h.LinkByIndex(e.brIndex)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("looking up bridge %s: %w", e.brName, err)
	}
	brRecreated := false
	if br == nil || br.Attrs().Name != e.brName || br.Type() != "bridge" {
		if !e.ownBridge {
			l, err := h.LinkByName(e.brName)
			if err != nil {
				return fmt.Errorf("linuxbr bridge %s is gone (%w); it is not ours to recreate", e.brName, err)
			}
			e.brIndex = l.Attrs().Index
		} else {
			if l, err := h.LinkByName(e.brName); err == nil && l.Attrs().Alias == e.alias && l.Type() == "bridge" {
				e.brIndex = l.Attrs().Index // recreated under the same name (ours)
			} else {
				if err == nil {
					return fmt.Errorf("bridge %s was replaced by an interface that is not ours (alias %q); remove it", e.brName, l.Attrs().Alias)
				}
				if err := e.createBridge(); err != nil {
					return err
				}
				e.repaired("recreated the bridge", "bridge", e.brName)
				brRecreated = true
			}
		}
	} else if e.ownBridge && br.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("setting bridge %s up: %w", e.brName, err)
		}
		e.repaired("set the bridge up", "bridge", e.brName)
	}

	// VXLAN device.
	vx, err := h.LinkByIndex(e.vxIndex)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("looking up VXLAN device %s: %w", e.vxName, err)
	}
	if vx == nil || vx.Attrs().Name != e.vxName || vx.Type() != "vxlan" {
		if !e.ownVXLAN {
			return fmt.Errorf("reused VXLAN device %s is gone; it is not ours to recreate", e.vxName)
		}
		if l, err := h.LinkByName(e.vxName); err == nil {
			if l.Attrs().Alias != e.alias {
				return fmt.Errorf("VXLAN device %s was replaced by an interface that is not ours (alias %q); remove it", e.vxName, l.Attrs().Alias)
			}
			if err := h.LinkDel(l); err != nil && !isNotFound(err) {
				return fmt.Errorf("deleting %s to recreate it: %w", e.vxName, err)
			}
		}
		if err := e.createVXLAN(); err != nil {
			return err
		}
		e.repaired("recreated the VXLAN device", "vxlan", e.vxName)
	} else {
		if vx.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(vx, e.brIndex); err != nil {
				return fmt.Errorf("putting %s back in bridge %s: %w", e.vxName, e.brName, err)
			}
			e.repaired("put the VXLAN device back in the bridge", "vxlan", e.vxName)
		}
		if e.ownVXLAN && vx.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(vx); err != nil {
				return fmt.Errorf("setting %s up: %w", e.vxName, err)
			}
			e.repaired("set the VXLAN device up", "vxlan", e.vxName)
		}
	}

	// Ports we enslaved, and the gateway port.
	for _, p := range e.ports {
		l, err := h.LinkByName(p.name)
		if err != nil {
			continue // the VM's interface is gone: nothing to put back
		}
		p.index = l.Attrs().Index
		if (p.enslaved || brRecreated && e.ownBridge) && l.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(l, e.brIndex); err != nil {
				return fmt.Errorf("putting port %q back in bridge %s: %w", p.name, e.brName, err)
			}
			p.enslaved = true
			e.repaired("put a port back in the bridge", "port", p.name)
		}
	}
	if e.gateway != "" && e.gatewayEnslaved {
		if l, err := h.LinkByName(e.gateway); err == nil && l.Attrs().MasterIndex != e.brIndex {
			if err := h.LinkSetMasterByIndex(l, e.brIndex); err != nil {
				return fmt.Errorf("putting gateway port %q back in bridge %s: %w", e.gateway, e.brName, err)
			}
			e.repaired("put the gateway port back in the bridge", "port", e.gateway)
		}
	}
	return nil
}

// reconcileFDB compares the dumped bridge-family fdb entries of the VXLAN
// device and of the ports with the desired remote and local entries.
func (e *evi) reconcileFDB(snap *snapshot) error {
	h := e.d.h
	entries := slices.Clone(snap.fdb[e.vxIndex])
	for _, p := range e.ports {
		entries = append(entries, snap.fdb[p.index]...)
	}
	present := map[fdbKey]bool{}
	var unexpected []fdbKey
	portIdx := map[int]*localPort{}
	for _, p := range e.ports {
		portIdx[p.index] = p
	}
	localPresent := map[int]map[route.MAC]bool{}
	for i := range entries {
		n := &entries[i]
		if n.LinkIndex == e.vxIndex && n.Flags&netlink.NTF_SELF != 0 && n.IP != nil && len(n.HardwareAddr) == 6 {
			vtep, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			k := fdbKey{mac: route.MAC(n.HardwareAddr), dst: dest{vtep: vtep.Unmap(), vni: uint32(n.VNI)}}
			if k.dst.vni == 0 { // the kernel omits NDA_VNI when it is the device's
				k.dst.vni = e.cfg.VNI
			}
			present[k] = true
			if n.State&netlink.NUD_PERMANENT != 0 && !e.wantFDB(k) {
				unexpected = append(unexpected, k)
			}
			continue
		}
		// Bridge entries come back with NDA_MASTER set, not NTF_MASTER.
		if p := portIdx[n.LinkIndex]; p != nil && n.MasterIndex != 0 && n.State&netlink.NUD_NOARP != 0 && len(n.HardwareAddr) == 6 {
			if localPresent[n.LinkIndex] == nil {
				localPresent[n.LinkIndex] = map[route.MAC]bool{}
			}
			localPresent[n.LinkIndex][route.MAC(n.HardwareAddr)] = true
		}
	}
	var errs []error
	for m, dst := range e.fdb {
		if !present[fdbKey{m, dst}] {
			if err := h.NeighSet(e.remoteFDB(m, dst)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding fdb entry %s %s: %w", m, dst, err))
				continue
			}
			e.repaired("re-added a missing fdb entry", "mac", m.String(), "dst", dst.String())
		}
	}
	for f := range e.flood {
		if !present[fdbKey{route.MAC{}, f}] {
			if err := h.NeighAppend(e.remoteFDB(route.MAC{}, f)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding flood entry %s: %w", f, err))
				continue
			}
			e.repaired("re-added a missing flood entry", "dst", f.String())
		}
	}
	if e.ownVXLAN && !time.Now().Before(e.keepStaleUntil) {
		for _, k := range unexpected {
			if err := ignoreNotFound(h.NeighDel(e.remoteFDB(k.mac, k.dst))); err != nil {
				errs = append(errs, fmt.Errorf("removing unexpected fdb entry %s %s: %w", k.mac, k.dst, err))
				continue
			}
			e.repaired("removed an unexpected fdb entry", "mac", k.mac.String(), "dst", k.dst.String())
		}
	}
	for _, p := range e.ports {
		for m := range p.macs {
			if !localPresent[p.index][m] {
				if err := h.NeighSet(localFDB(p.index, m)); err != nil {
					errs = append(errs, fmt.Errorf("re-adding the static fdb entry %s on %q: %w", m, p.name, err))
					continue
				}
				e.repaired("re-added a missing static fdb entry", "mac", m.String(), "port", p.name)
			}
		}
	}
	return errors.Join(errs...)
}

func (e *evi) wantFDB(k fdbKey) bool {
	if k.mac == (route.MAC{}) {
		return e.flood[k.dst]
	}
	d, ok := e.fdb[k.mac]
	return ok && d == k.dst
}

// reconcileNeigh compares the VXLAN device's dumped neighbours with the
// desired remote IPs.
func (e *evi) reconcileNeigh(entries []netlink.Neigh) error {
	h := e.d.h
	present := map[netip.Addr]route.MAC{}
	var errs []error
	for _, n := range entries {
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok || len(n.HardwareAddr) != 6 {
			continue
		}
		ip = ip.Unmap()
		mac := route.MAC(n.HardwareAddr)
		present[ip] = mac
		if n.State&netlink.NUD_PERMANENT == 0 || !e.ownVXLAN || time.Now().Before(e.keepStaleUntil) {
			continue
		}
		if l := e.neigh[ip]; len(l) == 0 {
			if err := ignoreNotFound(h.NeighDel(e.remoteNeigh(ip, mac))); err != nil {
				errs = append(errs, fmt.Errorf("removing unexpected neighbour %s: %w", ip, err))
				continue
			}
			e.repaired("removed an unexpected neighbour", "ip", ip.String(), "mac", mac.String())
		}
	}
	for ip, l := range e.neigh {
		want := l[len(l)-1]
		if cur, ok := present[ip]; !ok || cur != want {
			if err := h.NeighSet(e.remoteNeigh(ip, want)); err != nil {
				errs = append(errs, fmt.Errorf("re-adding neighbour %s %s: %w", ip, want, err))
				continue
			}
			e.repaired("re-added a missing or wrong neighbour", "ip", ip.String(), "mac", want.String())
		}
	}
	return errors.Join(errs...)
}
