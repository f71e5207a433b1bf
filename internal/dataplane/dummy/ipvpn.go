package dummy

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// VRFCall is one recorded call of the dummy IP VPN driver. Instance is 0
// for driver-level calls.
type VRFCall struct {
	Seq      uint64
	Instance uint32
	// Op is the method name: "ResetState", "Close", "NewVRF", "Plug",
	// "Unplug", "Apply", "AddClassifier", "RemoveClassifier",
	// "UpdateFallback", "CloseVRF".
	Op         string
	Port       dataplane.LocalPort
	MAC        route.MAC
	IP         netip.Prefix
	Label      uint32
	Dir        dataplane.Direction
	Last       bool
	Changes    []dataplane.VRFChange // Apply only (a copy)
	Classifier dataplane.Classifier
	RedirectTo uint32
	Fallback   *dataplane.Fallback
	Err        error // the error returned, if any
}

// VRFEndpoint is a plugged endpoint of a dummy VRF.
type VRFEndpoint struct {
	MAC   route.MAC
	IP    netip.Prefix
	Label uint32
	Dir   dataplane.Direction
}

// NextHop is one installed ECMP member of a prefix.
type NextHop struct {
	NextHop netip.Addr
	Label   uint32
	Encap   route.Encap
	LBOrder uint32
}

// VRFState is the state a dummy VRF dataplane would have programmed.
type VRFState struct {
	Config dataplane.VRFConfig
	// Routes: prefix → its installed next hops, in the order added.
	Routes      map[netip.Prefix][]NextHop
	Ports       map[string][]VRFEndpoint // by LocalPort.LinuxIf
	Classifiers map[dataplane.Classifier]uint32
	Fallback    *dataplane.Fallback
	Closed      bool
}

func (s *VRFState) clone() VRFState {
	c := *s
	c.Routes = map[netip.Prefix][]NextHop{}
	for k, v := range s.Routes {
		c.Routes[k] = slices.Clone(v)
	}
	c.Ports = map[string][]VRFEndpoint{}
	for k, v := range s.Ports {
		c.Ports[k] = slices.Clone(v)
	}
	c.Classifiers = map[dataplane.Classifier]uint32{}
	for k, v := range s.Classifiers {
		c.Classifiers[k] = v
	}
	return c
}

// IPVPNDriver is the dummy IP VPN driver: upstream's dummy ipvpn driver
// supports the encapsulations {default, MPLS} (reference §6) and advertises
// MPLS; this one also does ECMP, every direction and classifiers, so the
// whole VRF contract can be exercised without a kernel. Safe for
// concurrent use.
type IPVPNDriver struct {
	log *slog.Logger

	// callLog provides Calls, Anomalies and FailNext; its mu guards vrfs
	// too.
	callLog[VRFCall]
	vrfs map[uint32]*VRFState
}

var _ dataplane.IPVPNDriver = (*IPVPNDriver)(nil)

// NewIPVPN returns a dummy IP VPN driver.
func NewIPVPN(opts Options) *IPVPNDriver {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &IPVPNDriver{log: opts.Log.With("component", "dataplane-dummy-ipvpn"),
		callLog: newCallLog[VRFCall](opts.LogLimit, false), vrfs: map[uint32]*VRFState{}}
}

// State returns a copy of a VRF's state.
func (d *IPVPNDriver) State(instance uint32) (VRFState, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.vrfs[instance]
	if !ok {
		return VRFState{}, false
	}
	return s.clone(), true
}

// Name returns "dummy".
func (d *IPVPNDriver) Name() string { return "dummy" }

// Encaps returns [default, MPLS] (upstream's dummy IP VPN driver).
func (d *IPVPNDriver) Encaps() []route.Encap {
	return []route.Encap{route.EncapDefault, route.EncapMPLS}
}

// ECMP returns true.
func (d *IPVPNDriver) ECMP() bool { return true }

// Directions returns every direction.
func (d *IPVPNDriver) Directions() []dataplane.Direction {
	return []dataplane.Direction{dataplane.DirectionBoth, dataplane.DirectionToPort, dataplane.DirectionFromPort}
}

// ResetState records the call.
func (d *IPVPNDriver) ResetState() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.record(VRFCall{Op: "ResetState"})
}

// Info returns the driver's looking-glass object.
func (d *IPVPNDriver) Info() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return map[string]any{"name": "dummy", "supported_encaps": []string{"default", "MPLS"}, "calls": d.seq}
}

// Close records the call.
func (d *IPVPNDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.record(VRFCall{Op: "Close"})
}

// NewVRF creates a recording VRF dataplane.
func (d *IPVPNDriver) NewVRF(cfg dataplane.VRFConfig) (dataplane.VRFDataplane, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "NewVRF", Instance: cfg.InstanceID, Fallback: cfg.Fallback}); err != nil {
		return nil, err
	}
	d.vrfs[cfg.InstanceID] = &VRFState{Config: cfg, Routes: map[netip.Prefix][]NextHop{},
		Ports: map[string][]VRFEndpoint{}, Classifiers: map[dataplane.Classifier]uint32{}, Fallback: cfg.Fallback}
	d.log.Debug("new VRF", "instance", cfg.InstanceID, "label", cfg.Label)
	return &vrf{d: d, id: cfg.InstanceID}, nil
}

type vrf struct {
	d  *IPVPNDriver
	id uint32
}

func (v *vrf) state() *VRFState { return v.d.vrfs[v.id] }

