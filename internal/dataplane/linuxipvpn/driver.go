// Package linuxipvpn is the IP VPN "linux" dataplane driver for kernels
// without VRF devices and kernel MPLS forwarding (reference dataplanes.md
// §0, §2): policy routing plus one collect_md VXLAN device, programmed
// over netlink (github.com/vishvananda/netlink), never by running ip.
//
// Upstream's linux driver (upstream-bagpipe.md §7.3) put each VRF in a VRF
// device and sent MPLS-over-Ethernet. Here:
//
//   - each VRF has a routing table (Options.TableBase + instance id) with
//     an "unreachable" default, a "local <gateway_ip>" route (the kernel
//     answers the VMs' ARP for the gateway), one "<ip>/32 dev <port>"
//     route and a permanent neighbour per local endpoint, and for a prefix
//     endpoint (advertise_subnet) "<prefix> via 169.254.x.y dev <port>
//     onlink" with a permanent neighbour 169.254.x.y → the endpoint's MAC
//     (x.y derived from the MAC, see neighAddr);
//   - "ip rule iif <port> lookup <table>" (pref 1000) makes traffic from a
//     plugged port use the VRF table, and the "local" table rule is moved
//     from pref 0 to 32765 so that VMs cannot reach the host's addresses;
//   - remote routes are "<prefix> encap ip id <label> dst <PE> via <PE> dev
//     bagpipe-vx-tx onlink metric <hash of prefix>": the route's label is
//     the VXLAN VNI (ECMP: one multipath next hop per PE, one member per
//     PE), and a permanent neighbour PE → 00:00:5e:00:43:64 (bagpipe's
//     GATEWAY_MAC) on bagpipe-vx-tx sets the inner destination MAC; a
//     0.0.0.0/0 route replaces the unreachable default until it goes;
//   - bagpipe-vx, the collect_md VXLAN device, has the MAC GATEWAY_MAC so
//     that it accepts what OVS bagpipe and other nodes send (dataplanes.md
//     §1e), and bagpipe-vx-tx is a macvlan on it with the MAC
//     02:00:5e:00:43:64: the receiving VXLAN driver drops frames whose
//     source MAC is its own MAC as loops, so we must not send from a
//     device whose MAC is GATEWAY_MAC (see TXMAC);
//   - received traffic is delivered by VNI (= the MPLS label of the
//     route) straight to the endpoint the label was allocated for, as
//     upstream's MPLS route "<label> via inet <ip> dev <port>" and the ovs
//     driver's encap-in flows do: "ip rule tun_id <label> lookup <label
//     table>" (pref 1000), the label table (Options.TableBase + TableSpan +
//     label, see Driver.LabelTable) holding only "default via <endpoint>
//     dev <port> onlink" (the endpoint address of a /32, or the link-local
//     neighAddr of a prefix endpoint: both have a permanent neighbour to
//     the endpoint's MAC). The VRF table is not consulted, so traffic
//     steered to a port by its label reaches it whatever its destination:
//     a service VM readvertising other VPNs' prefixes with its port's
//     label (readvertise, attract_traffic, reference §5.6–5.7) receives
//     them although its VRF does not route them. Labels are per MAC in a
//     VRF (reference §5.4): the endpoints of one MAC share a label, which
//     delivers to one of them (a /32 first, then the lowest prefix), all
//     resolving to the same MAC;
//   - "iif bagpipe-vx blackhole" (pref 1001) drops what arrives with a VNI
//     that is no local endpoint's label (a stale label, or the label of a
//     redirect VRF, which has no endpoint and advertises none), as the ovs
//     driver's encap-in table misses do, instead of letting the host's
//     local and main tables route it;
//   - a next hop that is this node (two VRFs of one node importing each
//     other's routes) goes "via 169.254.0.1 onlink" on bagpipe-vx-tx: the
//     packet is encapsulated to our own address and comes back through the
//     VXLAN socket to the tun_id rule of the other VRF's endpoint label;
//   - FlowSpec redirects are rules (pref 900) matching the VRF's ports
//     plus the classifier, looking up the redirect VRF's table, whose
//     default route (advertised by the attracting VRF) carries the service
//     VM port's label: its node delivers by that label. A redirect VRF has
//     no endpoint, hence no label and no tun_id rule. The fallback is not
//     supported (as upstream's non-OVS drivers).
//
// Ownership: both devices carry the alias "bagpipe-ipvpn"; rules carry
// FRA_PROTOCOL 19 (the protocol number upstream gave its routes) and our
// preferences; the tables from TableBase to TableBase+TableSpan-1 (VRF
// tables) and from TableBase+TableSpan to TableBase+TableSpan+LabelSpan-1
// (label tables) are ours entirely. A later run adopts what it finds (no
// flap: the routes stay in place while instances re-plug and re-apply)
// and removes what no instance claims when Options.AdoptGrace ends.
//
// Reverse-path filtering checks sources with a main-table lookup that the
// iif rules do not affect: with net.ipv4.conf.all.rp_filter = 1 VRF
// traffic is dropped (New logs a warning).
//
// Consistency: each VRF keeps its desired state; the driver periodically
// reconciles the kernel against it from one dump of rules and routes.
//
// Locking: VRFDataplane methods run on the instance's goroutine, the
// reconcile on the driver's. Each VRF has a mutex held for a whole
// operation; Driver.mu guards the driver's maps and may be taken while a
// VRF mutex is held, never the other way round.
package linuxipvpn

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// DriverName is the configured name of this driver.
const DriverName = "linux"

