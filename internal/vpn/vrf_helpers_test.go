package vpn

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/veth"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// vrfEnv is a testEnv with a dummy IP VPN driver and recorded links.
type vrfEnv struct {
	*testEnv
	ipvpn *dummy.IPVPNDriver
	links *veth.Recorder
}

// limitedDriver restricts the directions of the dummy driver.
type limitedDriver struct {
	*dummy.IPVPNDriver
	dirs []dataplane.Direction
	ecmp bool
}

func (d limitedDriver) Directions() []dataplane.Direction { return d.dirs }
func (d limitedDriver) ECMP() bool                        { return d.ecmp }

func newVRFEnv(t *testing.T, opts ...func(*ManagerConfig)) *vrfEnv {
	t.Helper()
	te := newTestEnv(t)
	ve := &vrfEnv{testEnv: te, ipvpn: dummy.NewIPVPN(dummy.Options{Log: quiet}), links: veth.NewRecorder()}
	cfg := ManagerConfig{Engine: te.eng, LocalAddress: bgpAddr, DataplaneLocalAddress: dpAddr,
		EVPNDriver: te.drv, IPVPNDriver: ve.ipvpn, Links: ve.links, Hostname: "test-host", Log: quiet}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	te.m = m // the testEnv cleanup stops this manager
	t.Cleanup(func() {
		if a := ve.ipvpn.Anomalies(); len(a) > 0 {
			t.Errorf("IP VPN dataplane got inconsistent calls: %v", a)
		}
	})
	return ve
}

// ipReq builds an IP VPN attach request.
func ipReq(id string, mac byte, ip, port string, imp, exp []route.RT) AttachRequest {
	p, err := netip.ParsePrefix(ip)
	if err != nil {
		p = netip.PrefixFrom(netip.MustParseAddr(ip), 32)
	}
	return AttachRequest{Type: IPVPN, InstanceID: id, MAC: testMAC(mac), IP: p,
		GatewayIP: netip.MustParseAddr("10.0.0.1"), LocalPort: dataplane.LocalPort{LinuxIf: port},
		ImportRTs: imp, ExportRTs: exp, Direction: dataplane.DirectionBoth}
}

func (ve *vrfEnv) ipDetach(id string, mac byte, ip string) error {
	p, err := netip.ParsePrefix(ip)
	if err != nil {
		p = netip.PrefixFrom(netip.MustParseAddr(ip), 32)
	}
	return ve.m.Detach(context.Background(), DetachRequest{Type: IPVPN, InstanceID: id, MAC: testMAC(mac), IP: p})
}

// vrfState returns the dummy IP VPN dataplane state of instance id.
func (ve *vrfEnv) vrfState(id string) dummy.VRFState {
	ve.t.Helper()
	return dpState(ve.testEnv, id, "dummy VRF state", ve.ipvpn.State)
}

// vpnPeer is a fake BGP peer subscribed to VPNv4 and FlowSpec-VPN.
func vpnPeer(te *testEnv, name string) *peer {
	p := &peer{name: name, rib: map[string]*route.Route{}}
	p.src = te.eng.Register(p)
	te.eng.Subscribe(p, engine.Match{Family: route.FamilyVPNv4, RT: route.RTAny})
	te.eng.Subscribe(p, engine.Match{Family: route.FamilyFlowVPN, RT: route.RTAny})
	return p
}

// vpnRoute builds a VPNv4 route as a peer would send it.
func vpnRoute(rd route.RD, prefix string, label uint32, nh string, lp uint32, encaps []route.Encap, rts ...route.RT) *route.Route {
	return &route.Route{Family: route.FamilyVPNv4, Label: label, Key: route.VPNv4Key(rd, netip.MustParsePrefix(prefix)),
		Attrs: &route.Attrs{NextHop: netip.MustParseAddr(nh), HasLocalPref: true, LocalPref: lp, RTs: rts, Encaps: encaps}}
}

// ribOf returns the peer's routes of a family, sorted by String().
func ribOf(p *peer, f route.Family) []*route.Route {
	var out []*route.Route
	for _, r := range p.routes() {
		if r.Family == f {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *route.Route) int { return cmpString(a.String(), b.String()) })
	return out
}

func hops(s dummy.VRFState, prefix string) []dummy.NextHop {
	return s.Routes[netip.MustParsePrefix(prefix)]
}
