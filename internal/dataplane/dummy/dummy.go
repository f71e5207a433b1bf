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

// Call is one recorded call. Instance is 0 for driver-level calls.
type Call struct {
	Seq      uint64
	Instance uint32
	// Op is the method name: "ResetState", "Close", "NewEVI", "Plug",
	// "Unplug", "Apply", "SetGatewayPort", "GatewayPortDown", "CloseEVI".
	Op      string
	Port    dataplane.LocalPort
	MAC     route.MAC
	IP      netip.Addr
	Last    bool
	Changes []dataplane.EVIChange // Apply only (a copy)
	Err     error                 // the error returned, if any
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

func (s *EVIState) clone() EVIState {
	c := *s
	c.FDB = maps.Clone(s.FDB)
	c.Flood = maps.Clone(s.Flood)
	c.Neigh = maps.Clone(s.Neigh)
	c.Ports = map[string][]Endpoint{}
	for k, v := range s.Ports {
		c.Ports[k] = slices.Clone(v)
	}
	return c
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
	states        map[uint32]*EVIState
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
	return s.clone(), true
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
		rec: &Recorder{callLog: newCallLog[Call](opts.LogLimit, opts.CountOnly), states: map[uint32]*EVIState{}},
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
		r.states[cfg.InstanceID] = &EVIState{Config: cfg, FDB: map[route.MAC]FDBEntry{}, Flood: map[FDBEntry]bool{},
			Neigh: map[netip.Addr]route.MAC{}, Ports: map[string][]Endpoint{}}
	}
	d.log.Debug("new EVI", "instance", cfg.InstanceID, "vni", cfg.VNI)
	return &evi{d: d, id: cfg.InstanceID}, nil
}

type evi struct {
	d  *Driver
	id uint32
}

func (e *evi) state() *EVIState {
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
		if slices.Contains(s.Ports[port.LinuxIf], ep) {
			r.anomaly("instance %d: plug of %s %s on %q: already plugged", e.id, mac, ip, port.LinuxIf)
		}
		s.Ports[port.LinuxIf] = append(s.Ports[port.LinuxIf], ep)
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
		eps := s.Ports[port.LinuxIf]
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
			delete(s.Ports, port.LinuxIf)
		} else {
			s.Ports[port.LinuxIf] = eps
		}
	}
	return nil
}

func (e *evi) Apply(changes []dataplane.EVIChange) error {
	r := e.d.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	c := Call{Op: "Apply", Instance: e.id}
	if !r.countOnly {
		c.Changes = slices.Clone(changes)
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
			if s.FDB[ch.MAC] == fe {
				r.anomaly("instance %d: %s %s → %v: already there", e.id, ch.Kind, ch.MAC, fe)
			}
			s.FDB[ch.MAC] = fe
		case dataplane.RemoveRemoteMAC:
			// Only the entry pointing to this VTEP/VNI goes: after a
			// make-before-break move the MAC already points elsewhere.
			if cur, ok := s.FDB[ch.MAC]; ok && cur == fe {
				delete(s.FDB, ch.MAC)
			} else if !ok {
				r.anomaly("instance %d: %s %s: no entry", e.id, ch.Kind, ch.MAC)
			}
		case dataplane.AddFlood:
			if s.Flood[fe] {
				r.anomaly("instance %d: %s %v: already there", e.id, ch.Kind, fe)
			}
			s.Flood[fe] = true
		case dataplane.RemoveFlood:
			if !s.Flood[fe] {
				r.anomaly("instance %d: %s %v: no entry", e.id, ch.Kind, fe)
			}
			delete(s.Flood, fe)
		case dataplane.AddRemoteIP:
			if m, ok := s.Neigh[ch.IP]; ok && m == ch.MAC {
				r.anomaly("instance %d: %s %s → %s: already there", e.id, ch.Kind, ch.IP, ch.MAC)
			}
			s.Neigh[ch.IP] = ch.MAC
		case dataplane.RemoveRemoteIP:
			if m, ok := s.Neigh[ch.IP]; !ok {
				r.anomaly("instance %d: %s %s: no entry", e.id, ch.Kind, ch.IP)
			} else if m == ch.MAC {
				delete(s.Neigh, ch.IP)
			}
		default:
			return fmt.Errorf("dummy dataplane: unknown change kind %d", ch.Kind)
		}
	}
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
		s.Gateway = linuxIf
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
		s.Gateway = ""
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
	for mac, f := range s.FDB {
		fdb[mac.String()] = fmt.Sprintf("%s/%d", f.VTEP, f.VNI)
	}
	flood := []string{}
	for f := range s.Flood {
		flood = append(flood, fmt.Sprintf("%s/%d", f.VTEP, f.VNI))
	}
	sort.Strings(flood)
	neigh := map[string]string{}
	for ip, mac := range s.Neigh {
		neigh[ip.String()] = mac.String()
	}
	ports := map[string][]string{}
	for name, eps := range s.Ports {
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
		if s.Closed {
			return errClosed
		}
		s.Closed = true
		s.FDB, s.Flood, s.Neigh, s.Ports = map[route.MAC]FDBEntry{}, map[FDBEntry]bool{}, map[netip.Addr]route.MAC{}, map[string][]Endpoint{}
	}
	return nil
}
