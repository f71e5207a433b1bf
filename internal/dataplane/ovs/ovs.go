// Package ovs is the IP VPN "ovs" dataplane driver (reference §7.2):
// MPLS-over-GRE, bare MPLS or VXLAN through an Open vSwitch bridge,
// programmed with the flows, cookies, tables and priorities of upstream
// bagpipe's mpls_ovs_dataplane, so it interoperates with upstream nodes.
// It works with the userspace datapath (datapath_type=netdev), which is
// what runs where no openvswitch kernel module exists.
//
// Tables (input_table, ovs_table_id_start):
//
//	input (0)    in_port=<VM port>[,dl_vlan] ip/arp → [strip_vlan], reg2:=in_port, in_port:=0,
//	             reg0:=VRF id, resubmit VRF table; anything else from that port → drop (0x8FFF)
//	             in_port=<GRE or MPLS port>,mpls and in_port=<vxlan> → resubmit encap-in
//	encap-in (1) mpls,mpls_label=L,mpls_bos=1 → pop_mpls, [push vlan], GW MAC, VM MAC, output VM port
//	             in_port=<vxlan>,tun_id=L → the same without pop_mpls
//	VRF (2)      ip,reg0=V,nw_dst=P (priority 0x9000-(128-len)) → [dec_ttl], group:G (select group,
//	             one bucket per ECMP next hop, bucket id from the route's consistent hash sort order)
//	             ARP responder, FlowSpec classifier redirects (0x9000), fallback (0x8F00)
//
// Differences from upstream, none visible on the wire: dec_ttl sits in the
// prefix flow rather than in each bucket (OVS 3.1 ignores it in a bucket
// before push_mpls); the ARP responder answers on the asking port (reg2)
// rather than on the VRF's first port; a plugged port's non-IPv4/ARP
// traffic is dropped rather than left to the bridge's NORMAL flow, which
// leaks it (IPv6 for instance) to other VRFs' ports.
//
// Every flow of a VRF carries cookie = VRF id, so a VRF's state is removed
// by cookie. Flow and group changes of one call go to OVS as one atomic
// OpenFlow 1.5 bundle (`ovs-ofctl bundle BRIDGE -`): a batch of 10,000
// routes is one process, and a failed batch leaves OVS and the driver's
// state as they were. Ports and bridges are handled with ovs-vsctl. The
// driver keeps what it programmed, so Resync (or Watch) re-programs OVS
// after ovs-vswitchd restarted and lost its flows.
package ovs

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// DriverName is the configured name of this driver.
const DriverName = "ovs"

// VXLANPort is the name of the VXLAN tunnel port (upstream VXLAN_TUNNEL).
const VXLANPort = "vxlan"

// Options configures the driver. The zero values of the option fields are
// upstream's defaults (reference §3.1).
type Options struct {
	// LocalAddress is dataplane_local_address: tunnel source and the next
	// hop that designates this node. Required, IPv4.
	LocalAddress netip.Addr
	// Bridge is ovs_bridge; "": "br-mpls". It must exist.
	Bridge string
	// DB is the ovsdb-server remote for ovs-vsctl ("unix:/path/db.sock"),
	// "" for the default.
	DB string
	// RunDir is the OVS run directory ovs-ofctl finds BRIDGE.mgmt in
	// (OVS_RUNDIR), "" for the default.
	RunDir string
	// InputTable is input_table; TableStart is ovs_table_id_start
	// (encap-in table; the VRF table is TableStart+1); TableStart 0 means 1.
	InputTable, TableStart int
	// MPLSInterface and MPLSOverGRE ("auto", "True", "False"; "" is auto)
	// select MPLS-over-GRE or bare MPLS, as upstream does.
	MPLSInterface, MPLSOverGRE string
	// GRETunnel is gre_tunnel; "": "mpls_gre". GRETunnelOptions are its
	// extra k=v interface options (packet_type=legacy_l3 gives RFC 4023
	// MPLS/GRE instead of MPLS/Ethernet/GRE).
	GRETunnel        string
	GRETunnelOptions []string
	// ProxyARP, ARPResponder and VXLANEncap are the boolean options.
	ProxyARP, ARPResponder, VXLANEncap bool
	// HashMethod ("dp_hash" by default, or "hash"), HashMethodParam and
	// HashFields configure the ECMP select groups.
	HashMethod      string
	HashMethodParam uint64
	HashFields      []string
	// NetNS is the network namespace (name) the OVS bridge's IP interface
	// lives in, used only to resolve remote PE MACs for bare MPLS; "": the
	// current one.
	NetNS string
	// ResolveMAC returns the MAC of a remote PE for bare MPLS; nil: ping it
	// through the bridge and read the kernel neighbour table.
	ResolveMAC func(netip.Addr) (route.MAC, error)
	// Timeout bounds every OVS command; 0: 30 s.
	Timeout time.Duration
	// Log is the logger; nil: slog.Default().
	Log *slog.Logger
}

