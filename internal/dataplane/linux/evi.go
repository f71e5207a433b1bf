package linux

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// dest is a VXLAN destination: remote VTEP and VNI.
type dest struct {
	vtep netip.Addr
	vni  uint32
}

func (d dest) String() string { return fmt.Sprintf("%s vni %d", d.vtep, d.vni) }

// localPort is a plugged interface and the MACs of its endpoints.
type localPort struct {
	name     string
	index    int
	macs     map[route.MAC]int // endpoints per MAC
	enslaved bool              // we put it in our bridge
}

// evi is the dataplane of one E-VPN instance. mu guards everything below
// it (see the package comment for the locking rules).
type evi struct {
	d     *Driver
	cfg   dataplane.EVIConfig
	local netip.Addr
	alias string
	log   *slog.Logger

	mu                sync.Mutex
	brName, vxName    string
	brIndex, vxIndex  int
	ownBridge         bool // created (or adopted) by us: we may delete it
	ownVXLAN          bool
	adopted           bool
	fdb               fdbTable // remote MAC → destination (state.go)
	flood             map[dest]bool
	neigh             neighTable // remote IP → MACs (state.go)
	ports             map[string]*localPort
	gateway           string
	gatewayEnslaved   bool
	closed, detached  bool
	changes           touched   // what changed during a reconcile dump
	keepStaleUntil    time.Time // adopted: unexpected entries are kept until then
	repairs           uint64
	reconciles        uint64
	lastReconcile     time.Time
	lastReconcileErr  string
	lastReconcileTook time.Duration
}

var _ dataplane.EVIDataplane = (*evi)(nil)

// NewEVI implements dataplane.EVPNDriver: it creates (or adopts) the
// instance's bridge and VXLAN device.
func (d *Driver) NewEVI(cfg dataplane.EVIConfig) (dataplane.EVIDataplane, error) {
	if cfg.VNI == 0 || cfg.VNI >= 1<<24 {
		return nil, fmt.Errorf("E-VPN instance %s: VNI %d is not a valid 24-bit VXLAN id (1..16777215)", cfg.ExternalID, cfg.VNI)
	}
	local := cfg.LocalAddress
	if !local.IsValid() {
		local = d.opts.LocalAddress
	}
	if !local.IsValid() {
		return nil, fmt.Errorf("E-VPN instance %s: no VTEP address; set dataplane_local_address in [DATAPLANE_DRIVER_EVPN]", cfg.ExternalID)
	}
	e := &evi{
		d: d, cfg: cfg, local: local.Unmap(), alias: aliasOf(cfg.ExternalID, cfg.VNI),
		log:   d.log.With("instance", cfg.ExternalID, "vni", cfg.VNI),
		flood: map[dest]bool{},
		ports: map[string]*localPort{},
	}
	e.brName, e.vxName = ifNames(cfg.ExternalID)
	e.ownBridge = cfg.LinuxBridge == ""
	if !e.ownBridge {
		e.brName = cfg.LinuxBridge
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("E-VPN instance %s: the linux driver is closed", cfg.ExternalID)
	}
	if _, dup := d.evis[cfg.ExternalID]; dup {
		return nil, fmt.Errorf("E-VPN instance %s already has a linux dataplane; close it first", cfg.ExternalID)
	}
	for _, n := range []string{e.brName, e.vxName} {
		if other, used := d.names[n]; used && other != cfg.ExternalID {
			return nil, fmt.Errorf("E-VPN instance %s: interface name %s is already used by instance %s (hash clash); use another vpn_instance_id", cfg.ExternalID, n, other)
		}
	}
	d.touch()
	if err := d.claimDying(e.brName, e.vxName, cfg.VNI, e.ownBridge); err != nil {
		return nil, fmt.Errorf("E-VPN instance %s (VNI %d): %w", cfg.ExternalID, cfg.VNI, err)
	}
	if err := e.setup(); err != nil {
		return nil, fmt.Errorf("E-VPN instance %s (VNI %d): %w", cfg.ExternalID, cfg.VNI, err)
	}
	d.evis[cfg.ExternalID] = e
	for _, n := range []string{e.brName, e.vxName} {
		delete(d.inventory, n)
	}
	if e.ownBridge {
		d.names[e.brName] = cfg.ExternalID
	}
	if e.ownVXLAN {
		d.names[e.vxName] = cfg.ExternalID
	}
	e.log.Info("E-VPN linux dataplane ready", "bridge", e.brName, "vxlan", e.vxName, "adopted", e.adopted, "local", e.local.String(), "port", d.opts.VXLANPort)
	return e, nil
}

