package dataplane

import "time"

// Maintain runs a kernel driver's background upkeep until stop is closed:
// reconcile every interval (none when interval ≤ 0), and endGrace once,
// grace after the start, when grace > 0 (the end of the adoption grace of
// state left by an earlier run). Both run on the calling goroutine, never
// concurrently with each other.
func Maintain(stop <-chan struct{}, interval, grace time.Duration, reconcile, endGrace func()) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	var graceC <-chan time.Time
	if grace > 0 {
		t := time.NewTimer(grace)
		defer t.Stop()
		graceC = t.C
	}
	for {
		select {
		case <-stop:
			return
		case <-graceC:
			endGrace()
		case <-tick:
			reconcile()
		}
	}
}
