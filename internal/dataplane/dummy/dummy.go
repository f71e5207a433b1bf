// Package dummy is the "dummy" dataplane driver (reference §7.1): it
// programs nothing, and records every call it gets so that tests and
// control-plane-only deployments can see what a real driver would have
// been asked to do. A Recorder keeps a bounded, ordered call log and the
// resulting state per instance (fdb, flood list, neighbours, plugged
// ports), and can be told to fail a call on demand.
package dummy

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// DefaultLogLimit is how many calls a Recorder keeps by default.
const DefaultLogLimit = 10000

// Options configures a dummy driver.
type Options struct {
	// CountOnly keeps only counters: no call log, no per-instance state
	// (memory benchmarks).
	CountOnly bool
	// LogLimit is the number of most recent calls kept (0: DefaultLogLimit).
	LogLimit int
	// Log receives one debug line per call; nil: slog.Default().
	Log *slog.Logger
}

// MaxLoggedChanges is how many changes of one Apply call the call log
// keeps (Call.Changes); Call.ChangeCount has their number. Keeping every
// change would make the log hold a copy of the whole remote state at scale
// (a million-route burst is a few hundred Apply calls of 4096 changes).
const MaxLoggedChanges = 8

// Call is one recorded call. Instance is 0 for driver-level calls.
type Call struct {
	Seq      uint64
	Instance uint32
	// Op is the method name: "ResetState", "Close", "NewEVI", "Plug",
	// "Unplug", "Apply", "SetGatewayPort", "GatewayPortDown", "CloseEVI".
	Op   string
	Port dataplane.LocalPort
	MAC  route.MAC
	IP   netip.Addr
	Last bool
	// Changes are the first MaxLoggedChanges changes of an Apply call (a
	// copy), ChangeCount their total number.
	Changes     []dataplane.EVIChange
	ChangeCount int
	Err         error // the error returned, if any
}

// FDBEntry is a remote MAC's VXLAN destination.
type FDBEntry struct {
	VTEP netip.Addr
	VNI  uint32
}

// Endpoint is a plugged (MAC, IP) on a port; IP is invalid for MAC-only.
type Endpoint struct {
	MAC route.MAC
	IP  netip.Addr
}

// EVIState is the state a dummy EVI dataplane would have programmed.
type EVIState struct {
	Config  dataplane.EVIConfig
	FDB     map[route.MAC]FDBEntry
	Flood   map[FDBEntry]bool
	Neigh   map[netip.Addr]route.MAC
	Ports   map[string][]Endpoint // by LocalPort.LinuxIf
	Gateway string
	Closed  bool
}

// eviState is the recorded state of one instance, kept compact since a
// control-plane-only node may hold a million remote entries: a remote MAC
// is a 12-byte map slot (MAC, index of its interned FDBEntry), an IPv4
// neighbour a 10-byte one.
type eviState struct {
	cfg     dataplane.EVIConfig
	fdb     map[route.MAC]uint32 // index in Recorder.dests
	flood   map[FDBEntry]bool
	neigh4  map[[4]byte]route.MAC
	neigh6  map[netip.Addr]route.MAC // other addresses (IPv6, mapped, zoned)
	ports   map[string][]Endpoint    // by LocalPort.LinuxIf
	gateway string
	closed  bool
	// High-water marks of fdb and neigh4 (see shrunk).
	fdbPeak, neighPeak int
}

// minShrink is the smallest map high-water mark worth rebuilding for.
const minShrink = 4096

// shrunk returns m, or a copy of it sized for its entries when it holds
// less than a quarter of its high-water mark *peak: Go maps never give back
// the memory of deleted entries, and a withdrawal of a million routes
// would leave the state sized for a million.
func shrunk[K comparable, V any](m map[K]V, peak *int) map[K]V {
	if n := len(m); n > *peak {
		*peak = n
	} else if *peak >= minShrink && n < *peak/4 {
		c := make(map[K]V, n)
		for k, v := range m {
			c[k] = v
		}
		*peak = n
		return c
	}
	return m
}

func newEVIState(cfg dataplane.EVIConfig) *eviState {
	s := &eviState{cfg: cfg}
	s.reset()
	return s
}

