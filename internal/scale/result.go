package scale

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Result is what one scenario run writes as JSON (--json) and what the
// report renders.
type Result struct {
	// Scenario is "ingest", "attach", "convergence" or "idle".
	Scenario string `json:"scenario"`
	// Label names the daemon in report columns ("bagpipe (Go)", "upstream").
	Label string `json:"label"`
	// Daemon is the command line template.
	Daemon string `json:"daemon"`
	// Driver is the E-VPN dataplane driver.
	Driver string `json:"driver"`
	// Started is when the run started.
	Started time.Time `json:"started"`
	// Command is the bagpipe-scale command line that produced the result.
	Command string `json:"command,omitempty"`
	// Seconds is the duration of the whole run.
	Seconds float64 `json:"seconds"`
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
	// Error is set when the run failed; the figures are then partial.
	Error string `json:"error,omitempty"`

	Ingest      *IngestResult      `json:"ingest,omitempty"`
	Attach      *AttachResult      `json:"attach,omitempty"`
	Convergence *ConvergenceResult `json:"convergence,omitempty"`
	Idle        *IdleResult        `json:"idle,omitempty"`
}

// Machine describes the machine a run happened on.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	Kernel   string `json:"kernel"`
	MemBytes int64  `json:"mem_bytes"`
	// Load1 is the 1-minute load average when the run started (other work
	// on the machine skews the figures).
	Load1 float64 `json:"load_1m"`
}

// DescribeMachine reads /proc/cpuinfo, the core count, uname and memory.
func DescribeMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemBytes = int64(si.Totalram) * int64(si.Unit)
		m.Load1 = float64(si.Loads[0]) / (1 << unix.SI_LOAD_SHIFT)
	}
	return m
}

// Phase is the advertisement or the withdrawal of an ingest run.
type Phase struct {
	// RIBSeconds is from the first UPDATE queued to the looking glass
	// counting every route (advertise) or none (withdraw).
	RIBSeconds float64 `json:"rib_seconds"`
	// RIBRate is routes per second into the RIB.
	RIBRate float64 `json:"rib_routes_per_s"`
	// KernelSeconds / KernelRate: the same until the fdb has them all (or
	// none); 0 when the driver has no kernel state.
	KernelSeconds float64 `json:"kernel_seconds,omitempty"`
	KernelRate    float64 `json:"kernel_routes_per_s,omitempty"`
	// RIBCount and KernelCount are the counts seen at the end (net of the
	// baseline).
	RIBCount    int `json:"rib_count"`
	KernelCount int `json:"kernel_count,omitempty"`
	// CPUSeconds is the daemon's CPU time (user+system, children included)
	// spent during the phase.
	CPUSeconds float64 `json:"cpu_seconds"`
	// RSSBytes is the RSS one second after the phase; PeakRSSBytes VmHWM.
	RSSBytes     int64 `json:"rss_bytes"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// SessionResets counts the BGP sessions the daemon lost meanwhile
	// (we advertise everything again when it comes back).
	SessionResets int `json:"session_resets,omitempty"`
}

// IngestResult is the outcome of the ingest scenario.
type IngestResult struct {
	// Family is "evpn" (type-2 routes, kernel = fdb entries) or "vpnv4"
	// (kernel = routes in VRF tables); empty in older results means evpn.
	Family    string `json:"family,omitempty"`
	Routes    int    `json:"routes"`
	Instances int    `json:"instances"`
	Pack      bool   `json:"pack"`
	// Rate is the UPDATEs/s cap (0: full speed).
	Rate int `json:"rate,omitempty"`
	// Messages and Bytes are the UPDATEs sent for the advertisement.
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Kernel says whether the fdb (evpn) or the VRF routing tables
	// (vpnv4) were counted (linux driver).
	Kernel bool `json:"kernel"`
	// KernelMethod is "notifications" or "dumps" (after a lost notification).
	KernelMethod string `json:"kernel_method,omitempty"`
	// IdleRSSBytes is the RSS once the instances exist, before the routes.
	IdleRSSBytes int64 `json:"idle_rss_bytes"`
	// BytesPerRoute is (RSS after advertisement − idle RSS) / routes.
	BytesPerRoute float64 `json:"rss_bytes_per_route"`
	Advertise     Phase   `json:"advertise"`
	Withdraw      Phase   `json:"withdraw"`
}

// Latency summarises a series of durations.
type Latency struct {
	Count        int     `json:"count"`
	P50Ms        float64 `json:"p50_ms"`
	P90Ms        float64 `json:"p90_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	TotalSeconds float64 `json:"total_seconds"`
}

// Summarise computes percentiles (nearest rank) of ds; total is the wall
// time of the series.
func Summarise(ds []time.Duration, total time.Duration) Latency {
	l := Latency{Count: len(ds), TotalSeconds: total.Seconds()}
	if len(ds) == 0 {
		return l
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		i = max(0, min(i, len(s)-1))
		return float64(s[i]) / float64(time.Millisecond)
	}
	l.P50Ms, l.P90Ms, l.P99Ms, l.MaxMs = pct(50), pct(90), pct(99), pct(100)
	return l
}

// AttachRun is K attachments then K detachments.
type AttachRun struct {
	Attach Latency `json:"attach"`
	Detach Latency `json:"detach"`
	// DetachErrors counts detach calls that failed (timed all the same);
	// FirstDetachError is the first one's message.
	DetachErrors     int    `json:"detach_errors,omitempty"`
	FirstDetachError string `json:"first_detach_error,omitempty"`
}

// AttachResult is the outcome of the attach scenario.
type AttachResult struct {
	Ports int `json:"ports"`
	// OneInstance: every port into one E-VPN; ManyInstances: one E-VPN each.
	OneInstance   AttachRun `json:"one_instance"`
	ManyInstances AttachRun `json:"many_instances"`
}

// ConvergenceResult is the outcome of the convergence scenario.
type ConvergenceResult struct {
	Samples int `json:"samples"`
	// Measure is "fdb" (entry on node B's VXLAN device, linux driver) or
	// "rib" (B's looking-glass received_routes_count, dummy driver).
	Measure string `json:"measure"`
	// AToB is from the attach request on A to the entry on B.
	AToB Latency `json:"a_to_b"`
	// AToRR is from the attach request on A to its UPDATE at the reflector.
	AToRR Latency `json:"a_to_rr"`
}

// IdleResult is the outcome of the idle scenario.
type IdleResult struct {
	// APISeconds and EstablishedSeconds are from the process start.
	APISeconds         float64 `json:"api_seconds"`
	EstablishedSeconds float64 `json:"established_seconds"`
	// RSSBytes is the RSS 5 s after the session came up.
	RSSBytes int64 `json:"rss_bytes"`
	// CPUSeconds is the CPU time used by then.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// WriteJSON writes r to path, indented.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the result: %w", err)
	}
	return nil
}

// ReadResult reads a JSON result file.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading result %s: %w", path, err)
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding result %s: %w", path, err)
	}
	return &r, nil
}

func newResult(scenario string, o Options) *Result {
	return &Result{Scenario: scenario, Label: o.Label, Daemon: o.Spec.Template, Driver: o.Spec.Driver,
		Started: time.Now().UTC(), Machine: DescribeMachine()}
}

func (r *Result) fail(err error) {
	if r.Error == "" {
		r.Error = err.Error()
	}
}

func (r *Result) finish() { r.Seconds = time.Since(r.Started).Seconds() }
