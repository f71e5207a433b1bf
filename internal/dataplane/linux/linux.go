// Package linux is the E-VPN "linux" dataplane driver (reference §7.5):
// one Linux bridge and one kernel VXLAN device per E-VPN instance,
// programmed over netlink (github.com/vishvananda/netlink), never by
// running ip/bridge/brctl.
//
// Per EVI the driver creates a bridge "evpn-<h>" and a VXLAN device
// "vxln-<h>" (h: 10 base32 characters of the SHA-256 of the instance's
// external id, so names fit IFNAMSIZ and never collide the way upstream's
// 8-character truncation did, reference §11), or uses an existing bridge
// given as linuxbr. Remote MACs are "self permanent" fdb entries on the
// VXLAN device with the remote VTEP as destination, BUM traffic is
// replicated to every VTEP of the all-zero fdb entry, and remote IPs are
// permanent neighbours on the VXLAN device, which answers ARP for them
// itself ("proxy").
//
// Ownership: every interface the driver creates carries the interface
// alias "bagpipe-evpn:<external id>:<vni>". A later run recognises them
// and adopts those of the instances that come back (no flap, traffic keeps
// flowing), recreates those whose configuration changed, and removes the
// ones nobody claims within Options.AdoptGrace. Interfaces without that
// alias are never modified or deleted.
//
// Consistency: the driver keeps, per EVI, the desired state (what Apply,
// Plug and SetGatewayPort asked for) and periodically reconciles the
// kernel against it (field notes §A4): missing entries are re-added,
// permanent entries nobody asked for are removed from our VXLAN device,
// and deleted devices are recreated. The desired state is compact
// (state.go); the reconcile streams one dump of the fdb and neighbour
// tables per round without holding any EVI lock, and leaves alone the
// entries an EVI changed meanwhile (reconcile.go).
//
// Speed: Apply sends the netlink requests of a batch of changes in one
// sendmsg (batch.go); closing an EVI releases its ports at once and leaves
// the deletion of its bridge and VXLAN device, 20-50 ms of RTNL-held
// grace periods, to a background reaper (teardown.go); our devices get no
// IPv6 address (ipv6.go).
//
// Locking: EVIDataplane methods are called from the instance's goroutine;
// the periodic reconcile runs on the driver's goroutine. Each EVI has a
// mutex that both take for the whole of an operation (the reconcile's
// dump excepted), so a reconcile never interleaves with an Apply of the
// same EVI. Driver.mu guards the driver's maps (live EVIs, inventory of
// leftovers); it is never held while an EVI mutex is taken, and an EVI
// never takes Driver.mu while holding its own mutex, so there is no
// lock-order cycle; the reaper's and the batch socket's mutexes are taken
// last. The one netlink.Handle is shared: its sockets serialise requests
// internally.
package linux

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/netnsref"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// DriverName is the configured name of this driver.
const DriverName = "linux"

// Defaults.
const (
	DefaultVXLANPort         = 4789
	DefaultReconcileInterval = 30 * time.Second
	DefaultAdoptGrace        = 5 * time.Minute
)

// aliasPrefix starts the interface alias marking the interfaces we own.
const aliasPrefix = "bagpipe-evpn:"

// Interface name prefixes; each is followed by hashLen characters.
const (
	bridgePrefix = "evpn-"
	vxlanPrefix  = "vxln-"
	hashLen      = 10
	ifNameMax    = unix.IFNAMSIZ - 1
	// ifAliasMax is IFALIASZ - 1: longer aliases are refused by the kernel.
	ifAliasMax = 255
)

// dumpRetries bounds the retries of a netlink dump interrupted by a
// concurrent change (NLM_F_DUMP_INTR), as containernetworking's netlinksafe.
const dumpRetries = 5

// Options configures a Driver.
type Options struct {
	// LocalAddress is the VTEP address (dataplane_local_address), used for
	// EVIs whose EVIConfig.LocalAddress is not set.
	LocalAddress netip.Addr
	// VXLANPort is the VXLAN UDP destination port (vxlan_dst_port);
	// 0: DefaultVXLANPort.
	VXLANPort int
	// NetNS is the network namespace to program: "" for the current one,
	// a name under /var/run/netns, or a path (contains a "/").
	NetNS string
	// ReconcileInterval is the period of the kernel reconcile; 0:
	// DefaultReconcileInterval, negative: no periodic reconcile.
	ReconcileInterval time.Duration
	// AdoptGrace is how long interfaces left by an earlier run wait for an
	// instance to claim them before they are removed; 0: DefaultAdoptGrace,
	// negative: no grace (ResetState removes every unclaimed one).
	AdoptGrace time.Duration
	// SyncTeardown makes EVIDataplane.Close delete the instance's bridge
	// and VXLAN device before it returns, instead of leaving them to the
	// background reaper (see teardown.go): 20-50 ms per instance.
	SyncTeardown bool
	// Log is the logger; nil: slog.Default().
	Log *slog.Logger
}