// reset empties the remote and local state.
func (s *eviState) reset() {
	s.fdb, s.flood = map[route.MAC]uint32{}, map[FDBEntry]bool{}
	s.neigh4, s.neigh6 = map[[4]byte]route.MAC{}, map[netip.Addr]route.MAC{}
	s.ports = map[string][]Endpoint{}
	s.fdbPeak, s.neighPeak = 0, 0
}

func (s *eviState) neigh(ip netip.Addr) (route.MAC, bool) {
	if ip.Is4() {
		m, ok := s.neigh4[ip.As4()]
		return m, ok
	}
	m, ok := s.neigh6[ip]
	return m, ok
}

func (s *eviState) setNeigh(ip netip.Addr, mac route.MAC) {
	if ip.Is4() {
		s.neigh4[ip.As4()] = mac
	} else {
		s.neigh6[ip] = mac
	}
}

func (s *eviState) deleteNeigh(ip netip.Addr) {
	if ip.Is4() {
		delete(s.neigh4, ip.As4())
	} else {
		delete(s.neigh6, ip)
	}
}

// each calls fn for every neighbour.
func (s *eviState) eachNeigh(fn func(netip.Addr, route.MAC)) {
	for a, m := range s.neigh4 {
		fn(netip.AddrFrom4(a), m)
	}
	for a, m := range s.neigh6 {
		fn(a, m)
	}
}

// export returns the state as an EVIState (copies).
func (r *Recorder) export(s *eviState) EVIState {
	c := EVIState{Config: s.cfg, FDB: make(map[route.MAC]FDBEntry, len(s.fdb)), Flood: maps.Clone(s.flood),
		Neigh: make(map[netip.Addr]route.MAC, len(s.neigh4)+len(s.neigh6)), Ports: map[string][]Endpoint{},
		Gateway: s.gateway, Closed: s.closed}
	for m, i := range s.fdb {
		c.FDB[m] = r.dests[i]
	}
	s.eachNeigh(func(a netip.Addr, m route.MAC) { c.Neigh[a] = m })
	for k, v := range s.ports {
		c.Ports[k] = slices.Clone(v)
	}
	return c
}

// intern returns the index of fe in r.dests, adding it if new (there are
// few distinct VTEP/VNI pairs). Must be called with mu held.
func (r *Recorder) intern(fe FDBEntry) uint32 {
	if i, ok := r.destIdx[fe]; ok {
		return i
	}
	i := uint32(len(r.dests))
	r.dests = append(r.dests, fe)
	r.destIdx[fe] = i
	return i
}

// Counters count calls and changes (kept in every mode).
type Counters struct {
	Calls, Plugs, Unplugs, Applies, Changes, Instances, Closed int
	// Anomalies counts changes that did not match the recorded state:
	// adding what is already there, removing what is not.
	Anomalies int
}

// Recorder records the calls of one driver and its instances (Calls,
// Anomalies and FailNext come from the shared call log). It is safe for
// concurrent use.
type Recorder struct {
	callLog[Call] // its mu guards the fields below too
	counters      Counters
	states        map[uint32]*eviState
	dests         []FDBEntry // interned fdb destinations
	destIdx       map[FDBEntry]uint32
}

// Counters returns the counters.
func (r *Recorder) Counters() Counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counters
	c.Calls, c.Anomalies = int(r.seq), r.nAnomalies
	return c
}

// State returns a copy of an instance's state.
func (r *Recorder) State(instance uint32) (EVIState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[instance]
	if !ok {
		return EVIState{}, false
	}
	return r.export(s), true
}

// Driver is the dummy E-VPN driver.
type Driver struct {
	rec *Recorder
	log *slog.Logger
}

var _ dataplane.EVPNDriver = (*Driver)(nil)

// New returns a dummy E-VPN driver.
func New(opts Options) *Driver {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Driver{
		rec: &Recorder{callLog: newCallLog[Call](opts.LogLimit, opts.CountOnly), states: map[uint32]*eviState{}, destIdx: map[FDBEntry]uint32{}},
		log: opts.Log.With("component", "dataplane-dummy"),
	}
}

// Recorder returns the driver's recorder.
func (d *Driver) Recorder() *Recorder { return d.rec }

// Name returns "dummy".
func (d *Driver) Name() string { return "dummy" }