// Defaults and fixed names.
const (
	DefaultVXLANPort         = 4789
	DefaultTableBase         = 1000
	DefaultReconcileInterval = 30 * time.Second
	DefaultAdoptGrace        = 5 * time.Minute
	// TableSpan is the number of VRF tables from TableBase.
	TableSpan = 1 << 16
	// LabelSpan is the number of label tables, from TableBase+TableSpan:
	// one per possible local label (a 20-bit MPLS label, the range of the
	// VPN layer's label allocator).
	LabelSpan = 1 << 20
	// DeviceName is the collect_md VXLAN device.
	DeviceName = "bagpipe-vx"
	// TXDeviceName is the macvlan on DeviceName that remote routes use.
	TXDeviceName = "bagpipe-vx-tx"
	// DeviceAlias marks DeviceName and TXDeviceName as ours.
	DeviceAlias = "bagpipe-ipvpn"
)

// GatewayMAC is upstream bagpipe's GATEWAY_MAC: the MAC of our VXLAN
// device, so that it accepts the frames OVS bagpipe and other nodes send
// to it (dataplanes.md §1e), and the inner destination MAC we send.
var GatewayMAC = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x43, 0x64}

// TXMAC is the MAC of TXDeviceName: the inner source MAC of what we send.
// It must differ from GatewayMAC: the receiving VXLAN driver drops frames
// whose source MAC is its own device's MAC as loops (vxlan_set_mac), so
// sending from a device whose MAC is GatewayMAC to a device whose MAC is
// GatewayMAC never works. Routing through a macvlan of the VXLAN device
// keeps GatewayMAC on the receiving side and another source MAC on the
// sending side; the lwtunnel metadata survives the macvlan.
var TXMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x43, 0x64}

// Rule preferences and the rule/route protocol marking ownership.
const (
	prefClassifier = 900
	prefVRF        = 1000
	prefDrop       = 1001
	prefLocal      = 32765
	rtProto        = 19
)

const dumpRetries = 5

// maxTableBase is the largest TableBase: our tables must fit in the
// kernel's 31-bit table numbers.
const maxTableBase = 1<<31 - TableSpan - LabelSpan

