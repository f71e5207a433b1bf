package daemon

import (
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{10 * mib, 100},  // headroom 64 MiB > live: capped at 100
		{64 * mib, 100},  // 64 MiB headroom = 100%
		{80 * mib, 80},   // 64/80
		{100 * mib, 64},  // 64/100
		{128 * mib, 50},  // live/2 = 64 MiB
		{1024 * mib, 50}, // live/2
	} {
		if got := gcPercentFor(tc.live); got != tc.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tc.live/mib, got, tc.want)
		}
	}
}

// TestReleasePolicy drives the policy tick by tick: it releases only
// after memIdleTicks quiet ticks, when at least memMinBurst was allocated
// since the last release and the slack (retained minus live) grew by at
// least max(16 MiB, live/16) over its lowest value since then, or when
// at least max(32 MiB, live/2) was allocated.
func TestReleasePolicy(t *testing.T) {
	const mib = 1 << 20
	type tick struct {
		alloc, live, retained uint64 // cumulative allocated bytes, live heap, retained memory
		want                  bool
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
	}{
		{"burst then idle", []tick{
			{0, 10 * mib, 20 * mib, false},                      // first sample: slack 10 MiB
			{100 * mib, 50 * mib, 150 * mib, false},             // busy
			{100 * mib, 50 * mib, 150 * mib, false},             // quiet 1
			{100*mib + mib/2, 50 * mib, 150 * mib, false},       // quiet 2 (less than 1 MiB)
			{100*mib + mib/2 + 1000, 50 * mib, 150 * mib, true}, // quiet 3, slack +90 MiB: release (after: retained 60 MiB)
			{100*mib + mib/2 + 2000, 50 * mib, 60 * mib, false}, // after the release
			{100*mib + mib/2 + 3000, 50 * mib, 60 * mib, false}, // nothing new allocated
			{100*mib + mib/2 + 4000, 50 * mib, 60 * mib, false}, //
			{100*mib + mib/2 + 5000, 50 * mib, 60 * mib, false}, //
			{100*mib + mib/2 + 6000, 50 * mib, 60 * mib, false}, //
			{106*mib + mib/2 + 6000, 50 * mib, 80 * mib, false}, // small burst: 6 MiB allocated…
			{106*mib + mib/2 + 6000, 50 * mib, 80 * mib, false}, //
			{106*mib + mib/2 + 6000, 50 * mib, 80 * mib, false}, //
			{106*mib + mib/2 + 6000, 50 * mib, 80 * mib, true},  // …slack +20 MiB ≥ 16 MiB: release
		}},
		{"garbage under live/2 (reconcile round at 1M routes)", []tick{
			{0, 200 * mib, 230 * mib, false},        // slack 30 MiB
			{90 * mib, 200 * mib, 320 * mib, false}, // a 90 MiB dump, garbage once done
			{90 * mib, 200 * mib, 320 * mib, false}, //
			{90 * mib, 200 * mib, 320 * mib, false}, //
			{90 * mib, 200 * mib, 320 * mib, true},  // slack +90 MiB ≥ 200/16: release
		}},
		{"big burst, garbage reachable at the last collection", []tick{
			{0, 10 * mib, 20 * mib, false},
			{256 * mib, 256 * mib, 270 * mib, false}, // slack +4 MiB only
			{256 * mib, 256 * mib, 270 * mib, false},
			{256 * mib, 256 * mib, 270 * mib, false},
			{256 * mib, 256 * mib, 270 * mib, true}, // but 256 MiB ≥ live/2 allocated
		}},
		{"slack growth under live/16", []tick{
			{0, 400 * mib, 430 * mib, false},
			{150 * mib, 400 * mib, 450 * mib, false}, // slack +20 MiB < 25 MiB
			{150 * mib, 400 * mib, 450 * mib, false},
			{150 * mib, 400 * mib, 450 * mib, false},
			{150 * mib, 400 * mib, 450 * mib, false},
			{150 * mib, 400 * mib, 450 * mib, false},
		}},
		{"slack measured from its lowest", []tick{
			{0, 100 * mib, 200 * mib, false},         // slack 100 MiB (free heap left from before)
			{50 * mib, 180 * mib, 200 * mib, false},  // the live heap grew into it: slack 20 MiB
			{100 * mib, 180 * mib, 240 * mib, false}, // then garbage: slack 60 MiB
			{100 * mib, 180 * mib, 240 * mib, false}, //
			{100 * mib, 180 * mib, 240 * mib, false}, //
			{100 * mib, 180 * mib, 240 * mib, true},  // +40 MiB over the lowest: release
		}},
		{"already returned by the scavenger", []tick{
			{0, 100 * mib, 120 * mib, false},
			{40 * mib, 100 * mib, 300 * mib, false}, // busy (40 MiB < live/2)
			{40 * mib, 100 * mib, 130 * mib, false}, // scavenged while quiet: slack +10 MiB
			{40 * mib, 100 * mib, 130 * mib, false},
			{40 * mib, 100 * mib, 130 * mib, false},
			{40 * mib, 100 * mib, 130 * mib, false},
		}},
		{"never idle", []tick{
			{0, 10 * mib, 20 * mib, false},
			{50 * mib, 10 * mib, 70 * mib, false},
			{52 * mib, 10 * mib, 72 * mib, false},
			{54 * mib, 10 * mib, 74 * mib, false},
			{56 * mib, 10 * mib, 76 * mib, false},
			{58 * mib, 10 * mib, 78 * mib, false},
		}},
		{"idle without burst", []tick{
			{0, 10 * mib, 20 * mib, false},
			{mib / 2, 10 * mib, 60 * mib, false}, // slack +40 MiB (stacks, say) but 3.5 MiB allocated
			{3 * mib, 10 * mib, 60 * mib, false},
			{3*mib + mib/2, 10 * mib, 60 * mib, false},
			{3*mib + mib/2, 10 * mib, 60 * mib, false},
			{3*mib + mib/2, 10 * mib, 60 * mib, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p releasePolicy
			for i, k := range tc.ticks {
				got := p.observe(k.alloc, k.live, k.retained, 0)
				if got != k.want {
					t.Fatalf("tick %d (alloc %d, live %d, retained %d MiB): release %v, want %v",
						i, k.alloc/mib, k.live/mib, k.retained/mib, got, k.want)
				}
				if got {
					p.released(k.alloc, k.live, k.live+10*mib, 0)
				}
			}
		})
	}
}

// TestReleasePolicyWaitsForCPUIdle: a process that allocates little but
// computes (the linux driver programming the kernel in sendmsg calls) is
// not idle; the release waits until it uses less than memIdleCPU per tick.
func TestReleasePolicyWaitsForCPUIdle(t *testing.T) {
	const mib = 1 << 20
	ms := time.Millisecond
	var p releasePolicy
	for i, k := range []struct {
		alloc uint64
		cpu   time.Duration // cumulative
		want  bool
	}{
		{0, 0, false},                // baseline
		{300 * mib, 100 * ms, false}, // busy allocating
		{300 * mib, 150 * ms, false}, // 50 ms of CPU, nothing allocated
		{300 * mib, 200 * ms, false}, //
		{300 * mib, 250 * ms, false}, //
		{300 * mib, 300 * ms, false}, // still busy: four quiet ticks on allocations alone
		{300 * mib, 300 * ms, false}, // quiet 1
		{300 * mib, 309 * ms, false}, // quiet 2 (9 ms < memIdleCPU)
		{300 * mib, 350 * ms, false}, // busy again
		{300 * mib, 351 * ms, false}, // quiet 1
		{300 * mib, 352 * ms, false}, // quiet 2
		{300 * mib, 353 * ms, true},  // quiet 3: release
	} {
		if got := p.observe(k.alloc, 200*mib, 240*mib, k.cpu); got != k.want {
			t.Fatalf("tick %d (alloc %d MiB, cpu %v): release %v, want %v", i, k.alloc/mib, k.cpu, got, k.want)
		}
	}
}

// TestMemoryPolicyReleases steps the policy on this process: after a
// burst of garbage and memIdleTicks quiet ticks, the free heap is returned
// to the OS (runtime.MemStats.HeapReleased grows by most of the burst).
func TestMemoryPolicyReleases(t *testing.T) {
	m := newMemoryPolicy(slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.adjustGC = false
	released := func() uint64 {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapReleased
	}
	if m.step() {
		t.Fatal("released on the first tick (baseline)")
	}
	// A burst of 256 MiB kept alive until it ends, so that the heap grows
	// and then holds that much free memory.
	var keep [][]byte
	for range 256 {
		keep = append(keep, make([]byte, 1<<20))
	}
	runtime.KeepAlive(keep)
	keep = nil
	if m.step() {
		t.Fatal("released on a busy tick")
	}
	r0 := released()
	// Ticks follow each other at once here, so they are quiet unless
	// another goroutine allocates: allow for that with a few more ticks.
	quiet := 1
	for !m.step() {
		if quiet++; quiet > 50 {
			t.Fatalf("no release after %d ticks following a 256 MiB burst", quiet)
		}
	}
	if quiet < memIdleTicks {
		t.Fatalf("released after %d quiet ticks, want at least %d", quiet, memIdleTicks)
	}
	if r := released(); r < r0+128<<20 {
		t.Fatalf("HeapReleased %d → %d bytes: want at least 128 MiB more", r0, r)
	}
	if m.step() {
		t.Fatal("released again without a new burst")
	}
}

// TestMemoryPolicyReleasesGarbageUnderHalfTheLiveHeap: with 256 MiB of
// live heap, 96 MiB of garbage (a reconcile round's dump at a million
// entries is about that) is returned to the OS once the process is quiet;
// the policy used to wait for max(32 MiB, live/2) allocated.
func TestMemoryPolicyReleasesGarbageUnderHalfTheLiveHeap(t *testing.T) {
	m := newMemoryPolicy(slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.adjustGC = false
	live := make([][]byte, 0, 256)
	for range 256 {
		live = append(live, make([]byte, 1<<20))
	}
	runtime.GC()
	debug.FreeOSMemory()
	if m.step() {
		t.Fatal("released on the first tick (baseline)")
	}
	garbage := make([][]byte, 0, 96)
	for range 96 {
		garbage = append(garbage, make([]byte, 1<<20))
	}
	runtime.KeepAlive(garbage)
	garbage = nil
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r0 := ms.HeapReleased
	released := false
	for range 50 {
		if released = m.step(); released {
			break
		}
	}
	if !released {
		t.Fatal("96 MiB of garbage over a 256 MiB live heap not released after 50 ticks")
	}
	runtime.ReadMemStats(&ms)
	if ms.HeapReleased < r0+64<<20 {
		t.Fatalf("HeapReleased %d → %d bytes: want at least 64 MiB more", r0, ms.HeapReleased)
	}
	runtime.KeepAlive(live)
}