// Encaps returns [VXLAN] (upstream's dummy E-VPN driver, reference §6).
func (d *Driver) Encaps() []route.Encap { return []route.Encap{route.EncapVXLAN} }

// ECMP returns false.
func (d *Driver) ECMP() bool { return false }

// ResetState records the call.
func (d *Driver) ResetState() error {
	d.rec.mu.Lock()
	defer d.rec.mu.Unlock()
	return d.rec.record(Call{Op: "ResetState"})
}

// Info returns the driver's looking-glass object.
func (d *Driver) Info() map[string]any {
	c := d.rec.Counters()
	return map[string]any{"name": "dummy", "supported_encaps": []string{"VXLAN"}, "calls": c.Calls}
}

// Close records the call.
func (d *Driver) Close() error {
	d.rec.mu.Lock()
	defer d.rec.mu.Unlock()
	return d.rec.record(Call{Op: "Close"})
}

// NewEVI creates a recording EVI dataplane.
func (d *Driver) NewEVI(cfg dataplane.EVIConfig) (dataplane.EVIDataplane, error) {
	r := d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "NewEVI", Instance: cfg.InstanceID}); err != nil {
		return nil, err
	}
	r.counters.Instances++
	if !r.countOnly {
		r.states[cfg.InstanceID] = newEVIState(cfg)
	}
	d.log.Debug("new EVI", "instance", cfg.InstanceID, "vni", cfg.VNI)
	return &evi{d: d, id: cfg.InstanceID}, nil
}

type evi struct {
	d  *Driver
	id uint32
}

func (e *evi) state() *eviState {
	if e.d.rec.countOnly {
		return nil
	}
	return e.d.rec.states[e.id]
}

func (e *evi) Plug(port dataplane.LocalPort, mac route.MAC, ip netip.Addr) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Plug", Instance: e.id, Port: port, MAC: mac, IP: ip}); err != nil {
		return err
	}
	r.counters.Plugs++
	if s := e.state(); s != nil {
		ep := Endpoint{MAC: mac, IP: ip}
		if slices.Contains(s.ports[port.LinuxIf], ep) {
			r.anomaly("instance %d: plug of %s %s on %q: already plugged", e.id, mac, ip, port.LinuxIf)
		}
		s.ports[port.LinuxIf] = append(s.ports[port.LinuxIf], ep)
	}
	return nil
}

func (e *evi) Unplug(port dataplane.LocalPort, mac route.MAC, ip netip.Addr, last bool) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Unplug", Instance: e.id, Port: port, MAC: mac, IP: ip, Last: last}); err != nil {
		return err
	}
	r.counters.Unplugs++
	if s := e.state(); s != nil {
		ep := Endpoint{MAC: mac, IP: ip}
		eps := s.ports[port.LinuxIf]
		i := slices.Index(eps, ep)
		if i < 0 {
			r.anomaly("instance %d: unplug of %s %s on %q: not plugged", e.id, mac, ip, port.LinuxIf)
			return nil
		}
		eps = slices.Delete(eps, i, i+1)
		if (len(eps) == 0) != last {
			r.anomaly("instance %d: unplug of %s %s on %q: last=%v but %d endpoints remain", e.id, mac, ip, port.LinuxIf, last, len(eps))
		}
		if len(eps) == 0 {
			delete(s.ports, port.LinuxIf)
		} else {
			s.ports[port.LinuxIf] = eps
		}
	}
	return nil
}