// OptionsFromConfig builds Options from the [DATAPLANE_DRIVER_IPVPN]
// options map (as internal/config normalises it) and the dataplane local
// address.
func OptionsFromConfig(opts map[string]string, local netip.Addr) (Options, error) {
	o := Options{
		LocalAddress: local, Bridge: opts["ovs_bridge"], MPLSInterface: opts["mpls_interface"],
		MPLSOverGRE: opts["mpls_over_gre"], GRETunnel: opts["gre_tunnel"],
		ProxyARP: opts["proxy_arp"] == "true", ARPResponder: opts["arp_responder"] == "true",
		VXLANEncap: opts["vxlan_encap"] == "true", HashMethod: opts["hash_method"],
		GRETunnelOptions: splitList(opts["gre_tunnel_options"]), HashFields: splitList(opts["hash_fields"]),
	}
	var err error
	if o.InputTable, err = intOpt(opts, "input_table", 0); err != nil {
		return o, err
	}
	if o.TableStart, err = intOpt(opts, "ovs_table_id_start", 1); err != nil {
		return o, err
	}
	if v := opts["hash_method_param"]; v != "" {
		if o.HashMethodParam, err = strconv.ParseUint(v, 10, 64); err != nil {
			return o, fmt.Errorf("ovs driver: hash_method_param %q: %w; use 0..2^64-1", v, err)
		}
	}
	return o, nil
}

