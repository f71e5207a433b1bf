package engine

import (
	"testing"
	"unsafe"
)

// TestMessageSize: a queued message stays at 80 bytes (one per received
// UPDATE while the engine has a backlog).
func TestMessageSize(t *testing.T) {
	if n := unsafe.Sizeof(message{}); n != 80 {
		t.Fatalf("message is %d bytes, want 80 (keep rare arguments in extra)", n)
	}
}

// TestTakeKeepsBuffersTrimDropsLarge: while messages come the two
// message buffers are reused; trim (the loop calls it once the queue has
// stayed empty for idleTrimDelay) drops those larger than idleKeptQueue.
func TestTakeKeepsBuffersTrimDropsLarge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		queued int
		kept   bool // buffers kept once idle
	}{
		{"small backlog", idleKeptQueue / 2, true},
		{"large backlog", 4 * idleKeptQueue, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := New(nil)
			for range tc.queued {
				e.enqueue(message{kind: msgSync})
			}
			batch, _ := e.take(nil)
			if len(batch) != tc.queued {
				t.Fatalf("took %d messages, want %d", len(batch), tc.queued)
			}
			big := cap(batch)
			// While busy: the producers get the loop's buffer back.
			for range tc.queued {
				e.enqueue(message{kind: msgSync})
			}
			batch, _ = e.take(batch)
			if len(batch) != tc.queued || cap(e.queue) != big {
				t.Fatalf("busy: took %d, producers' buffer capacity %d, want %d and %d", len(batch), cap(e.queue), tc.queued, big)
			}
			// Idle: nothing queued. Taking keeps the buffers…
			batch, large := e.take(batch)
			if len(batch) != 0 || cap(batch) == 0 || cap(e.queue) == 0 || large == tc.kept {
				t.Fatalf("idle take: took %d, buffer capacities %d and %d, large %v: want both kept, large %v", len(batch), cap(batch), cap(e.queue), large, !tc.kept)
			}
			// …trimming drops the large ones.
			batch = e.trim(batch)
			kept := cap(batch) > 0 && cap(e.queue) > 0
			dropped := cap(batch) == 0 && cap(e.queue) == 0
			if len(batch) != 0 || (tc.kept && !kept) || (!tc.kept && !dropped) {
				t.Fatalf("idle: took %d, buffer capacities %d and %d, kept %v, want %v", len(batch), cap(batch), cap(e.queue), kept, tc.kept)
			}
		})
	}
}