func (e *evi) Apply(changes []dataplane.EVIChange) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Call{Op: "Apply", Instance: e.id, ChangeCount: len(changes)}
	if !r.countOnly {
		c.Changes = slices.Clone(changes[:min(len(changes), MaxLoggedChanges)])
	}
	if err := r.record(c); err != nil {
		return err
	}
	r.counters.Applies++
	r.counters.Changes += len(changes)
	s := e.state()
	if s == nil {
		return nil
	}
	for _, ch := range changes {
		fe := FDBEntry{VTEP: ch.VTEP, VNI: ch.VNI}
		switch ch.Kind {
		case dataplane.AddRemoteMAC:
			i := r.intern(fe)
			if cur, ok := s.fdb[ch.MAC]; ok && cur == i {
				r.anomaly("instance %d: %s %s → %v: already there", e.id, ch.Kind, ch.MAC, fe)
			}
			s.fdb[ch.MAC] = i
		case dataplane.RemoveRemoteMAC:
			// Only the entry pointing to this VTEP/VNI goes: after a
			// make-before-break move the MAC already points elsewhere.
			if cur, ok := s.fdb[ch.MAC]; ok && r.dests[cur] == fe {
				delete(s.fdb, ch.MAC)
			} else if !ok {
				r.anomaly("instance %d: %s %s: no entry", e.id, ch.Kind, ch.MAC)
			}
		case dataplane.AddFlood:
			if s.flood[fe] {
				r.anomaly("instance %d: %s %v: already there", e.id, ch.Kind, fe)
			}
			s.flood[fe] = true
		case dataplane.RemoveFlood:
			if !s.flood[fe] {
				r.anomaly("instance %d: %s %v: no entry", e.id, ch.Kind, fe)
			}
			delete(s.flood, fe)
		case dataplane.AddRemoteIP:
			if m, ok := s.neigh(ch.IP); ok && m == ch.MAC {
				r.anomaly("instance %d: %s %s → %s: already there", e.id, ch.Kind, ch.IP, ch.MAC)
			}
			s.setNeigh(ch.IP, ch.MAC)
		case dataplane.RemoveRemoteIP:
			if m, ok := s.neigh(ch.IP); !ok {
				r.anomaly("instance %d: %s %s: no entry", e.id, ch.Kind, ch.IP)
			} else if m == ch.MAC {
				s.deleteNeigh(ch.IP)
			}
		default:
			return fmt.Errorf("dummy dataplane: unknown change kind %d", ch.Kind)
		}
	}
	s.fdb = shrunk(s.fdb, &s.fdbPeak)
	s.neigh4 = shrunk(s.neigh4, &s.neighPeak)
	return nil
}

func (e *evi) SetGatewayPort(linuxIf string) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "SetGatewayPort", Instance: e.id, Port: dataplane.LocalPort{LinuxIf: linuxIf}}); err != nil {
		return err
	}
	if s := e.state(); s != nil {
		s.gateway = linuxIf
	}
	return nil
}

func (e *evi) GatewayPortDown(linuxIf string) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "GatewayPortDown", Instance: e.id, Port: dataplane.LocalPort{LinuxIf: linuxIf}}); err != nil {
		return err
	}
	if s := e.state(); s != nil {
		s.gateway = ""
	}
	return nil
}

// Info renders the recorded state for the looking glass: fdb
// (MAC → "vtep/vni"), flood (sorted "vtep/vni"), neigh (IP → MAC) and
// ports (linuxif → endpoints). Tests read remote state through it.
func (e *evi) Info() map[string]any {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	info := map[string]any{"driver": "dummy", "instance": e.id}
	s := e.state()
	if s == nil {
		return info
	}
	fdb := map[string]string{}
	for mac, i := range s.fdb {
		f := r.dests[i]
		fdb[mac.String()] = fmt.Sprintf("%s/%d", f.VTEP, f.VNI)
	}
	flood := []string{}
	for f := range s.flood {
		flood = append(flood, fmt.Sprintf("%s/%d", f.VTEP, f.VNI))
	}
	sort.Strings(flood)
	neigh := map[string]string{}
	s.eachNeigh(func(ip netip.Addr, mac route.MAC) { neigh[ip.String()] = mac.String() })
	ports := map[string][]string{}
	for name, eps := range s.ports {
		for _, ep := range eps {
			x := ep.MAC.String()
			if ep.IP.IsValid() {
				x += "/" + ep.IP.String()
			}
			ports[name] = append(ports[name], x)
		}
	}
	info["fdb"], info["flood"], info["neigh"], info["ports"] = fdb, flood, neigh, ports
	return info
}

// errClosed is returned by calls on a closed instance.
var errClosed = errors.New("dummy dataplane: instance is closed")

func (e *evi) Close() error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "CloseEVI", Instance: e.id}); err != nil {
		return err
	}
	r.counters.Closed++
	if s := e.state(); s != nil {
		if s.closed {
			return errClosed
		}
		s.closed = true
		s.reset()
	}
	return nil
}
