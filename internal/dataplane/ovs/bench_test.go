package ovs

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// routeBatch returns n AddRoute (or RemoveRoute) changes for distinct /32
// prefixes in 10.64.0.0/10, alternating between two remote PEs.
func routeBatch(n int, kind dataplane.VRFChangeKind) []dataplane.VRFChange {
	out := make([]dataplane.VRFChange, n)
	pes := []netip.Addr{netip.MustParseAddr("10.200.0.2"), netip.MustParseAddr("10.200.0.3")}
	for i := range out {
		a := netip.AddrFrom4([4]byte{10, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		out[i] = dataplane.VRFChange{Kind: kind, Prefix: netip.PrefixFrom(a, 32), NextHop: pes[i%2],
			Label: uint32(1000 + i), Encap: route.EncapGRE}
	}
	return out
}

// BenchmarkApply10kRoutes installs 10,000 routes in one Apply (one
// bundle: 10,000 select groups and 10,000 VRF-table flows) on a private
// userspace OVS, then removes them untimed. routes/s counts routes
// installed per second of Apply.
func BenchmarkApply10kRoutes(b *testing.B) {
	const n = 10000
	o := singleNodeB(b)
	d := newTestDriver(b, o, Options{LocalAddress: netip.MustParseAddr("10.200.0.1")})
	v, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 1, GatewayIP: netip.MustParseAddr("10.1.1.1"), PrefixLen: 24})
	if err != nil {
		b.Fatal(err)
	}
	add, del := routeBatch(n, dataplane.AddRoute), routeBatch(n, dataplane.RemoveRoute)
	var applied time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if err := v.Apply(add); err != nil {
			b.Fatal(err)
		}
		applied += time.Since(start)
		b.StopTimer()
		if got := len(v.(*VRF).routes); got != n {
			b.Fatalf("%d routes programmed, want %d", got, n)
		}
		if err := v.Apply(del); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/applied.Seconds(), "routes/s")
}

// BenchmarkApplyRemove10kRoutes measures the removal of 10,000 routes in
// one Apply.
func BenchmarkApplyRemove10kRoutes(b *testing.B) {
	const n = 10000
	o := singleNodeB(b)
	d := newTestDriver(b, o, Options{LocalAddress: netip.MustParseAddr("10.200.0.1")})
	v, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 1})
	if err != nil {
		b.Fatal(err)
	}
	add, del := routeBatch(n, dataplane.AddRoute), routeBatch(n, dataplane.RemoveRoute)
	var removed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := v.Apply(add); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if err := v.Apply(del); err != nil {
			b.Fatal(err)
		}
		removed += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/removed.Seconds(), "routes/s")
}

// singleNodeB is a private OVS with br-mpls for benchmarks.
func singleNodeB(b *testing.B) *ovsInstance {
	b.Helper()
	requireTools(b)
	o := startOVS(b, newNS(b))
	o.addBridge(b, "br-mpls")
	return o
}
