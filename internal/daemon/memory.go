package daemon

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

// Memory policy of the daemon (issue 6: ≤ 300 bytes of RSS per imported
// route). With the Go defaults a daemon holding a million routes keeps far
// more memory than its live heap:
//
//   - GOGC=100 lets the heap grow to twice the live heap before the next
//     collection, and bursts of UPDATEs produce that much garbage;
//   - memory freed by the collector stays mapped: the background scavenger
//     returns it to the OS slowly, and keeps about 10% above the heap goal.
//
// So the daemon (1) lowers the GC percent once the live heap is large
// (headroom max(64 MiB, live/2): GOGC 100 up to 64 MiB of live heap, down
// to 50 from 128 MiB), and (2) once the process goes idle (allocating
// and computing little) after some allocation, returns the free heap to the OS at once
// (debug.FreeOSMemory: one collection, then every free page released) if
// the memory it keeps beyond its live heap grew by at least
// max(16 MiB, live/16) since the last release, or if it allocated at least
// max(32 MiB, live/2) since. An operator's GOGC or GOMEMLIMIT environment
// variable turns (1) off.
//
// The first trigger of (2) is that growth ("slack": memory mapped and not
// released, minus the live heap of the last collection). It used to be
// only a burst of max(32 MiB, live/2) allocated since the last release,
// and at a million routes (live heap ~200 MB) garbage
// under 100 MB was never returned. The linux E-VPN driver made that
// visible: when a release fell while it was still programming the
// kernel, the tail of that programming, or a reconcile round (a streamed
// dump of the fdb and neighbour tables, ~90 MB at a million entries), left
// 30 to 100 MB of garbage mapped (bagpipe-scale ingest --driver linux
// --routes 1000000: RSS after 208 to 304 MB from one run to the next).

// Memory policy parameters.
const (
	memTick        = 50 * time.Millisecond
	memIdleTicks   = 3           // idle for 150 ms…
	memIdleAlloc   = 1 << 20     // …allocating less than 1 MiB per tick…
	memIdleCPU     = memTick / 2 // …and using less than half a CPU
	memMinBurst    = 4 << 20     // allocated since the last release
	memMinSlack    = 16 << 20
	memBigBurst    = 32 << 20 // allocated since the last release: release whatever the slack
	memMinHeadroom = 64 << 20 // GC headroom kept for small heaps
	memMinPercent  = 50
)

// releasePolicy decides when to return memory to the OS. It is fed, once
// per tick, the cumulative allocated bytes, the live heap (of the last
// collection), the retained memory (mapped by the runtime and not
// released to the OS) and the process's CPU time; it has no clock of its
// own, so tests drive it tick by tick.
//
// A tick is quiet when the process allocated less than memIdleAlloc and
// used less than memIdleCPU of CPU. The CPU test matters: the linux E-VPN
// driver programs the kernel in sendmsg calls that allocate little, so on
// allocations alone the process looked idle while a million entries were
// still being programmed, memory was released then, and the queues and
// request buffers still live at that moment stayed mapped once they were
// garbage (20 to 30 MB, more when the release came earlier).
type releasePolicy struct {
	started     bool
	prevAlloc   uint64        // cumulative allocated bytes at the previous tick
	prevCPU     time.Duration // process CPU time (user+system) at the previous tick
	lastRelease uint64        // cumulative allocated bytes after the last release
	baseSlack   uint64        // retained minus live after the last release
	quiet       int           // consecutive idle ticks
}

// slack is the memory retained beyond the live heap (0 if none).
func slack(live, retained uint64) uint64 {
	if retained < live {
		return 0
	}
	return retained - live
}

// minSlackGrowth is the growth of the slack over its value after the last
// release that is worth a release: max(memMinSlack, live/16).
func minSlackGrowth(live uint64) uint64 {
	return max(memMinSlack, live/16)
}