// OptionsFromConfig fills VXLANPort from the [DATAPLANE_DRIVER_EVPN]
// options map (vxlan_dst_port) into o.
func OptionsFromConfig(o Options, opts map[string]string) (Options, error) {
	if v, ok := opts["vxlan_dst_port"]; ok && v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return o, fmt.Errorf("vxlan_dst_port = %q: expected a port number from 1 to 65535", v)
		}
		o.VXLANPort = p
	}
	return o, nil
}

// leftover is an owned interface found at New.
type leftover struct {
	name  string
	index int
	kind  string // "bridge", "vxlan", …
	owner string // external id part of the alias
	vni   uint32
}

// Driver is the E-VPN linux dataplane driver. It implements
// dataplane.EVPNDriver.
type Driver struct {
	opts  Options
	log   *slog.Logger
	h     *netlink.Handle
	start time.Time

	mu        sync.Mutex
	evis      map[string]*evi      // by external id
	names     map[string]string    // interface name -> external id of live EVIs
	inventory map[string]*leftover // owned interfaces found at New, by name
	closed    bool

	repairs atomic.Uint64

	dumpMu   sync.Mutex        // one reconcile dump at a time on dumpSock
	dumpSock *nl.NetlinkSocket // the reconcile's dumps stream on it
	batch    *batcher          // Apply's batched requests (batch.go)
	reap     reaper            // interfaces of closed EVIs waiting for deletion

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ dataplane.EVPNDriver = (*Driver)(nil)

// New opens one netlink handle in the namespace, inventories the
// interfaces an earlier run left, and starts the reconcile loop.
func New(opts Options) (*Driver, error) {
	if opts.VXLANPort == 0 {
		opts.VXLANPort = DefaultVXLANPort
	}
	if opts.VXLANPort < 1 || opts.VXLANPort > 65535 {
		return nil, fmt.Errorf("linux E-VPN driver: VXLAN port %d out of range; set vxlan_dst_port to 1..65535", opts.VXLANPort)
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = DefaultReconcileInterval
	}
	if opts.AdoptGrace == 0 {
		opts.AdoptGrace = DefaultAdoptGrace
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	h, err := openHandle(opts.NetNS)
	if err != nil {
		return nil, err
	}
	dumpSock, err := openNetlinkSocket(opts.NetNS)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("linux E-VPN driver: opening the reconcile's netlink socket: %w", err)
	}
	batch, err := openBatcher(opts.NetNS)
	if err != nil {
		dumpSock.Close()
		h.Close()
		return nil, fmt.Errorf("linux E-VPN driver: %w", err)
	}
	d := &Driver{
		opts: opts, h: h, start: time.Now(), dumpSock: dumpSock, batch: batch,
		log:       opts.Log.With("component", "evpn-linux"),
		evis:      map[string]*evi{},
		names:     map[string]string{},
		inventory: map[string]*leftover{},
		stop:      make(chan struct{}),
	}
	owned, err := d.ownedLinks()
	if err != nil {
		batch.sock.Close()
		dumpSock.Close()
		h.Close()
		return nil, err
	}
	for _, l := range owned {
		d.inventory[l.name] = l
	}
	if len(owned) > 0 {
		d.log.Info("interfaces left by an earlier run, waiting for their instances", "count", len(owned), "adopt_grace", opts.AdoptGrace.String())
	}
	d.reap.wake = make(chan struct{}, 1)
	d.wg.Add(2)
	go d.loop(len(owned) > 0)
	go d.reapLoop()
	return d, nil
}

// openHandle opens the netlink handle of a namespace.
func openHandle(ns string) (*netlink.Handle, error) {
	if ns == "" {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return nil, fmt.Errorf("linux E-VPN driver: opening a netlink socket: %w (the driver needs CAP_NET_ADMIN)", err)
		}
		return h, setTimeout(h)
	}
	nsh, err := netnsref.Open(ns)
	if err != nil {
		return nil, fmt.Errorf("linux E-VPN driver: opening network namespace %q: %w (create it first, or leave the namespace empty)", ns, err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("linux E-VPN driver: opening a netlink socket in namespace %q: %w (the driver needs CAP_NET_ADMIN and CAP_SYS_ADMIN)", ns, err)
	}
	return h, setTimeout(h)
}

func setTimeout(h *netlink.Handle) error {
	if err := h.SetSocketTimeout(30 * time.Second); err != nil {
		h.Close()
		return fmt.Errorf("linux E-VPN driver: setting the netlink socket timeout: %w", err)
	}
	return nil
}

// Name implements dataplane.Driver.
func (d *Driver) Name() string { return DriverName }

// Encaps implements dataplane.Driver: VXLAN only.
func (d *Driver) Encaps() []route.Encap { return []route.Encap{route.EncapVXLAN} }

// ECMP implements dataplane.Driver: one destination per MAC.
func (d *Driver) ECMP() bool { return false }

// Handle returns the driver's netlink handle (tests).
func (d *Driver) Handle() *netlink.Handle { return d.h }

// ownedLinks lists the interfaces carrying our alias.
func (d *Driver) ownedLinks() ([]*leftover, error) {
	links, err := dumpRetry(d.h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("linux E-VPN driver: listing interfaces: %w", err)
	}
	var out []*leftover
	for _, l := range links {
		a := l.Attrs()
		owner, vni, ok := parseAlias(a.Alias)
		if !ok {
			continue
		}
		out = append(out, &leftover{name: a.Name, index: a.Index, kind: l.Type(), owner: owner, vni: vni})
	}
	return out, nil
}

// ResetState implements dataplane.Driver: it removes every owned interface
// (alias "bagpipe-evpn:…") that no live instance claims, except, while
// Options.AdoptGrace runs, the ones found at New (they are kept for their
// instance to adopt, and removed when the grace ends if none does).
// Interfaces without our alias are never touched.
func (d *Driver) ResetState() error {
	return d.removeUnclaimed(false)
}

// removeUnclaimed deletes owned interfaces no live EVI uses; graceOver
// also deletes the ones found at New.
func (d *Driver) removeUnclaimed(graceOver bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	keepInventory := !graceOver && d.opts.AdoptGrace > 0 && time.Since(d.start) < d.opts.AdoptGrace
	owned, err := d.ownedLinks()
	if err != nil {
		return err
	}
	// VXLAN devices first, then the bridges they were in.
	slices.SortStableFunc(owned, func(a, b *leftover) int {
		if (a.kind == "bridge") == (b.kind == "bridge") {
			return 0
		}
		if a.kind == "bridge" {
			return 1
		}
		return -1
	})
	var errs []error
	for _, l := range owned {
		if _, live := d.names[l.name]; live {
			continue
		}
		if _, inv := d.inventory[l.name]; inv && keepInventory {
			continue
		}
		link, err := d.h.LinkByIndex(l.index)
		if err != nil {
			continue // gone meanwhile
		}
		if owner, _, ok := parseAlias(link.Attrs().Alias); !ok || owner != l.owner {
			continue
		}
		if err := d.h.LinkDel(link); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting leftover interface %s: %w", l.name, err))
			continue
		}
		delete(d.inventory, l.name)
		d.log.Info("removed an interface left by an earlier run", "interface", l.name, "instance", l.owner, "vni", l.vni)
	}
	if graceOver {
		clear(d.inventory)
	}
	return errors.Join(errs...)
}

