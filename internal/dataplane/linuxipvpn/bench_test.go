package linuxipvpn

import (
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// BenchmarkApplyRoutes installs 50,000 remote /32 routes (AddRoute) into
// one VRF in batches of 1,000, as a VRF does on a large RIB, and removes
// them again between iterations (not timed). Reported: routes/s.
func BenchmarkApplyRoutes(b *testing.B) {
	const total, batch = 50000, 1000
	ns := newNS(b)
	d := newDriver(b, ns, Options{})
	v := newVRF(b, d, 1, "10.0.0.1")
	adds := make([]dataplane.VRFChange, total)
	dels := make([]dataplane.VRFChange, total)
	pes := []netip.Addr{addr("10.98.0.2"), addr("10.98.0.3"), addr("10.98.0.4"), addr("10.98.0.5")}
	for i := range adds {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + i>>16), byte(i >> 8), byte(i)}), 32)
		adds[i] = dataplane.VRFChange{Kind: dataplane.AddRoute, Prefix: p, NextHop: pes[i%len(pes)], Label: uint32(16 + i), Encap: route.EncapVXLAN}
		dels[i] = adds[i]
		dels[i].Kind = dataplane.RemoveRoute
	}
	b.ResetTimer()
	for range b.N {
		for i := 0; i < total; i += batch {
			if err := v.Apply(adds[i : i+batch]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if got := len(tableRoutes(b, d, v.table)); got != total+2 {
			b.Fatalf("table holds %d routes, want %d", got, total+2)
		}
		for i := 0; i < total; i += batch {
			if err := v.Apply(dels[i : i+batch]); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total*b.N)/b.Elapsed().Seconds(), "routes/s")
}

// BenchmarkPlugUnplug plugs 200 VMs (one port, MAC and label each) into
// one VRF and unplugs them: per plug, the endpoint route and neighbour,
// the label table's delivery route and the iif and tun_id rules.
// Reported: plug+unplug pairs/s.
func BenchmarkPlugUnplug(b *testing.B) {
	const vms = 200
	ns, vm := newNS(b), newNS(b)
	d := newDriver(b, ns, Options{})
	v := newVRF(b, d, 1, "10.0.0.1")
	names := make([]string, vms)
	for i := range names {
		names[i] = "tap" + itoa(i)
		veth(b, ns, names[i], "eth"+itoa(i), vm)
	}
	ep := func(i int) (route.MAC, netip.Prefix, uint32) {
		return route.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(1 + i>>8), byte(i)}), 32), uint32(16 + i)
	}
	b.ResetTimer()
	for range b.N {
		for i, n := range names {
			m, p, l := ep(i)
			if err := v.Plug(port(n), m, p, l, dataplane.DirectionBoth); err != nil {
				b.Fatal(err)
			}
		}
		for i, n := range names {
			m, p, l := ep(i)
			if err := v.Unplug(port(n), m, p, l, dataplane.DirectionBoth, true); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(vms*b.N)/b.Elapsed().Seconds(), "pairs/s")
}
