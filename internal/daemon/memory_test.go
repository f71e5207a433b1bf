package daemon

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
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
// after memIdleTicks quiet ticks that follow a burst of at least
// max(32 MiB, live/2) allocated since the last release.
func TestReleasePolicy(t *testing.T) {
	const mib = 1 << 20
	type tick struct {
		alloc, live uint64 // cumulative allocated bytes, live heap
		want        bool
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
	}{
		{"burst then idle", []tick{
			{0, 10 * mib, false},                               // first sample: baseline
			{100 * mib, 50 * mib, false},                       // busy
			{100 * mib, 50 * mib, false},                       // quiet 1
			{100*mib + mib/2, 50 * mib, false},                 // quiet 2 (less than 1 MiB)
			{100*mib + mib/2 + 1000, 50 * mib, true},           // quiet 3: release
			{100*mib + mib/2 + 2000, 50 * mib, false},          // after release (released() called)
			{100*mib + mib/2 + 3000, 50 * mib, false},          // nothing new allocated
			{100*mib + mib/2 + 4000, 50 * mib, false},          // still nothing
			{100*mib + mib/2 + 5000, 50 * mib, false},          //
			{100*mib + mib/2 + 6000 + 40*mib, 50 * mib, false}, // small burst: 40 MiB…
			{100*mib + mib/2 + 6000 + 40*mib, 50 * mib, false}, //
			{100*mib + mib/2 + 6000 + 40*mib, 50 * mib, false}, //
			{100*mib + mib/2 + 6000 + 40*mib, 50 * mib, true},  // …≥ 32 MiB and ≥ live/2: release
		}},
		{"burst below live/2", []tick{
			{0, 400 * mib, false},
			{150 * mib, 400 * mib, false}, // 150 MiB < 200 MiB
			{150 * mib, 400 * mib, false},
			{150 * mib, 400 * mib, false},
			{150 * mib, 400 * mib, false},
			{150 * mib, 400 * mib, false},
		}},
		{"never idle", []tick{
			{0, 10 * mib, false},
			{50 * mib, 10 * mib, false},
			{52 * mib, 10 * mib, false},
			{54 * mib, 10 * mib, false},
			{56 * mib, 10 * mib, false},
			{58 * mib, 10 * mib, false},
		}},
		{"idle without burst", []tick{
			{0, 10 * mib, false},
			{mib / 2, 10 * mib, false},
			{mib, 10 * mib, false},
			{mib, 10 * mib, false},
			{mib, 10 * mib, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p releasePolicy
			for i, k := range tc.ticks {
				got := p.observe(k.alloc, k.live)
				if got != k.want {
					t.Fatalf("tick %d (alloc %d, live %d): release %v, want %v", i, k.alloc, k.live, got, k.want)
				}
				if got {
					p.released(k.alloc)
				}
			}
		})
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