// setup creates or adopts the bridge and the VXLAN device. It runs under
// Driver.mu, before the EVI is published.
func (e *evi) setup() error {
	h := e.d.h
	brAdopted, err := e.ensureBridge()
	if err != nil {
		return err
	}
	if !e.ownBridge {
		// linuxbr: reuse a VXLAN port of that bridge with our VNI.
		links, err := dumpRetry(h.LinkList)
		if err != nil {
			return fmt.Errorf("listing interfaces: %w", err)
		}
		for _, l := range links {
			vx, ok := l.(*netlink.Vxlan)
			if !ok || vx.MasterIndex != e.brIndex || uint32(vx.VxlanId) != e.cfg.VNI {
				continue
			}
			if owner, _, mine := parseAlias(vx.Alias); mine && owner == ownerOf(e.cfg.ExternalID) {
				e.vxName = vx.Name // ours from an earlier run: adopt below
				break
			}
			if _, _, mine := parseAlias(vx.Alias); !mine {
				e.vxName, e.vxIndex, e.ownVXLAN = vx.Name, vx.Index, false
				e.log.Info("reusing the VXLAN port of bridge", "bridge", e.brName, "vxlan", vx.Name)
				return e.ensureUp(vx)
			}
		}
	}
	vxAdopted, err := e.ensureVXLAN()
	if err != nil {
		switch {
		case e.ownBridge && brAdopted:
			// Not left behind unclaimed: the reaper deletes it.
			e.d.enqueueDying(dyingLink{name: e.brName, index: e.brIndex, kind: "bridge", alias: e.alias})
		case e.ownBridge:
			if br, lerr := h.LinkByIndex(e.brIndex); lerr == nil {
				_ = h.LinkDel(br)
			}
		}
		return err
	}
	e.adopted = vxAdopted && (brAdopted || !e.ownBridge)
	if vxAdopted {
		// The entries of the earlier run stay until the instance had time
		// to relearn its routes: removing them at once would cut the
		// traffic adoption keeps flowing.
		e.keepStaleUntil = time.Now().Add(e.d.opts.ReconcileInterval)
	}
	return nil
}

// ensureBridge finds, adopts or creates the bridge.
func (e *evi) ensureBridge() (adopted bool, err error) {
	h := e.d.h
	link, err := h.LinkByName(e.brName)
	if err != nil && !isNotFound(err) {
		return false, fmt.Errorf("looking up bridge %s: %w", e.brName, err)
	}
	if !e.ownBridge {
		if link == nil {
			return false, fmt.Errorf("linuxbr bridge %q does not exist; create it before attaching (or omit linuxbr)", e.brName)
		}
		if link.Type() != "bridge" {
			return false, fmt.Errorf("linuxbr %q is a %s, not a bridge", e.brName, link.Type())
		}
		e.brIndex = link.Attrs().Index
		return false, nil
	}
	if link != nil {
		owner, _, mine := parseAlias(link.Attrs().Alias)
		switch {
		case !mine:
			return false, fmt.Errorf("interface %s exists and is not owned by bagpipe (no %q alias); delete or rename it", e.brName, aliasPrefix)
		case owner == ownerOf(e.cfg.ExternalID) && link.Type() == "bridge":
			e.brIndex = link.Attrs().Index
			if link.Attrs().Alias != e.alias {
				if err := h.LinkSetAlias(link, e.alias); err != nil {
					return false, fmt.Errorf("setting the alias of bridge %s: %w", e.brName, err)
				}
			}
			return true, e.ensureUp(link)
		default:
			// An unclaimed leftover of another instance (NewEVI checked the
			// live ones) or of the wrong kind: ours to replace.
			e.log.Info("replacing a leftover interface", "interface", e.brName, "alias", link.Attrs().Alias, "kind", link.Type())
			if err := h.LinkDel(link); err != nil && !isNotFound(err) {
				return false, fmt.Errorf("deleting leftover interface %s: %w", e.brName, err)
			}
		}
	}
	return false, e.createBridge()
}