func (v *vrf) Plug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "Plug", Instance: v.id, Port: port, MAC: mac, IP: ip, Label: label, Dir: dir}); err != nil {
		return err
	}
	s := v.state()
	ep := VRFEndpoint{MAC: mac, IP: ip, Label: label, Dir: dir}
	if slices.Contains(s.Ports[port.LinuxIf], ep) {
		d.anomaly("VRF %d: plug of %s %s on %q: already plugged", v.id, mac, ip, port.LinuxIf)
	}
	s.Ports[port.LinuxIf] = append(s.Ports[port.LinuxIf], ep)
	return nil
}

func (v *vrf) Unplug(port dataplane.LocalPort, mac route.MAC, ip netip.Prefix, label uint32, dir dataplane.Direction, last bool) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "Unplug", Instance: v.id, Port: port, MAC: mac, IP: ip, Label: label, Dir: dir, Last: last}); err != nil {
		return err
	}
	s := v.state()
	eps := s.Ports[port.LinuxIf]
	i := slices.Index(eps, VRFEndpoint{MAC: mac, IP: ip, Label: label, Dir: dir})
	if i < 0 {
		d.anomaly("VRF %d: unplug of %s %s label %d on %q: not plugged", v.id, mac, ip, label, port.LinuxIf)
		return nil
	}
	eps = slices.Delete(eps, i, i+1)
	if (len(eps) == 0) != last {
		d.anomaly("VRF %d: unplug of %s %s on %q: last=%v but %d endpoints remain", v.id, mac, ip, port.LinuxIf, last, len(eps))
	}
	if len(eps) == 0 {
		delete(s.Ports, port.LinuxIf)
	} else {
		s.Ports[port.LinuxIf] = eps
	}
	return nil
}

func (v *vrf) Apply(changes []dataplane.VRFChange) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "Apply", Instance: v.id, Changes: slices.Clone(changes)}); err != nil {
		return err
	}
	s := v.state()
	for _, c := range changes {
		nh := NextHop{NextHop: c.NextHop, Label: c.Label, Encap: c.Encap, LBOrder: c.LBOrder}
		cur := s.Routes[c.Prefix]
		i := slices.IndexFunc(cur, func(x NextHop) bool { return x.NextHop == nh.NextHop && x.Label == nh.Label })
		switch c.Kind {
		case dataplane.AddRoute:
			if i >= 0 {
				d.anomaly("VRF %d: add-route %s via %s label %d: already there", v.id, c.Prefix, c.NextHop, c.Label)
				cur[i] = nh
				continue
			}
			s.Routes[c.Prefix] = append(cur, nh)
		case dataplane.RemoveRoute:
			if i < 0 {
				d.anomaly("VRF %d: remove-route %s via %s label %d: no such route", v.id, c.Prefix, c.NextHop, c.Label)
				continue
			}
			if cur = slices.Delete(cur, i, i+1); len(cur) == 0 {
				delete(s.Routes, c.Prefix)
			} else {
				s.Routes[c.Prefix] = cur
			}
		default:
			return fmt.Errorf("dummy IP VPN dataplane: unknown change kind %d", c.Kind)
		}
	}
	return nil
}

func (v *vrf) AddClassifier(c dataplane.Classifier, redirectTo uint32) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "AddClassifier", Instance: v.id, Classifier: c, RedirectTo: redirectTo}); err != nil {
		return err
	}
	s := v.state()
	if _, ok := s.Classifiers[c]; ok {
		d.anomaly("VRF %d: classifier %+v added twice", v.id, c)
	}
	s.Classifiers[c] = redirectTo
	return nil
}

func (v *vrf) RemoveClassifier(c dataplane.Classifier, redirectTo uint32) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "RemoveClassifier", Instance: v.id, Classifier: c, RedirectTo: redirectTo}); err != nil {
		return err
	}
	s := v.state()
	if to, ok := s.Classifiers[c]; !ok || to != redirectTo {
		d.anomaly("VRF %d: removal of classifier %+v → %d: not there", v.id, c, redirectTo)
	}
	delete(s.Classifiers, c)
	return nil
}

func (v *vrf) UpdateFallback(f *dataplane.Fallback) error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "UpdateFallback", Instance: v.id, Fallback: f}); err != nil {
		return err
	}
	v.state().Fallback = f
	return nil
}

// Info renders the recorded state: routes (prefix → "nexthop/label"
// sorted), ports (linuxif → "mac/ip/label/direction"), classifiers.
func (v *vrf) Info() map[string]any {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	s := v.state()
	routes := map[string][]string{}
	for p, nhs := range s.Routes {
		for _, nh := range nhs {
			routes[p.String()] = append(routes[p.String()], fmt.Sprintf("%s/%d", nh.NextHop, nh.Label))
		}
		sort.Strings(routes[p.String()])
	}
	ports := map[string][]string{}
	for name, eps := range s.Ports {
		for _, ep := range eps {
			ports[name] = append(ports[name], fmt.Sprintf("%s/%s/%d/%s", ep.MAC, ep.IP, ep.Label, ep.Dir))
		}
	}
	cls := []string{}
	for c, to := range s.Classifiers {
		cls = append(cls, fmt.Sprintf("%+v → %d", c, to))
	}
	sort.Strings(cls)
	return map[string]any{"driver": "dummy", "instance": v.id, "routes": routes, "ports": ports, "classifiers": cls}
}

func (v *vrf) Close() error {
	d := v.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record(VRFCall{Op: "CloseVRF", Instance: v.id}); err != nil {
		return err
	}
	s := v.state()
	if s.Closed {
		return errClosed
	}
	s.Closed = true
	s.Routes, s.Ports, s.Classifiers = map[netip.Prefix][]NextHop{}, map[string][]VRFEndpoint{}, map[dataplane.Classifier]uint32{}
	return nil
}