// observe records one tick and reports whether to release memory now:
// after memIdleTicks quiet ticks, if at least memMinBurst was allocated
// since the last release and the slack grew by minSlackGrowth(live), or
// if at least max(memBigBurst, live/2) was allocated.
func (p *releasePolicy) observe(allocated, live, retained uint64, cpu time.Duration) bool {
	if !p.started {
		p.started, p.prevAlloc, p.prevCPU, p.lastRelease = true, allocated, cpu, allocated
		p.baseSlack = slack(live, retained)
		return false
	}
	if allocated-p.prevAlloc >= memIdleAlloc || cpu-p.prevCPU >= memIdleCPU {
		p.quiet = 0
	} else {
		p.quiet++
	}
	p.prevAlloc, p.prevCPU = allocated, cpu
	s := slack(live, retained)
	// The slack falls when the live heap grows into the free heap or the
	// background scavenger returns memory: measure growth from its lowest.
	p.baseSlack = min(p.baseSlack, s)
	burst := allocated - p.lastRelease
	if p.quiet < memIdleTicks || burst < memMinBurst {
		return false
	}
	// The live heap is that of the last collection: garbage that was
	// still reachable then is not in the slack. A burst of half the live
	// heap is worth a collection anyway.
	return s-p.baseSlack >= minSlackGrowth(live) || burst >= max(memBigBurst, live/2)
}

// released records that memory was released (allocated, live, retained,
// cpu: as read after the release).
func (p *releasePolicy) released(allocated, live, retained uint64, cpu time.Duration) {
	p.prevAlloc, p.prevCPU, p.lastRelease, p.quiet = allocated, cpu, allocated, 0
	p.baseSlack = slack(live, retained)
}

// gcPercentFor is the GC percent for a live heap of live bytes: a
// headroom of max(memMinHeadroom, live/2), as a percentage of live, within
// [memMinPercent, 100].
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 100
	}
	pct := int(max(memMinHeadroom, live/2) * 100 / live)
	return min(100, max(memMinPercent, pct))
}

// memoryPolicy runs the policy until ctx ends.
type memoryPolicy struct {
	log       *slog.Logger
	adjustGC  bool
	gcPercent int
	samples   []metrics.Sample
	policy    releasePolicy
}

func newMemoryPolicy(log *slog.Logger) *memoryPolicy {
	_, gogc := os.LookupEnv("GOGC")
	_, limit := os.LookupEnv("GOMEMLIMIT")
	return &memoryPolicy{
		log:       log.With("component", "memory"),
		adjustGC:  !gogc && !limit,
		gcPercent: 100,
		samples: []metrics.Sample{
			{Name: "/gc/heap/allocs:bytes"},
			{Name: "/gc/heap/live:bytes"},
			{Name: "/memory/classes/total:bytes"},
			{Name: "/memory/classes/heap/released:bytes"},
		},
	}
}

// read returns the cumulative allocated bytes, the live heap, the
// memory mapped by the runtime minus what was released to the OS (about
// the Go part of the RSS) and the process's CPU time (user and system:
// getrusage(2); 0 if unavailable).
func (m *memoryPolicy) read() (allocated, live, retained uint64, cpu time.Duration) {
	metrics.Read(m.samples)
	v := func(i int) uint64 {
		if m.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return m.samples[i].Value.Uint64()
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return v(0), v(1), v(2) - v(3), cpu
}

// run calls step every memTick until ctx ends.
func (m *memoryPolicy) run(ctx context.Context) {
	t := time.NewTicker(memTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.step()
		}
	}
}

// step is one tick of the policy: adjust the GC percent, and return
// memory to the OS if the policy says so (it then reports true).
func (m *memoryPolicy) step() bool {
	allocated, live, retained, cpu := m.read()
	if m.adjustGC {
		if pct := gcPercentFor(live); pct != m.gcPercent && (pct-m.gcPercent >= 5 || m.gcPercent-pct >= 5 || pct == 100) {
			debug.SetGCPercent(pct)
			m.log.Debug("GC percent set", "percent", pct, "live_heap", live)
			m.gcPercent = pct
		}
	}
	if !m.policy.observe(allocated, live, retained, cpu) {
		return false
	}
	t0 := time.Now()
	debug.FreeOSMemory()
	after, live, retainedAfter, cpuAfter := m.read()
	m.policy.released(after, live, retainedAfter, cpuAfter)
	m.log.Debug("idle after an allocation burst: memory returned to the OS",
		"retained_before", retained, "retained_after", retainedAfter, "live_heap", live, "took", time.Since(t0))
	return true
}