func (e *evi) createBridge() error {
	h := e.d.h
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: e.brName}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("creating bridge %s: %w", e.brName, err)
	}
	link, err := h.LinkByName(e.brName)
	if err != nil {
		return fmt.Errorf("bridge %s vanished after creation: %w", e.brName, err)
	}
	e.brIndex = link.Attrs().Index
	// Alias, no IPv6 address, up: one sendmsg (batch.go).
	idx := int32(e.brIndex)
	errs := e.d.batch.runRaw(linkMsg(linkOp{index: idx, alias: e.alias}), linkMsg(linkOp{index: idx, noIPv6Addr: true}), linkMsg(linkOp{index: idx, up: true}))
	e.noIPv6Result(e.brName, errs[1])
	for i, what := range []string{"setting the alias of", "", "setting up"} {
		if what != "" && errs[i] != nil {
			_ = h.LinkDel(link)
			return fmt.Errorf("%s bridge %s: %w", what, e.brName, errs[i])
		}
	}
	return nil
}

// ensureVXLAN finds, adopts or (re)creates our VXLAN device and puts it in
// the bridge.
func (e *evi) ensureVXLAN() (adopted bool, err error) {
	h := e.d.h
	e.ownVXLAN = true
	link, err := h.LinkByName(e.vxName)
	if err != nil && !isNotFound(err) {
		return false, fmt.Errorf("looking up VXLAN device %s: %w", e.vxName, err)
	}
	if link != nil {
		owner, _, mine := parseAlias(link.Attrs().Alias)
		if !mine {
			return false, fmt.Errorf("interface %s exists and is not owned by bagpipe (no %q alias); delete or rename it", e.vxName, aliasPrefix)
		}
		if vx, ok := link.(*netlink.Vxlan); ok && owner == ownerOf(e.cfg.ExternalID) && e.matches(vx) {
			e.vxIndex = vx.Index
			if vx.Alias != e.alias {
				if err := h.LinkSetAlias(vx, e.alias); err != nil {
					return false, fmt.Errorf("setting the alias of %s: %w", e.vxName, err)
				}
			}
			if vx.MasterIndex != e.brIndex {
				if err := h.LinkSetMasterByIndex(vx, e.brIndex); err != nil {
					return false, fmt.Errorf("putting %s in bridge %s: %w", e.vxName, e.brName, err)
				}
			}
			return true, e.ensureUp(vx)
		}
		e.log.Info("recreating a VXLAN device with another configuration", "interface", e.vxName, "alias", link.Attrs().Alias)
		if err := h.LinkDel(link); err != nil && !isNotFound(err) {
			return false, fmt.Errorf("deleting leftover interface %s: %w", e.vxName, err)
		}
	}
	return false, e.createVXLAN()
}

// matches reports whether an existing VXLAN device has our configuration.
func (e *evi) matches(vx *netlink.Vxlan) bool {
	src, _ := netip.AddrFromSlice(vx.SrcAddr)
	return uint32(vx.VxlanId) == e.cfg.VNI && src.Unmap() == e.local && vx.Port == e.d.opts.VXLANPort &&
		!vx.Learning && vx.Proxy && !vx.FlowBased
}

func (e *evi) createVXLAN() error {
	h := e.d.h
	vx := &netlink.Vxlan{
		LinkAttrs: netlink.LinkAttrs{Name: e.vxName},
		VxlanId:   int(e.cfg.VNI),
		SrcAddr:   e.local.AsSlice(),
		Port:      e.d.opts.VXLANPort,
		Learning:  false, // remote MACs come from BGP only
		Proxy:     true,  // answer ARP from the neighbour entries
	}
	if err := h.LinkAdd(vx); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("creating VXLAN device %s: %w (another VXLAN device already uses VNI %d on UDP port %d: remove it or use another vni)", e.vxName, err, e.cfg.VNI, e.d.opts.VXLANPort)
		}
		return fmt.Errorf("creating VXLAN device %s (VNI %d, local %s, port %d): %w", e.vxName, e.cfg.VNI, e.local, e.d.opts.VXLANPort, err)
	}
	link, err := h.LinkByName(e.vxName)
	if err != nil {
		return fmt.Errorf("VXLAN device %s vanished after creation: %w", e.vxName, err)
	}
	e.vxIndex = link.Attrs().Index
	// Alias, into the bridge, no IPv6 address, up: one sendmsg (batch.go).
	idx := int32(e.vxIndex)
	errs := e.d.batch.runRaw(linkMsg(linkOp{index: idx, alias: e.alias}), linkMsg(linkOp{index: idx, master: int32(e.brIndex)}),
		linkMsg(linkOp{index: idx, noIPv6Addr: true}), linkMsg(linkOp{index: idx, up: true}))
	e.noIPv6Result(e.vxName, errs[2])
	for i, what := range []string{"setting the alias of", "putting in bridge " + e.brName + " the", "", "setting up the"} {
		if what != "" && errs[i] != nil {
			_ = h.LinkDel(link)
			return fmt.Errorf("%s VXLAN device %s: %w", what, e.vxName, errs[i])
		}
	}
	return nil
}