// Cleanup removes every interface a linux E-VPN driver owns in a network
// namespace ("" for the current one): bagpipe-bgp-cleanup.
func Cleanup(netns string) error {
	d, err := New(Options{NetNS: netns, AdoptGrace: -1, ReconcileInterval: -1})
	if err != nil {
		return err
	}
	defer d.Close()
	return d.ResetState()
}

// loop runs the periodic reconcile and ends the adoption grace (if there
// were leftovers at New).
func (d *Driver) loop(leftovers bool) {
	defer d.wg.Done()
	grace := d.opts.AdoptGrace
	if !leftovers {
		grace = 0
	}
	dataplane.Maintain(d.stop, d.opts.ReconcileInterval, grace, func() {
		if err := d.Reconcile(); err != nil {
			d.log.Warn("reconcile", "err", err)
		}
	}, func() {
		if err := d.removeUnclaimed(true); err != nil {
			d.log.Error("removing unclaimed interfaces after the adoption grace", "err", err)
		}
	})
}

// Reconcile reconciles every live EVI with the kernel now, from one dump
// of the fdb and neighbour tables taken without holding any EVI lock (the
// entries an EVI changes during the dump are left alone this round; an EVI
// that changed more than touchLimit of them skips its entry checks).
func (d *Driver) Reconcile() error {
	d.mu.Lock()
	list := make([]*evi, 0, len(d.evis))
	for _, e := range d.evis {
		list = append(list, e)
	}
	d.mu.Unlock()
	if len(list) == 0 {
		return nil
	}
	keep := map[int]bool{}
	for _, e := range list {
		e.mu.Lock()
		e.changes.start()
		for i := range e.interfaces() {
			keep[i] = true
		}
		e.mu.Unlock()
	}
	snap, err := d.takeSnapshot(func(i int) bool { return keep[i] })
	if err != nil {
		// Most likely a dump interrupted again and again by changes: the
		// instances are busy programming; the next round checks them.
		for _, e := range list {
			e.mu.Lock()
			e.changes = touched{}
			e.mu.Unlock()
		}
		return fmt.Errorf("reconcile skipped: %w", err)
	}
	var errs []error
	for _, e := range list {
		if err := e.reconcile(snap); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Info implements dataplane.Driver.
func (d *Driver) Info() map[string]any {
	owned, err := d.ownedLinks()
	var names []string
	for _, l := range owned {
		names = append(names, l.name)
	}
	slices.Sort(names)
	info := map[string]any{
		"name":           DriverName,
		"local_address":  addrString(d.opts.LocalAddress),
		"vxlan_dst_port": d.opts.VXLANPort,
		"owned_interfaces": func() any {
			if err != nil {
				return err.Error()
			}
			return names
		}(),
		"repairs":          d.repairs.Load(),
		"pending_teardown": d.pendingTeardown(),
	}
	d.mu.Lock()
	info["instances"] = len(d.evis)
	info["awaiting_adoption"] = len(d.inventory)
	d.mu.Unlock()
	return info
}

// Close implements dataplane.Driver: it stops the reconcile loop, deletes
// the interfaces of closed instances still waiting for the reaper (for at
// most reapDrainMax) and closes the netlink handle; the dataplane state of
// live instances stays in place (a later run adopts it).
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	close(d.stop)
	d.wg.Wait()
	d.mu.Lock()
	list := make([]*evi, 0, len(d.evis))
	for _, e := range d.evis {
		list = append(list, e)
	}
	d.mu.Unlock()
	for _, e := range list {
		e.mu.Lock()
		e.detached = true // no more netlink use: the handle goes away
		e.mu.Unlock()
	}
	d.dumpSock.Close()
	d.batch.sock.Close()
	d.h.Close()
	return nil
}

// ifNames returns the bridge and VXLAN interface names of an instance.
func ifNames(externalID string) (bridge, vxlan string) {
	sum := sha256.Sum256([]byte(externalID))
	h := nameEncoding.EncodeToString(sum[:])[:hashLen]
	return bridgePrefix + h, vxlanPrefix + h
}

var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// aliasOf is the ownership alias of an instance's interfaces. An external
// id too long for the alias is replaced by "#" and its SHA-256.
func aliasOf(externalID string, vni uint32) string {
	owner := externalID
	if len(aliasPrefix)+len(owner)+12 > ifAliasMax || strings.HasPrefix(owner, "#") {
		sum := sha256.Sum256([]byte(externalID))
		owner = fmt.Sprintf("#%x", sum)
	}
	return aliasPrefix + owner + ":" + strconv.FormatUint(uint64(vni), 10)
}

// ownerOf is the owner part of aliasOf.
func ownerOf(externalID string) string {
	o, _, _ := parseAlias(aliasOf(externalID, 0))
	return o
}

// parseAlias splits an ownership alias; ok is false for interfaces that
// are not ours.
func parseAlias(alias string) (owner string, vni uint32, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasPrefix)
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", 0, false
	}
	v, err := strconv.ParseUint(rest[i+1:], 10, 32)
	if err != nil {
		return "", 0, false
	}
	return rest[:i], uint32(v), true
}

// dumpRetry runs a netlink dump again when the kernel reports it was
// interrupted by a concurrent change (NLM_F_DUMP_INTR; netlink v1.3 returns
// the partial data with ErrDumpInterrupted). After dumpRetries attempts the
// error is returned: callers must not act on an inconsistent dump.
func dumpRetry[T any](f func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpRetries {
		var r []T
		r, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return r, err
		}
	}
	return nil, fmt.Errorf("netlink dump interrupted %d times in a row: %w", dumpRetries, err)
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.As(err, &lnf)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