func intOpt(opts map[string]string, name string, def int) (int, error) {
	v := opts[name]
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 254 {
		return 0, fmt.Errorf("ovs driver: %s %q is not a table number 0..254", name, v)
	}
	return n, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Driver is the IP VPN OVS driver. Its methods and those of its VRFs may
// be called from several goroutines (one per VRF); mu guards the shared
// state (port cache, group ids, initialisation).
type Driver struct {
	opts              Options
	r                 *runner
	log               *slog.Logger
	inTable, encapIn  int
	vrfTable          int
	useGRE            bool
	mplsIfMAC         string // bare MPLS: source MAC on the MPLS interface
	mplsIfPort        int    // bare MPLS: OpenFlow port of mpls_interface
	version           string
	mu                sync.Mutex
	initialised       bool
	mplsInPort        int // GRE port or mpls_interface
	vxlanPort         int
	ofports           map[string]int
	nextGroup         uint32
	freeGroups        []uint32
	vrfs              map[uint32]*VRF
	macs              map[netip.Addr]route.MAC // bare MPLS: remote PE MACs
	resolveMACDefault func(netip.Addr) (route.MAC, error)
}

var _ dataplane.IPVPNDriver = (*Driver)(nil)

// New checks the OVS tools and the bridge, decides between MPLS-over-GRE
// and bare MPLS as upstream does, and returns the driver. Tunnel ports and
// the input-table tunnel flows are created by the first NewVRF (after
// ResetState).
func New(opts Options) (*Driver, error) {
	if opts.Bridge == "" {
		opts.Bridge = "br-mpls"
	}
	if opts.TableStart == 0 {
		opts.TableStart = 1
	}
	if opts.GRETunnel == "" {
		opts.GRETunnel = "mpls_gre"
	}
	if opts.HashMethod == "" {
		opts.HashMethod = "dp_hash"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if !opts.LocalAddress.Is4() {
		return nil, fmt.Errorf("ovs driver: local address %q must be IPv4; set dataplane_local_address", opts.LocalAddress)
	}
	if opts.HashMethod != "dp_hash" && opts.HashMethod != "hash" {
		return nil, fmt.Errorf("ovs driver: hash_method %q: use dp_hash or hash", opts.HashMethod)
	}
	if opts.TableStart == opts.InputTable {
		return nil, fmt.Errorf("ovs driver: invalid ovs_table_id_start (%d): can't use tables same as input table (%d)", opts.TableStart, opts.InputTable)
	}
	if opts.InputTable == opts.TableStart+1 {
		return nil, fmt.Errorf("ovs driver: input_table %d is the VRF table (ovs_table_id_start+1); choose other tables", opts.InputTable)
	}
	d := &Driver{
		opts: opts, log: opts.Log.With("component", "ipvpn-ovs", "bridge", opts.Bridge),
		inTable: opts.InputTable, encapIn: opts.TableStart, vrfTable: opts.TableStart + 1,
		ofports: map[string]int{}, nextGroup: 1, vrfs: map[uint32]*VRF{},
	}
	d.resolveMACDefault = d.resolveMACByNeighbour
	for _, tool := range []string{"ovs-vsctl", "ovs-ofctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("ovs driver: %s not found in PATH: install openvswitch-switch: %w", tool, err)
		}
	}
	d.r = &runner{vsctl: "ovs-vsctl", ofctl: "ovs-ofctl", db: opts.DB, runDir: opts.RunDir, bridge: opts.Bridge, timeout: opts.Timeout}
	if err := d.decideEncap(); err != nil {
		return nil, err
	}
	if out, err := d.r.run("", "ovs-ofctl", "-V"); err == nil {
		if f := strings.Fields(strings.SplitN(out, "\n", 2)[0]); len(f) > 0 {
			d.version = f[len(f)-1]
		}
	}
	if !opts.VXLANEncap && versionBelow(d.version, 2, 8) {
		d.log.Warn("MPLS over GRE needs Open vSwitch 2.8 or later", "ovs_version", d.version)
	}
	if _, err := d.r.vsctlRun("br-exists", opts.Bridge); err != nil {
		if exitCode(err) == 2 {
			return nil, fmt.Errorf("ovs driver: OVS bridge '%s' doesn't exist; create it (ovs-vsctl add-br %s -- set bridge %s datapath_type=netdev) or set ovs_bridge", opts.Bridge, opts.Bridge, opts.Bridge)
		}
		return nil, fmt.Errorf("ovs driver: checking bridge %q: %w", opts.Bridge, err)
	}
	// Select groups with selection_method need OpenFlow 1.5; bundles 1.4.
	if _, err := d.r.vsctlRun("set", "bridge", opts.Bridge, "protocols=OpenFlow10,OpenFlow12,OpenFlow13,OpenFlow14,OpenFlow15"); err != nil {
		return nil, fmt.Errorf("ovs driver: enabling OpenFlow 1.0-1.5 on %q: %w", opts.Bridge, err)
	}
	if !d.useGRE {
		if err := d.checkMPLSInterface(); err != nil {
			return nil, err
		}
	}
	d.log.Info("OVS IP VPN driver ready", "ovs_version", d.version, "gre", d.useGRE, "vxlan", opts.VXLANEncap)
	return d, nil
}

// decideEncap applies upstream's mpls_interface / mpls_over_gre rules
// (reference §3.1; any mpls_over_gre other than "auto" forces GRE, an
// upstream quirk kept for compatibility).
func (d *Driver) decideEncap() error {
	o := &d.opts
	auto := o.MPLSOverGRE == "" || o.MPLSOverGRE == "auto"
	d.useGRE = !auto || o.MPLSInterface == "" || strings.Contains(o.MPLSInterface, "gre")
	if !d.useGRE {
		return nil
	}
	if o.MPLSInterface != "" && !strings.Contains(o.MPLSInterface, "gre") {
		d.log.Warn("mpls_over_gre set, ignoring mpls_interface", "mpls_interface", o.MPLSInterface)
	}
	o.MPLSInterface = ""
	return nil
}

// checkMPLSInterface checks that the bare MPLS interface is a port of the
// bridge and reads its port number and MAC.
func (d *Driver) checkMPLSInterface() error {
	ifname := d.opts.MPLSInterface
	br, err := d.r.vsctlRun("port-to-br", ifname)
	if err != nil || br != d.opts.Bridge {
		return fmt.Errorf("ovs driver: specified mpls_interface %s is not plugged to OVS bridge %s; add it (ovs-vsctl add-port %s %s)", ifname, d.opts.Bridge, d.opts.Bridge, ifname)
	}
	if d.mplsIfPort, err = d.r.ofport(ifname); err != nil {
		return fmt.Errorf("ovs driver: mpls_interface: %w", err)
	}
	mac, err := d.r.vsctlRun("get", "Interface", ifname, "mac_in_use")
	if m, perr := route.ParseMAC(strings.Trim(mac, `"`)); err == nil && perr == nil {
		d.mplsIfMAC = net48(m)
		return nil
	}
	// Interface without a MAC (patch port): use the bridge's, as upstream.
	mac, err = d.r.vsctlRun("get", "Interface", d.opts.Bridge, "mac_in_use")
	m, perr := route.ParseMAC(strings.Trim(mac, `"`))
	if err != nil || perr != nil {
		return fmt.Errorf("ovs driver: no MAC address for mpls_interface %s nor bridge %s", ifname, d.opts.Bridge)
	}
	d.mplsIfMAC = net48(m)
	return nil
}

// versionBelow reports whether an "X.Y.Z" version is below major.minor
// (false if it cannot be parsed).
func versionBelow(v string, major, minor int) bool {
	var a, b int
	if n, _ := fmt.Sscanf(v, "%d.%d", &a, &b); n != 2 {
		return false
	}
	return a < major || (a == major && b < minor)
}

func net48(m route.MAC) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Name implements dataplane.Driver.
func (d *Driver) Name() string { return DriverName }

// Encaps implements dataplane.Driver: {GRE, default} with MPLS-over-GRE,
// {MPLS, default} with bare MPLS, plus VXLAN if vxlan_encap (reference §6).
func (d *Driver) Encaps() []route.Encap {
	e := []route.Encap{route.EncapGRE, route.EncapDefault}
	if !d.useGRE {
		e[0] = route.EncapMPLS
	}
	if d.opts.VXLANEncap {
		// First: the VPN layer programs the first encapsulation in this
		// order that a route offers, and upstream prefers VXLAN when
		// vxlan_encap is set and the remote advertises it.
		e = append([]route.Encap{route.EncapVXLAN}, e...)
	}
	return e
}

// ECMP implements dataplane.Driver: next hops of a prefix share a select
// group.
func (d *Driver) ECMP() bool { return true }

// Directions implements dataplane.IPVPNDriver: all directions.
func (d *Driver) Directions() []dataplane.Direction {
	return []dataplane.Direction{dataplane.DirectionBoth, dataplane.DirectionToPort, dataplane.DirectionFromPort}
}

// Tables returns the input, encap-in and VRF table numbers.
func (d *Driver) Tables() (input, encapIn, vrf int) { return d.inTable, d.encapIn, d.vrfTable }

// ResetState implements dataplane.Driver (upstream reset_state): it
// deletes the MPLS, IP, ARP and VXLAN flows and our per-port drop flows
// of the input table, every flow of the encap-in and VRF tables and every
// group of the bridge. The next NewVRF re-creates the tunnel ports and
// flows.
func (d *Driver) ResetState() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.vrfs) > 0 {
		return fmt.Errorf("ovs driver: ResetState with %d VRFs live; close them first", len(d.vrfs))
	}
	lines := []string{
		"flow delete table=" + strconv.Itoa(d.inTable) + ",mpls",
		"flow delete table=" + strconv.Itoa(d.inTable) + ",ip",
		"flow delete table=" + strconv.Itoa(d.inTable) + ",arp",
		"flow delete table=" + strconv.Itoa(d.encapIn),
		"flow delete table=" + strconv.Itoa(d.vrfTable),
		"group delete group_id=all",
	}
	// Our per-port drop flows (cookie = a VRF id, priority dropPriority,
	// no protocol) cannot be told apart by a non-strict match: list them.
	out, err := d.r.ofctlRun("dump-flows", "table="+strconv.Itoa(d.inTable))
	if err != nil {
		return fmt.Errorf("ovs driver: reset state of bridge %s: %w", d.opts.Bridge, err)
	}
	lines = append(lines, staleDropFlows(out, d.inTable)...)
	if p, err := d.r.ofport(VXLANPort); err == nil {
		lines = append(lines, "flow delete table="+strconv.Itoa(d.inTable)+",in_port="+strconv.Itoa(p))
	}
	if err := d.r.bundle(lines); err != nil {
		return fmt.Errorf("ovs driver: reset state of bridge %s: %w", d.opts.Bridge, err)
	}
	d.initialised = false
	d.nextGroup, d.freeGroups = 1, nil
	clear(d.ofports)
	d.log.Info("flushed our OVS flows and groups")
	return nil
}

