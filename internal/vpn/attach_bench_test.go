package vpn

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/dummy"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// benchAttachReqs builds n E-VPN attach requests, one port, MAC and IP
// each, into one instance ("one") or one instance per port, as
// bagpipe-scale's attach scenario does.
func benchAttachReqs(n int, one bool) []AttachRequest {
	reqs := make([]AttachRequest, n)
	for i := range n {
		var mac route.MAC
		mac[0] = 0x02
		binary.BigEndian.PutUint32(mac[2:], uint32(i))
		var a4 [4]byte
		binary.BigEndian.PutUint32(a4[:], 0x0a000000+uint32(i))
		id, rt := "one", route.NewRT(64512, 2000)
		if !one {
			id, rt = fmt.Sprintf("i%d", i), route.NewRT(64512, uint32(3000+i))
		}
		reqs[i] = AttachRequest{Type: EVPN, InstanceID: id, MAC: mac, IP: netip.PrefixFrom(netip.AddrFrom4(a4), 32),
			LocalPort: dataplane.LocalPort{LinuxIf: fmt.Sprintf("bsa%d", i)}, ImportRTs: rts(rt), ExportRTs: rts(rt)}
	}
	return reqs
}

// benchAttach attaches then detaches every request through a real
// Manager (running engine, dummy driver) per iteration, and reports the
// cost per attach+detach pair.
func benchAttach(b *testing.B, n int, one bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := engine.New(quiet)
	go eng.Run(ctx)
	drv := dummy.New(dummy.Options{Log: quiet})
	m, err := NewManager(ManagerConfig{Engine: eng, LocalAddress: bgpAddr, DataplaneLocalAddress: dpAddr,
		EVPNDriver: drv, Hostname: "bench", Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Stop(context.Background())
	reqs := benchAttachReqs(n, one)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range reqs {
			if err := m.Attach(ctx, reqs[i]); err != nil {
				b.Fatal(err)
			}
		}
		for i := range reqs {
			r := &reqs[i]
			if err := m.Detach(ctx, DetachRequest{Type: EVPN, InstanceID: r.InstanceID, MAC: r.MAC, IP: r.IP, LocalPort: r.LocalPort}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if len(m.Instances()) != 0 {
		b.Fatalf("%d instances left after detaching everything", len(m.Instances()))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/attach+detach")
}

// BenchmarkAttachOneInstance: 1,000 endpoints attached into one E-VPN,
// then detached (bagpipe-scale attach, first half). The per-pair cost
// must not grow with the number of endpoints of the instance.
func BenchmarkAttachOneInstance(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("ports=%d", n), func(b *testing.B) { benchAttach(b, n, true) })
	}
}

// BenchmarkAttachManyInstances: 1,000 endpoints, each into its own E-VPN
// (instance creation and stop on every pair).
func BenchmarkAttachManyInstances(b *testing.B) {
	benchAttach(b, 1000, false)
}
