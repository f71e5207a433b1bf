package scale

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func netip4(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }

func runOut(args ...string) (string, error) {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	return string(out), err
}

func TestSummarise(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name               string
		in                 []time.Duration
		p50, p90, p99, max float64
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one", ms(7), 7, 7, 7, 7},
		// nearest rank: p50 of 1..10 is the 5th value, p90 the 9th.
		{"ten unsorted", ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5, 9, 10, 10},
		{"hundred", func() []time.Duration {
			v := make([]int, 100)
			for i := range v {
				v[i] = 100 - i
			}
			return ms(v...)
		}(), 50, 90, 99, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := Summarise(tc.in, time.Second)
			if l.Count != len(tc.in) || l.P50Ms != tc.p50 || l.P90Ms != tc.p90 || l.P99Ms != tc.p99 || l.MaxMs != tc.max || l.TotalSeconds != 1 {
				t.Errorf("Summarise = %+v, want p50 %v p90 %v p99 %v max %v", l, tc.p50, tc.p90, tc.p99, tc.max)
			}
		})
	}
}

func TestProcStatsSelf(t *testing.T) {
	st, err := readProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.RSS <= 0 || st.HWM < st.RSS || st.CPU < 0 {
		t.Errorf("own stats %+v", st)
	}
}

// TestMarkdownTargets checks the met/missed verdicts and that every
// section is rendered.
func TestMarkdownTargets(t *testing.T) {
	ours := func(r *Result) *Result {
		r.Label, r.Driver, r.Daemon = "ours", "linux", "bagpipe-bgp --config-file {conf}"
		return r
	}
	rs := []*Result{
		ours(&Result{Scenario: "ingest", Ingest: &IngestResult{Routes: 1_000_000, Instances: 10, Kernel: true, BytesPerRoute: 250,
			Advertise: Phase{RIBSeconds: 4, KernelSeconds: 31}}}),
		// A larger VPNv4 run, fast: it must count neither for the type-2
		// target nor for bytes/route.
		ours(&Result{Scenario: "ingest", Ingest: &IngestResult{Family: FamilyVPNv4, Routes: 2_000_000, Instances: 10, Kernel: true, BytesPerRoute: 9999,
			Advertise: Phase{RIBSeconds: 1, KernelSeconds: 1}}}),
		ours(&Result{Scenario: "idle", Idle: &IdleResult{RSSBytes: 12 << 20}}),
		ours(&Result{Scenario: "convergence", Convergence: &ConvergenceResult{Measure: "fdb", AToB: Latency{Count: 100, P50Ms: 1.5}}}),
		ours(&Result{Scenario: "attach", Attach: &AttachResult{Ports: 1000,
			OneInstance: AttachRun{Attach: Latency{TotalSeconds: 0.5}}, ManyInstances: AttachRun{Attach: Latency{TotalSeconds: 2}}}}),
		{Scenario: "idle", Label: "upstream", Driver: "dummy", Idle: &IdleResult{RSSBytes: 139 << 20}},
	}
	var b bytes.Buffer
	Markdown(&b, rs)
	md := b.String()
	for _, want := range []string{
		"| 1M type-2 routes in RIB and kernel ≤ 30 s | RIB 4.0 s, kernel 31.0 s: **missed** | —: **not run** |",
		"| ≤ 300 bytes RSS per route (largest ingest) | 250 B at 1M routes: **met** |",
		"| idle RSS ≤ 20 MB | 12.0 MB: **met** | 139.0 MB: **missed** |",
		"| attach → remote fdb p50 ≤ 5 ms | 1.50 ms (100 samples): **met** |",
		"| 1,000 attachments ≤ 1 s (one E-VPN) | 0.50 s per 1,000: **met** |",
		"| 1,000 attachments ≤ 1 s (one E-VPN each) | 2.00 s per 1,000: **missed** |",
		"| ours / linux | evpn | 1M | 10 |", "| ours / linux | vpnv4 | 2M | 10 |",
		"## Ingest", "## Attach", "## Convergence", "## Idle",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