func (e *evi) ensureUp(link netlink.Link) error {
	if link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := e.d.h.LinkSetUp(link); err != nil {
		return fmt.Errorf("setting %s up: %w", link.Attrs().Name, err)
	}
	return nil
}

// usable reports why the EVI cannot be used, if it cannot.
func (e *evi) usable() error {
	switch {
	case e.closed:
		return fmt.Errorf("E-VPN instance %s: dataplane already closed", e.cfg.ExternalID)
	case e.detached:
		return fmt.Errorf("E-VPN instance %s: the linux driver is closed", e.cfg.ExternalID)
	}
	return nil
}

// Plug implements dataplane.EVIDataplane: the first endpoint of a port
// puts the interface in our bridge (not in a linuxbr one, which its owner
// manages); every MAC gets a static fdb entry on the port.
func (e *evi) Plug(port dataplane.LocalPort, mac route.MAC, ip netip.Addr) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	e.d.touch()
	h := e.d.h
	p := e.ports[port.LinuxIf]
	newPort := p == nil
	if newPort {
		link, err := h.LinkByName(port.LinuxIf)
		if err != nil {
			if isNotFound(err) {
				return fmt.Errorf("interface %q does not exist in the dataplane's network namespace: create it (or move it there) before attaching", port.LinuxIf)
			}
			return fmt.Errorf("looking up interface %q: %w", port.LinuxIf, err)
		}
		// In our bridge, the port is ours to release on the last unplug,
		// even if it was already there (adopted from an earlier run).
		p = &localPort{name: port.LinuxIf, index: link.Attrs().Index, macs: map[route.MAC]int{}, enslaved: e.ownBridge}
		// Into the bridge, up, static fdb entry: one sendmsg (batch.go).
		idx := int32(p.index)
		var msgs []rawMsg
		var what []string
		if e.ownBridge && link.Attrs().MasterIndex != e.brIndex {
			msgs = append(msgs, linkMsg(linkOp{index: idx, master: int32(e.brIndex)}))
			what = append(what, fmt.Sprintf("putting interface %q in bridge %s", port.LinuxIf, e.brName))
		}
		if link.Attrs().Flags&net.FlagUp == 0 {
			msgs = append(msgs, linkMsg(linkOp{index: idx, up: true}))
			what = append(what, fmt.Sprintf("setting %s up", port.LinuxIf))
		}
		msgs = append(msgs, neighMsg(localFDBOp(p.index, mac)))
		what = append(what, fmt.Sprintf("adding the static fdb entry %s on %q", mac, port.LinuxIf))
		for i, err := range e.d.batch.runRaw(msgs...) {
			if err != nil {
				e.releasePort(p)
				return fmt.Errorf("%s: %w", what[i], err)
			}
		}
	} else if p.macs[mac] == 0 {
		if err := e.d.batch.runRaw(neighMsg(localFDBOp(p.index, mac)))[0]; err != nil {
			return fmt.Errorf("adding the static fdb entry %s on %q: %w", mac, port.LinuxIf, err)
		}
	}
	e.changes.port(port.LinuxIf)
	p.macs[mac]++
	e.ports[port.LinuxIf] = p
	return nil
}