// Options configures a Driver.
type Options struct {
	// LocalAddress is the VXLAN source address (dataplane_local_address):
	// next hops equal to it are this node (VRF to VRF on one node).
	LocalAddress netip.Addr
	// VXLANPort is the UDP port of the collect_md device ([DATAPLANE_
	// DRIVER_IPVPN] vxlan_dst_port); 0: DefaultVXLANPort. It must differ
	// from the E-VPN linux driver's when both run in one namespace.
	VXLANPort int
	// TableBase: a VRF uses table TableBase + instance id, a local label
	// table TableBase + TableSpan + label; 0: DefaultTableBase.
	TableBase int
	// NetNS is the network namespace: "" for the current one, a name under
	// /var/run/netns, or a path (contains a "/").
	NetNS string
	// ReconcileInterval: 0 DefaultReconcileInterval, negative: none.
	ReconcileInterval time.Duration
	// AdoptGrace is how long state left by an earlier run waits for its
	// instance; 0: DefaultAdoptGrace, negative: no grace.
	AdoptGrace time.Duration
	// Log is the logger; nil: slog.Default().
	Log *slog.Logger
}

// OptionsFromConfig reads vxlan_dst_port and table_base from the
// [DATAPLANE_DRIVER_IPVPN] options map into o.
func OptionsFromConfig(o Options, opts map[string]string) (Options, error) {
	if v, ok := opts["vxlan_dst_port"]; ok && v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return o, fmt.Errorf("vxlan_dst_port = %q: expected a port number from 1 to 65535", v)
		}
		o.VXLANPort = p
	}
	if v, ok := opts["table_base"]; ok && v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 256 || p > maxTableBase {
			return o, fmt.Errorf("table_base = %q: expected a table number from 256 to %d", v, maxTableBase)
		}
		o.TableBase = p
	}
	return o, nil
}