// staleDropFlows returns strict deletes for the per-port drop flows of
// a dump-flows listing of the input table.
func staleDropFlows(dump string, table int) []string {
	prio := "priority=" + strconv.Itoa(dropPriority) + ","
	var out []string
	for _, l := range strings.Split(dump, "\n") {
		l = strings.TrimSpace(l)
		i := strings.Index(l, prio)
		if i < 0 || strings.HasPrefix(l, "cookie=0x0,") || !strings.HasSuffix(l, " actions=drop") {
			continue
		}
		match := strings.TrimSuffix(l[i+len(prio):], " actions=drop")
		out = append(out, "flow delete_strict table="+strconv.Itoa(table)+","+prio+match)
	}
	return out
}

// initialise (re)creates the tunnel ports and the input-table flows that
// send tunnelled traffic to the encap-in table (upstream initialize).
// Called with d.mu held.
func (d *Driver) initialise() error {
	if d.initialised {
		return nil
	}
	br, local := d.opts.Bridge, d.opts.LocalAddress.String()
	var lines []string
	if d.useGRE {
		name := d.opts.GRETunnel
		args := []string{"--if-exists", "del-port", br, name, "--", "add-port", br, name, "--",
			"set", "Interface", name, "type=gre", "options:local_ip=" + local, "options:remote_ip=flow"}
		for _, o := range d.opts.GRETunnelOptions {
			args = append(args, "options:"+o)
		}
		if _, err := d.r.vsctlRun(args...); err != nil {
			return fmt.Errorf("ovs driver: creating GRE tunnel port %s: %w", name, err)
		}
		delete(d.ofports, name)
		p, err := d.r.ofport(name)
		if err != nil {
			return fmt.Errorf("ovs driver: GRE tunnel port: %w", err)
		}
		d.mplsInPort = p
	} else {
		d.mplsInPort = d.mplsIfPort
	}
	lines = append(lines, flowAdd(0, d.inTable, DefaultPriority, "in_port="+strconv.Itoa(d.mplsInPort)+",mpls",
		"resubmit(,"+strconv.Itoa(d.encapIn)+")"))
	if d.opts.VXLANEncap {
		if _, err := d.r.vsctlRun("--if-exists", "del-port", br, VXLANPort, "--", "add-port", br, VXLANPort, "--",
			"set", "Interface", VXLANPort, "type=vxlan", "options:local_ip="+local, "options:remote_ip=flow", "options:key=flow"); err != nil {
			return fmt.Errorf("ovs driver: creating VXLAN tunnel port: %w", err)
		}
		p, err := d.r.ofport(VXLANPort)
		if err != nil {
			return fmt.Errorf("ovs driver: VXLAN tunnel port: %w", err)
		}
		d.vxlanPort = p
		lines = append(lines, flowAdd(0, d.inTable, DefaultPriority, "in_port="+strconv.Itoa(p), "resubmit(,"+strconv.Itoa(d.encapIn)+")"))
	}
	if err := d.r.bundle(lines); err != nil {
		return fmt.Errorf("ovs driver: installing tunnel input flows: %w", err)
	}
	d.initialised = true
	return nil
}

