package vpn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

var (
	bgpAddr = netip.MustParseAddr("192.0.2.1")
	dpAddr  = netip.MustParseAddr("192.0.2.101")
	quiet   = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// testEnv is a real engine (running) + dummy driver + manager.
type testEnv struct {
	t   *testing.T
	eng *engine.Engine
	drv *dummy.Driver
	rec *dummy.Recorder
	m   *Manager
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	eng := engine.New(quiet)
	go eng.Run(ctx)
	drv := dummy.New(dummy.Options{Log: quiet})
	m, err := NewManager(ManagerConfig{Engine: eng, LocalAddress: bgpAddr, DataplaneLocalAddress: dpAddr,
		EVPNDriver: drv, Hostname: "test-host", Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	te := &testEnv{t: t, eng: eng, drv: drv, rec: drv.Recorder(), m: m}
	t.Cleanup(func() {
		m.Stop(context.Background())
		eng.Sync()
		cancel()
		if a := te.rec.Anomalies(); len(a) > 0 {
			t.Errorf("dataplane got inconsistent calls: %v", a)
		}
	})
	return te
}

// settle waits until the engine and every instance processed everything.
func (te *testEnv) settle() {
	te.t.Helper()
	for range 2 {
		te.eng.Sync()
		for _, info := range te.m.Instances() {
			if _, _, err := te.m.InstanceRoutes(context.Background(), info.ExternalID); err != nil {
				var ve *Error
				if !errors.As(err, &ve) || ve.Status != 404 {
					te.t.Fatalf("barrier on %s: %v", info.ExternalID, err)
				}
			}
		}
	}
}

func (te *testEnv) attach(req AttachRequest) {
	te.t.Helper()
	if err := te.m.Attach(context.Background(), req); err != nil {
		te.t.Fatalf("attach %s %s %s: %v", req.InstanceID, req.MAC, req.IP, err)
	}
}

func (te *testEnv) detach(id string, mac route.MAC, ip string, port string) error {
	req := DetachRequest{Type: EVPN, InstanceID: id, MAC: mac, LocalPort: dataplane.LocalPort{LinuxIf: port}}
	if ip != "" {
		req.IP = netip.PrefixFrom(netip.MustParseAddr(ip), 32)
	}
	return te.m.Detach(context.Background(), req)
}

// state returns the dummy E-VPN dataplane state of instance id.
func (te *testEnv) state(id string) dummy.EVIState {
	te.t.Helper()
	return dpState(te, id, "dummy state", te.rec.State)
}

// dpState returns what the dummy driver recorded for instance id, read
// with get (the State method of a dummy driver); what names it in
// messages. The test fails if the instance or its state is missing.
func dpState[S any](te *testEnv, id, what string, get func(instance uint32) (S, bool)) S {
	te.t.Helper()
	info, ok := te.m.Instance(id)
	if !ok {
		te.t.Fatalf("instance %s not found", id)
	}
	s, ok := get(info.ID)
	if !ok {
		te.t.Fatalf("no %s for instance %d", what, info.ID)
	}
	return s
}

// evReq builds an E-VPN attach request; ip "" means MAC-only.
func evReq(id string, mac byte, ip, port string, imp, exp []route.RT) AttachRequest {
	r := AttachRequest{Type: EVPN, InstanceID: id, MAC: testMAC(mac), LocalPort: dataplane.LocalPort{LinuxIf: port},
		ImportRTs: imp, ExportRTs: exp}
	if ip != "" {
		r.IP = netip.PrefixFrom(netip.MustParseAddr(ip), 32)
	}
	return r
}

func rts(r ...route.RT) []route.RT { return r }

// peer is a fake BGP peer worker: it records what it receives and
// publishes routes as a peer source.
type peer struct {
	name string
	src  *route.Source
	mu   sync.Mutex
	seen []engine.Event
	rib  map[string]*route.Route // key → route, as the peer would hold it
}

func newPeer(te *testEnv, name string) *peer {
	p := &peer{name: name, rib: map[string]*route.Route{}}
	p.src = te.eng.Register(p)
	te.eng.Subscribe(p, engine.Match{Family: route.FamilyEVPN, RT: route.RTAny})
	return p
}

func (p *peer) Name() string { return p.name }
func (p *peer) IsPeer() bool { return true }
func (p *peer) Deliver(evs []engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range evs {
		p.seen = append(p.seen, ev)
		if ev.Kind == engine.Advertise {
			p.rib[ev.Route.Key] = ev.Route
		} else {
			delete(p.rib, ev.Route.Key)
		}
	}
}

func (p *peer) routes() map[string]*route.Route {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]*route.Route{}
	for k, v := range p.rib {
		out[k] = v
	}
	return out
}

func (p *peer) publish(te *testEnv, evs ...engine.Event) {
	for _, ev := range evs {
		ev.Route.Source = p.src
	}
	te.eng.Publish(p.src, evs)
}