// Driver is the IP VPN linux dataplane driver. It implements
// dataplane.IPVPNDriver.
type Driver struct {
	opts  Options
	log   *slog.Logger
	h     *netlink.Handle
	raw   *rawConn
	start time.Time

	mu        sync.Mutex
	vrfs      map[int]*vrf // by table
	vxIndex   int
	peRefs    map[netip.Addr]int // remote PEs in use → routes using them
	inventory map[int]bool       // tables holding state of an earlier run
	graceOver bool
	closed    bool

	repairs atomic.Uint64

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ dataplane.IPVPNDriver = (*Driver)(nil)

// New opens the netlink sockets in the namespace, enables IPv4
// forwarding, creates (or adopts) the VXLAN device, moves the local-table
// rule after the VPN rules, adds the drop rule for unknown labels,
// inventories the state an earlier run left and starts the reconcile loop.
func New(opts Options) (*Driver, error) {
	d, err := open(opts)
	if err != nil {
		return nil, err
	}
	if err := d.init(); err != nil {
		d.closeSockets()
		return nil, err
	}
	d.wg.Add(1)
	go d.loop(len(d.inventory) > 0)
	return d, nil
}

// open validates opts and opens the sockets, touching no state.
func open(opts Options) (*Driver, error) {
	if opts.VXLANPort == 0 {
		opts.VXLANPort = DefaultVXLANPort
	}
	if opts.VXLANPort < 1 || opts.VXLANPort > 65535 {
		return nil, fmt.Errorf("linux IP VPN driver: VXLAN port %d out of range; set vxlan_dst_port to 1..65535", opts.VXLANPort)
	}
	if opts.TableBase == 0 {
		opts.TableBase = DefaultTableBase
	}
	if opts.TableBase < 256 || opts.TableBase > maxTableBase {
		return nil, fmt.Errorf("linux IP VPN driver: table base %d out of range 256..%d; set table_base in [DATAPLANE_DRIVER_IPVPN]", opts.TableBase, maxTableBase)
	}
	if opts.LocalAddress.IsValid() && !opts.LocalAddress.Unmap().Is4() {
		return nil, fmt.Errorf("linux IP VPN driver: dataplane_local_address %s is not IPv4 (VXLAN over IPv6 is not supported)", opts.LocalAddress)
	}
	opts.LocalAddress = opts.LocalAddress.Unmap()
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = DefaultReconcileInterval
	}
	if opts.AdoptGrace == 0 {
		opts.AdoptGrace = DefaultAdoptGrace
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	h, raw, err := openSockets(opts.NetNS)
	if err != nil {
		return nil, err
	}
	return &Driver{
		opts: opts, h: h, raw: raw, start: time.Now(),
		log:       opts.Log.With("component", "ipvpn-linux"),
		vrfs:      map[int]*vrf{},
		peRefs:    map[netip.Addr]int{},
		inventory: map[int]bool{},
		stop:      make(chan struct{}),
	}, nil
}

func (d *Driver) closeSockets() {
	d.h.Close()
	d.raw.close()
}

func (d *Driver) init() error {
	if err := writeSysctl(d.opts.NetNS, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if v, err := readSysctl(d.opts.NetNS, "net/ipv4/conf/all/rp_filter"); err == nil {
		if w := rpFilterWarning(v); w != "" {
			d.log.Warn(w)
		}
	}
	if err := d.ensureDevice(); err != nil {
		return err
	}
	if err := d.moveLocalRule(); err != nil {
		return err
	}
	if err := d.ensureDropRule(); err != nil {
		return err
	}
	tables, err := d.ownedTables()
	if err != nil {
		return err
	}
	for t := range tables {
		d.inventory[t] = true
	}
	if len(tables) > 0 {
		d.log.Info("routing state left by an earlier run, waiting for its instances", "tables", len(tables), "adopt_grace", d.opts.AdoptGrace.String())
	}
	return nil
}

// ours reports whether table t is in our range (VRF or label table).
func (d *Driver) ours(t int) bool {
	return t >= d.opts.TableBase && t < d.opts.TableBase+TableSpan+LabelSpan
}

// isLabelTable reports whether table t is a label table.
func (d *Driver) isLabelTable(t int) bool {
	return t >= d.opts.TableBase+TableSpan && t < d.opts.TableBase+TableSpan+LabelSpan
}

// ownedRule reports whether a dumped rule is one of ours (not the moved
// local rule).
func (d *Driver) ownedRule(r kernelRule) bool {
	return r.Protocol == rtProto && (r.Pref == prefVRF || r.Pref == prefClassifier) && d.ours(r.Table)
}

// ownedTables lists our tables holding routes or targeted by our rules.
func (d *Driver) ownedTables() (map[int]bool, error) {
	out := map[int]bool{}
	routes, err := d.raw.routes(d.ours)
	if err != nil {
		return nil, fmt.Errorf("linux IP VPN driver: listing routes: %w", err)
	}
	for _, r := range routes {
		out[r.Table] = true
	}
	rules, err := d.raw.rules()
	if err != nil {
		return nil, fmt.Errorf("linux IP VPN driver: listing rules: %w", err)
	}
	for _, r := range rules {
		if d.ownedRule(r) {
			out[r.Table] = true
		}
	}
	return out, nil
}

// Name implements dataplane.Driver.
func (d *Driver) Name() string { return DriverName }

// Encaps implements dataplane.Driver: VXLAN only (no kernel MPLS here).
func (d *Driver) Encaps() []route.Encap { return []route.Encap{route.EncapVXLAN} }

// ECMP implements dataplane.Driver: multipath routes with one encap-ip
// next hop per PE.
func (d *Driver) ECMP() bool { return true }

// Directions implements dataplane.IPVPNDriver.
func (d *Driver) Directions() []dataplane.Direction {
	return []dataplane.Direction{dataplane.DirectionBoth, dataplane.DirectionToPort, dataplane.DirectionFromPort}
}

// Handle returns the driver's netlink handle (tests).
func (d *Driver) Handle() *netlink.Handle { return d.h }

// Table returns the routing table of an instance id.
func (d *Driver) Table(instanceID uint32) int { return d.opts.TableBase + int(instanceID) }

// LabelTable returns the routing table that delivers the traffic received
// with a local label (label < LabelSpan) to its endpoint.
func (d *Driver) LabelTable(label uint32) int {
	return d.opts.TableBase + TableSpan + int(label)
}

// localGateway is the gateway of routes whose next hop is this node: a
// local address is refused as a gateway ("invalid gateway"), so those
// routes go "via 169.254.0.1 onlink" on TXDeviceName, with a permanent
// neighbour to GatewayMAC there, and the encapsulated packet loops back
// through the VXLAN socket to the other VRF's tun_id rule.
var localGateway = netip.AddrFrom4([4]byte{169, 254, 0, 1})

// gateway is the route gateway for next hop pe.
func (d *Driver) gateway(pe netip.Addr) netip.Addr {
	if pe == d.opts.LocalAddress {
		return localGateway
	}
	return pe
}

// peRef counts a route's use of a gateway (a remote PE or localGateway); the first use installs the
// permanent neighbour PE → GatewayMAC on TXDeviceName, the last
// release removes it.
func (d *Driver) peRef(pe netip.Addr, delta int) error {
	d.mu.Lock()
	n := d.peRefs[pe] + delta
	if n <= 0 {
		delete(d.peRefs, pe)
	} else {
		d.peRefs[pe] = n
	}
	vx := d.vxIndex
	d.mu.Unlock()
	switch {
	case delta > 0 && n == delta:
		return d.setPENeigh(vx, pe)
	case n <= 0:
		err := d.h.NeighDel(&netlink.Neigh{LinkIndex: vx, Family: netlink.FAMILY_V4, IP: pe.AsSlice()})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("removing the neighbour %s on %s: %w", pe, TXDeviceName, err)
		}
	}
	return nil
}

func (d *Driver) setPENeigh(vx int, pe netip.Addr) error {
	err := d.h.NeighSet(&netlink.Neigh{LinkIndex: vx, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: pe.AsSlice(), HardwareAddr: GatewayMAC})
	if err != nil {
		return fmt.Errorf("adding the neighbour %s → %s on %s: %w", pe, GatewayMAC, TXDeviceName, err)
	}
	return nil
}

// ResetState implements dataplane.Driver: it removes our rules, routes and
// VXLAN neighbours that no live instance claims, except, while
// Options.AdoptGrace runs, those of the tables found at New.
func (d *Driver) ResetState() error { return d.removeUnclaimed(false) }

// Cleanup removes every object a linux IP VPN driver owns in a network
// namespace ("" for the current one): our rules (the drop rule included),
// routes, VXLAN device and the moved local-table rule
// (bagpipe-bgp-cleanup).
func Cleanup(ns string) error {
	d, err := open(Options{NetNS: ns, AdoptGrace: -1, ReconcileInterval: -1})
	if err != nil {
		return err
	}
	defer d.closeSockets()
	d.closed = true
	errs := []error{d.removeUnclaimed(true)}
	for _, name := range []string{TXDeviceName, DeviceName} {
		if l, err := d.h.LinkByName(name); err == nil && l.Attrs().Alias == DeviceAlias {
			if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("deleting %s: %w", name, err))
			}
		}
	}
	errs = append(errs, d.restoreLocalRule(), d.removeDropRule())
	return errors.Join(errs...)
}

