package linux

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// The attach benchmarks drive the driver as bagpipe-scale attach drives
// the daemon: ports are veth pairs, both ends up, created before the
// timer starts; plugs and unplugs run one at a time.

const benchPorts = 1000

// upPorts creates n veth pairs "bp<i>"/"bq<i>" in ns, both ends up, with
// IPv6 disabled on them: the "VM" ends live in the driver's namespace, so
// with IPv6 each would answer every IPv6 multicast frame the bridge floods
// (DAD, MLD, router solicitations of the fresh ports: measured, plugs then
// took up to 150 ms at p99, all of it in the other ports' ipv6_rcv).
// Real VM interfaces are on the other side of a tap. Our own devices are
// created after and keep the namespace's IPv6 default.
func upPorts(b *testing.B, ns *testNS, n int) []string {
	b.Helper()
	sysctl := func(v string) {
		if out, err := exec.Command("ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6="+v).CombinedOutput(); err != nil {
			b.Fatalf("sysctl in %s (needs iproute2 and procps): %v\n%s", ns.name, err, out)
		}
	}
	sysctl("1")
	defer sysctl("0")
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("bp%d", i)
		veth(b, ns, names[i], fmt.Sprintf("bq%d", i), nil)
		for _, nm := range []string{names[i], fmt.Sprintf("bq%d", i)} {
			if err := ns.h.LinkSetUp(link(b, ns, nm)); err != nil {
				b.Fatal(err)
			}
		}
	}
	return names
}

func benchMAC(prefix byte, i int) route.MAC {
	return route.MAC{0x02, prefix, 0, 0, byte(i >> 8), byte(i)}
}

// latencies collects per-call durations and reports their percentiles.
type latencies []time.Duration

func (l latencies) report(b *testing.B, what string) {
	s := slices.Clone(l)
	slices.Sort(s)
	if len(s) == 0 {
		return
	}
	b.ReportMetric(float64(s[len(s)/2].Microseconds()), what+"_p50_µs")
	b.ReportMetric(float64(s[len(s)*99/100].Microseconds()), what+"_p99_µs")
}

// BenchmarkPlugUnplugOneEVI plugs 1,000 ports (one MAC each) into one
// EVI, then unplugs them; the ns/op is for the 2,000 calls.
func BenchmarkPlugUnplugOneEVI(b *testing.B) {
	ns := newNS(b)
	d := newDriver(b, ns, Options{})
	ports := upPorts(b, ns, benchPorts)
	e := newEVI(b, d, "bench-one", 90, "")
	var plug, unplug latencies
	b.ResetTimer()
	for range b.N {
		for i, p := range ports {
			t := time.Now()
			if err := e.Plug(port(p), benchMAC(0xb1, i), addr("10.1.0.1")); err != nil {
				b.Fatal(err)
			}
			plug = append(plug, time.Since(t))
		}
		for i, p := range ports {
			t := time.Now()
			if err := e.Unplug(port(p), benchMAC(0xb1, i), addr("10.1.0.1"), true); err != nil {
				b.Fatal(err)
			}
			unplug = append(unplug, time.Since(t))
		}
	}
	b.StopTimer()
	plug.report(b, "plug")
	unplug.report(b, "unplug")
}

// BenchmarkEVIPerPort creates 1,000 EVIs with one plugged port each, then
// unplugs and closes them (the last detach of an instance); the ns/op is
// for the whole.
func BenchmarkEVIPerPort(b *testing.B) {
	ns := newNS(b)
	d := newDriver(b, ns, Options{})
	ports := upPorts(b, ns, benchPorts)
	var attach, detach latencies
	evis := make([]*evi, len(ports))
	b.ResetTimer()
	for range b.N {
		for i, p := range ports {
			t := time.Now()
			evis[i] = newEVI(b, d, fmt.Sprintf("bench-%d", i), uint32(1000+i), "")
			if err := evis[i].Plug(port(p), benchMAC(0xb2, i), addr("10.2.0.1")); err != nil {
				b.Fatal(err)
			}
			attach = append(attach, time.Since(t))
		}
		for i, p := range ports {
			t := time.Now()
			if err := evis[i].Unplug(port(p), benchMAC(0xb2, i), addr("10.2.0.1"), true); err != nil {
				b.Fatal(err)
			}
			if err := evis[i].Close(); err != nil {
				b.Fatal(err)
			}
			detach = append(detach, time.Since(t))
		}
	}
	b.StopTimer()
	attach.report(b, "attach")
	detach.report(b, "detach")
}