// NewVRF implements dataplane.IPVPNDriver. A fallback in cfg is
// installed at once.
func (d *Driver) NewVRF(cfg dataplane.VRFConfig) (dataplane.VRFDataplane, error) {
	v, err := d.newVRF(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Fallback != nil {
		if err := v.UpdateFallback(cfg.Fallback); err != nil {
			d.dropVRF(cfg.InstanceID)
			return nil, err
		}
	}
	return v, nil
}

func (d *Driver) newVRF(cfg dataplane.VRFConfig) (*VRF, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg.InstanceID == 0 {
		return nil, errors.New("ovs driver: VRF instance id 0 is reserved (cookie 0 marks driver flows)")
	}
	if _, dup := d.vrfs[cfg.InstanceID]; dup {
		return nil, fmt.Errorf("ovs driver: VRF %d already exists", cfg.InstanceID)
	}
	if err := d.initialise(); err != nil {
		return nil, err
	}
	v := newVRF(d, cfg)
	d.vrfs[cfg.InstanceID] = v
	return v, nil
}

// errNoPort: the port does not exist.
var errNoPort = errors.New("no such port")

// portNumber returns the cached OpenFlow port number of a port of the
// bridge.
func (d *Driver) portNumber(name string) (int, error) {
	d.mu.Lock()
	p, ok := d.ofports[name]
	d.mu.Unlock()
	if ok {
		return p, nil
	}
	// One transaction: the port's bridge (an ofport on another bridge
	// means nothing here) and its number.
	out, err := d.r.vsctlRun("port-to-br", name, "--", "get", "Interface", name, "ofport")
	if err != nil {
		return 0, fmt.Errorf("OVS port %q: %w (%w)", name, errNoPort, err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return 0, fmt.Errorf("OVS port %q: unexpected ovs-vsctl output %q", name, out)
	}
	if f[0] != d.opts.Bridge {
		return 0, fmt.Errorf("OVS port %q is on bridge %q, not %q; move it or set ovs_bridge", name, f[0], d.opts.Bridge)
	}
	if p, err = strconv.Atoi(f[1]); err != nil || p <= 0 {
		return 0, fmt.Errorf("OVS port %q has no OpenFlow port number (ofport %q); check `ovs-vsctl list Interface %s`", name, f[1], name)
	}
	d.mu.Lock()
	d.ofports[name] = p
	d.mu.Unlock()
	return p, nil
}

func (d *Driver) forgetPort(name string) {
	d.mu.Lock()
	delete(d.ofports, name)
	d.mu.Unlock()
}

// allocGroups returns n unused group ids.
func (d *Driver) allocGroups(n int) []uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]uint32, 0, n)
	for len(out) < n && len(d.freeGroups) > 0 {
		out = append(out, d.freeGroups[len(d.freeGroups)-1])
		d.freeGroups = d.freeGroups[:len(d.freeGroups)-1]
	}
	for len(out) < n {
		out = append(out, d.nextGroup)
		d.nextGroup++
	}
	return out
}

