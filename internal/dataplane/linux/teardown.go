package linux

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Deleting an interface is the slowest thing the driver asks of the
// kernel, and it holds the RTNL lock while it waits: measured on Linux
// 6.18 (2 vCPUs), a bridge takes 20-35 ms to delete whatever its state
// (br_dev_uninit → br_multicast_dev_del → rcu_barrier, once per bridge,
// even in one RTM_DELLINK of a whole interface group) and a VXLAN device
// 15-20 ms (synchronize_net and the rcu_barrier of netdev_run_todo), while
// creating either takes about 0.1 ms. Closing an EVI (the last detach of
// an instance) therefore no longer deletes its bridge and VXLAN device
// before returning: Close releases the ports and the gateway port (so the
// instance forwards nothing any more: its bridge has no port left but its
// own VXLAN device) and queues the two devices; the reaper goroutine
// deletes them when the driver has been idle for reapQuiet (or after
// reapMaxDefer at the latest), so that detach and attach requests do not
// queue behind an RTNL lock held for a grace period.
//
// An instance that comes back while its devices wait takes its bridge
// back (NewEVI adopts it); a queued VXLAN device whose VNI a new instance
// needs (the kernel refuses two VXLAN devices with one VNI and port) is
// deleted at once. Driver.Close deletes what is still queued (for at most
// reapDrainMax; the rest is left to the next run, which removes unclaimed
// owned interfaces after its adoption grace, or to bagpipe-bgp-cleanup).

// Reaper timing.
const (
	// reapQuiet is how long the driver must have been idle before the
	// reaper deletes an interface.
	reapQuiet = 50 * time.Millisecond
	// reapMaxDefer bounds how long a busy driver defers a deletion.
	reapMaxDefer = time.Second
	// reapDrainMax bounds the deletions Driver.Close waits for.
	reapDrainMax = 10 * time.Second
)

// dyingLink is an interface of a closed EVI waiting for deletion.
type dyingLink struct {
	name  string
	index int
	kind  string // "bridge" or "vxlan"
	alias string // the alias it must still carry to be deleted
	vni   uint32 // VXLAN devices
}

// reaper is the queue of interfaces to delete. mu is held for the whole
// of one deletion, so that NewEVI, which takes it to claim a queued
// interface, never sees an interface half deleted. Lock order: Driver.mu
// before reaper.mu; the reaper goroutine takes only reaper.mu.
type reaper struct {
	mu    sync.Mutex
	queue []dyingLink
	wake  chan struct{}
	// lastOp is when an EVI last programmed the kernel (unix nanoseconds);
	// atomic, not under mu (which a deletion holds for tens of ms).
	lastOp atomic.Int64
}

// touch records foreground netlink activity (the reaper waits for a quiet
// moment).
func (d *Driver) touch() {
	d.reap.lastOp.Store(time.Now().UnixNano())
}

// enqueueDying queues interfaces of a closed EVI for deletion.
func (d *Driver) enqueueDying(links ...dyingLink) {
	d.reap.mu.Lock()
	d.reap.queue = append(d.reap.queue, links...)
	d.reap.mu.Unlock()
	d.touch()
	select {
	case d.reap.wake <- struct{}{}:
	default:
	}
}

// pendingTeardown is the number of interfaces waiting for deletion.
func (d *Driver) pendingTeardown() int {
	d.reap.mu.Lock()
	defer d.reap.mu.Unlock()
	return len(d.reap.queue)
}

// claimDying prepares the queue for a new EVI (called by NewEVI under
// Driver.mu): a queued bridge named like the EVI's is taken out of the
// queue, for setup to adopt it; a queued VXLAN device with the EVI's name
// or VNI is deleted now.
func (d *Driver) claimDying(brName, vxName string, vni uint32, ownBridge bool) error {
	d.reap.mu.Lock()
	defer d.reap.mu.Unlock()
	var errs []error
	keep := d.reap.queue[:0]
	for _, l := range d.reap.queue {
		switch {
		case l.kind == "bridge" && ownBridge && l.name == brName:
			d.log.Debug("taking back a bridge waiting for deletion", "bridge", l.name)
		case l.kind == "vxlan" && (l.name == vxName || l.vni == vni):
			if err := d.deleteDying(l); err != nil {
				errs = append(errs, err)
			}
		default:
			keep = append(keep, l)
		}
	}
	clear(d.reap.queue[len(keep):])
	d.reap.queue = keep
	return errors.Join(errs...)
}

// deleteDying deletes a queued interface if it is still ours (same index,
// name and alias); one gone meanwhile is not an error. Called with
// reaper.mu held.
func (d *Driver) deleteDying(l dyingLink) error {
	link, err := d.h.LinkByIndex(l.index)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("looking up %s %s before deleting it: %w", l.kind, l.name, err)
	}
	if a := link.Attrs(); a.Name != l.name || a.Alias != l.alias {
		d.log.Warn("not deleting an interface that is no longer ours", "interface", a.Name, "alias", a.Alias, "was", l.name)
		return nil
	}
	if err := d.h.LinkDel(link); err != nil && !isNotFound(err) {
		return fmt.Errorf("deleting %s %s of a closed instance: %w (bagpipe-bgp-cleanup removes it)", l.kind, l.name, err)
	}
	return nil
}

// reapLoop deletes queued interfaces in the background until Close.
func (d *Driver) reapLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.stop:
			if err := d.drainDying(time.Now().Add(reapDrainMax)); err != nil {
				d.log.Warn("interfaces of closed instances left in place at shutdown", "err", err)
			}
			return
		case <-d.reap.wake:
		}
		for d.reapOne() {
		}
	}
}

// reapOne waits for a quiet moment (at most reapMaxDefer) and deletes the
// first queued interface; it reports whether more are queued and the
// driver is not closing.
func (d *Driver) reapOne() bool {
	deadline := time.Now().Add(reapMaxDefer)
	for {
		if d.pendingTeardown() == 0 {
			return false
		}
		idle := time.Since(time.Unix(0, d.reap.lastOp.Load()))
		wait := reapQuiet - idle
		if wait <= 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-d.stop:
			return false
		case <-time.After(wait):
		}
	}
	d.reap.mu.Lock()
	defer d.reap.mu.Unlock()
	if len(d.reap.queue) == 0 {
		return false
	}
	l := d.reap.queue[0]
	d.reap.queue = d.reap.queue[1:]
	if err := d.deleteDying(l); err != nil {
		d.log.Error("deleting an interface of a closed instance", "err", err)
	}
	return len(d.reap.queue) > 0
}

// drainDying deletes every queued interface now, until the deadline.
func (d *Driver) drainDying(deadline time.Time) error {
	d.reap.mu.Lock()
	defer d.reap.mu.Unlock()
	var errs []error
	for len(d.reap.queue) > 0 {
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("%d interfaces of closed instances not deleted in time (they carry our alias: the next run or bagpipe-bgp-cleanup removes them)", len(d.reap.queue)))
			break
		}
		l := d.reap.queue[0]
		d.reap.queue = d.reap.queue[1:]
		if err := d.deleteDying(l); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// WaitTeardown deletes now the interfaces of closed instances that the
// background reaper has not deleted yet, and returns when none is left
// (tests, and tools that must see them gone). Do not call it concurrently
// with Driver.Close.
func (d *Driver) WaitTeardown() error {
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil
	}
	return d.drainDying(time.Now().Add(time.Hour))
}