// loop runs the periodic reconcile and ends the adoption grace.
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
		if err := d.EndGrace(); err != nil {
			d.log.Error("removing unclaimed state after the adoption grace", "err", err)
		}
	})
}

// Repairs is the number of kernel objects the reconcile re-added.
func (d *Driver) Repairs() uint64 { return d.repairs.Load() }

// Info implements dataplane.Driver.
func (d *Driver) Info() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	tables := make([]int, 0, len(d.vrfs))
	for t := range d.vrfs {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	return map[string]any{
		"name":              DriverName,
		"local_address":     addrString(d.opts.LocalAddress),
		"vxlan_dst_port":    d.opts.VXLANPort,
		"device":            DeviceName,
		"tx_device":         TXDeviceName,
		"table_base":        d.opts.TableBase,
		"label_table_base":  d.opts.TableBase + TableSpan,
		"tables":            tables,
		"remote_pes":        len(d.peRefs),
		"awaiting_adoption": len(d.inventory),
		"repairs":           d.repairs.Load(),
	}
}

// Close implements dataplane.Driver: it stops the reconcile loop and
// closes the netlink sockets; the dataplane state stays (a later run
// adopts it).
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
	for _, v := range d.liveVRFs() {
		v.mu.Lock()
		v.detached = true
		v.mu.Unlock()
	}
	d.closeSockets()
	return nil
}

func isNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ESRCH) || errors.As(err, &lnf)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
