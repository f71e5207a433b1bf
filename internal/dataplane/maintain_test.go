package dataplane

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestMaintain: reconcile runs repeatedly, endGrace exactly once, and
// Maintain returns when stop is closed.
func TestMaintain(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var reconciles, graces atomic.Int64
	twice := make(chan struct{})
	graced := make(chan struct{})
	go func() {
		defer close(done)
		Maintain(stop, time.Millisecond, 5*time.Millisecond, func() {
			if reconciles.Add(1) == 2 {
				close(twice)
			}
		}, func() {
			if graces.Add(1) == 1 {
				close(graced)
			}
		})
	}()
	for _, c := range []struct {
		ch   chan struct{}
		what string
	}{{twice, "a second reconcile"}, {graced, "the end of the grace"}} {
		select {
		case <-c.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s after 10 s", c.what)
		}
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Maintain did not return after stop was closed")
	}
	if n := graces.Load(); n != 1 {
		t.Errorf("endGrace ran %d times, want 1", n)
	}
}

// TestMaintainDisabled: no reconcile with interval ≤ 0 and no grace end
// with grace 0.
func TestMaintainDisabled(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	var calls atomic.Int64
	go func() {
		defer close(done)
		Maintain(stop, -1, 0, func() { calls.Add(1) }, func() { calls.Add(1) })
	}()
	time.Sleep(20 * time.Millisecond)
	close(stop)
	<-done
	if n := calls.Load(); n != 0 {
		t.Errorf("%d calls with reconcile and grace disabled, want 0", n)
	}
}