// releaseGroups makes group ids available again.
func (d *Driver) releaseGroups(ids []uint32) {
	d.mu.Lock()
	d.freeGroups = append(d.freeGroups, ids...)
	d.mu.Unlock()
}

func (d *Driver) dropVRF(id uint32) {
	d.mu.Lock()
	delete(d.vrfs, id)
	d.mu.Unlock()
}

// Info implements dataplane.Driver.
func (d *Driver) Info() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	tunnels := map[string]any{}
	if d.useGRE && d.mplsInPort > 0 {
		tunnels[d.opts.GRETunnel] = d.mplsInPort
	}
	if d.opts.VXLANEncap && d.vxlanPort > 0 {
		tunnels[VXLANPort] = d.vxlanPort
	}
	encaps := []string{}
	for _, e := range d.Encaps() {
		encaps = append(encaps, e.String())
	}
	info := map[string]any{
		"name": DriverName, "ovs_bridge": d.opts.Bridge, "ovs_version": d.version,
		"mpls_over_gre": d.useGRE, "vxlan_encap": d.opts.VXLANEncap, "tunnel_ports": tunnels,
		"tables":      map[string]any{"input": d.inTable, "encap_in": d.encapIn, "vrf": d.vrfTable},
		"hash_method": d.opts.HashMethod, "encaps": encaps, "local_address": d.opts.LocalAddress.String(),
		"proxy_arp": d.opts.ProxyARP, "arp_responder": d.opts.ARPResponder,
		"vrfs":               slices.Sorted(maps.Keys(d.vrfs)),
		"gre_tunnel_options": d.opts.GRETunnelOptions,
	}
	if !d.useGRE {
		info["mpls_interface"] = d.opts.MPLSInterface
	}
	return info
}

// Close implements dataplane.Driver: nothing to release (OVS state stays).
func (d *Driver) Close() error { return nil }