// Unplug implements dataplane.EVIDataplane.
func (e *evi) Unplug(port dataplane.LocalPort, mac route.MAC, ip netip.Addr, last bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	e.d.touch()
	p := e.ports[port.LinuxIf]
	if p == nil {
		return nil
	}
	e.changes.port(port.LinuxIf)
	var errs []error
	if n := p.macs[mac]; n > 0 {
		if n == 1 {
			delete(p.macs, mac)
			if err := e.d.h.NeighDel(localFDB(p.index, mac)); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("removing the static fdb entry %s on %q: %w", mac, port.LinuxIf, err))
			}
		} else {
			p.macs[mac] = n - 1
		}
	}
	if last || len(p.macs) == 0 {
		for m := range p.macs {
			_ = e.d.h.NeighDel(localFDB(p.index, m))
		}
		if err := e.releasePort(p); err != nil {
			errs = append(errs, err)
		}
		delete(e.ports, port.LinuxIf)
	}
	return errors.Join(errs...)
}

// releasePort takes a port we enslaved out of our bridge.
func (e *evi) releasePort(p *localPort) error {
	if !p.enslaved {
		return nil
	}
	return e.release(p.index, p.name)
}

// release takes an interface out of our bridge if it is still in it; an
// interface gone meanwhile is not an error.
func (e *evi) release(index int, name string) error {
	h := e.d.h
	link, err := h.LinkByIndex(index)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("looking up interface %q: %w", name, err)
	}
	if link.Attrs().MasterIndex != e.brIndex {
		return nil
	}
	if err := h.LinkSetNoMaster(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("taking interface %q out of bridge %s: %w", name, e.brName, err)
	}
	return nil
}

// SetGatewayPort implements dataplane.EVIDataplane: the EVI↔VRF link joins
// the bridge.
func (e *evi) SetGatewayPort(linuxIf string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	e.d.touch()
	link, err := e.d.h.LinkByName(linuxIf)
	if err != nil {
		return fmt.Errorf("gateway port %q: %w (create the interface first)", linuxIf, err)
	}
	e.gatewayEnslaved = e.ownBridge
	if link.Attrs().MasterIndex != e.brIndex {
		if err := e.d.h.LinkSetMasterByIndex(link, e.brIndex); err != nil {
			return fmt.Errorf("putting gateway port %q in bridge %s: %w", linuxIf, e.brName, err)
		}
		e.gatewayEnslaved = true
	}
	e.gateway = linuxIf
	return e.ensureUp(link)
}

// GatewayPortDown implements dataplane.EVIDataplane.
func (e *evi) GatewayPortDown(linuxIf string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.usable(); err != nil {
		return err
	}
	e.d.touch()
	if e.gateway == linuxIf {
		e.gateway, e.gatewayEnslaved = "", false
	}
	link, err := e.d.h.LinkByName(linuxIf)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("gateway port %q: %w", linuxIf, err)
	}
	return e.release(link.Attrs().Index, linuxIf)
}

// localFDBOp is the request for localFDB (batch.go).
func localFDBOp(index int, mac route.MAC) neighOp {
	return neighOp{msgType: unix.RTM_NEWNEIGH, flags: unix.NLM_F_CREATE | unix.NLM_F_REPLACE, family: unix.AF_BRIDGE,
		index: int32(index), state: netlink.NUD_NOARP, ntf: netlink.NTF_MASTER, mac: mac}
}

// localFDB is a static bridge fdb entry for a local endpoint: "bridge fdb
// replace MAC dev IF master static". Not "permanent": the bridge treats a
// permanent MAC as its own and would not forward frames to the port.
func localFDB(index int, mac route.MAC) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    index,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_MASTER,
		State:        netlink.NUD_NOARP,
		HardwareAddr: net.HardwareAddr(mac[:]),
	}
}

// Info implements dataplane.EVIDataplane.
func (e *evi) Info() map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	flood := make([]string, 0, len(e.flood))
	for f := range e.flood {
		flood = append(flood, f.String())
	}
	slices.Sort(flood)
	ports := make([]string, 0, len(e.ports))
	for n := range e.ports {
		ports = append(ports, n)
	}
	slices.Sort(ports)
	info := map[string]any{
		"driver":          DriverName,
		"linux_bridge":    e.brName,
		"vxlan_if":        e.vxName,
		"own_bridge":      e.ownBridge,
		"own_vxlan":       e.ownVXLAN,
		"adopted":         e.adopted,
		"vni":             e.cfg.VNI,
		"local_address":   e.local.String(),
		"fdb_count":       e.fdb.len(),
		"flood_list":      flood,
		"neigh_count":     e.neigh.len(),
		"ports":           ports,
		"gateway_port":    e.gateway,
		"repairs":         e.repairs,
		"reconciles":      e.reconciles,
		"last_reconcile":  "",
		"reconcile_error": e.lastReconcileErr,
	}
	if !e.lastReconcile.IsZero() {
		info["last_reconcile"] = e.lastReconcile.UTC().Format(time.RFC3339)
		info["last_reconcile_duration"] = e.lastReconcileTook.String()
	}
	return info
}

// Close implements dataplane.EVIDataplane: it removes what the instance
// added (entries, then our VXLAN device and bridge), releasing the plugged
// ports and the gateway port first; the ports themselves are never
// deleted.
func (e *evi) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var errs []error
	if !e.detached {
		e.d.touch()
		errs = e.teardown()
	}
	e.mu.Unlock()

	d := e.d
	d.mu.Lock()
	if d.evis[e.cfg.ExternalID] == e {
		delete(d.evis, e.cfg.ExternalID)
		for _, n := range []string{e.brName, e.vxName} {
			if d.names[n] == e.cfg.ExternalID {
				delete(d.names, n)
			}
		}
	}
	d.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("removing the dataplane of E-VPN instance %s: %w", e.cfg.ExternalID, errors.Join(errs...))
	}
	e.log.Info("E-VPN linux dataplane removed")
	return nil
}

func (e *evi) teardown() []error {
	h := e.d.h
	var errs []error
	for _, p := range e.ports {
		for m := range p.macs {
			if err := ignoreNotFound(h.NeighDel(localFDB(p.index, m))); err != nil && !p.enslaved {
				errs = append(errs, fmt.Errorf("removing the static fdb entry %s on %q: %w", m, p.name, err))
			}
		}
		if err := e.releasePort(p); err != nil {
			errs = append(errs, err)
		}
	}
	clear(e.ports)
	if e.gateway != "" && e.gatewayEnslaved {
		if link, err := h.LinkByName(e.gateway); err == nil {
			if err := e.release(link.Attrs().Index, e.gateway); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Our devices are deleted in the background (teardown.go) unless
	// SyncTeardown is set; a VXLAN device in a linuxbr bridge goes at once
	// (it would forward the bridge's traffic to the instance's remotes).
	async := e.ownBridge && !e.d.opts.SyncTeardown
	if e.ownVXLAN && async {
		e.d.enqueueDying(dyingLink{name: e.vxName, index: e.vxIndex, kind: "vxlan", alias: e.alias, vni: e.cfg.VNI})
	} else if e.ownVXLAN {
		if err := e.deleteOwned(e.vxIndex, e.vxName); err != nil {
			errs = append(errs, err)
		}
	} else {
		for m, dst := range e.fdb.all {
			if err := ignoreNotFound(h.NeighDel(e.remoteFDB(m, dst))); err != nil {
				errs = append(errs, fmt.Errorf("removing fdb entry %s: %w", m, err))
			}
		}
		for f := range e.flood {
			if err := ignoreNotFound(h.NeighDel(e.remoteFDB(route.MAC{}, f))); err != nil {
				errs = append(errs, fmt.Errorf("removing flood entry %s: %w", f, err))
			}
		}
		for ip, m := range e.neigh.all {
			if err := ignoreNotFound(h.NeighDel(e.remoteNeigh(ip, m))); err != nil {
				errs = append(errs, fmt.Errorf("removing neighbour %s: %w", ip, err))
			}
		}
	}
	e.fdb = fdbTable{}
	clear(e.flood)
	e.neigh = neighTable{}
	if async {
		e.d.enqueueDying(dyingLink{name: e.brName, index: e.brIndex, kind: "bridge", alias: e.alias})
	} else if e.ownBridge {
		if err := e.deleteOwned(e.brIndex, e.brName); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// deleteOwned deletes an interface if it still carries our alias.
func (e *evi) deleteOwned(index int, name string) error {
	h := e.d.h
	link, err := h.LinkByIndex(index)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if link.Attrs().Alias != e.alias {
		e.log.Warn("not deleting an interface that is no longer ours", "interface", link.Attrs().Name, "alias", link.Attrs().Alias)
		return nil
	}
	if err := h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}
