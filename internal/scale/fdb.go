package scale

import (
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FDBWatch counts the unicast fdb entries (non-zero MAC) on the VXLAN
// devices of a namespace, from netlink neighbour notifications
// (RTM_NEWNEIGH/RTM_DELNEIGH, family AF_BRIDGE) received into a large
// socket buffer. If the kernel reports a lost notification (ENOBUFS), the
// watch falls back to dumping the table (NeighList), which is exact but
// only as fine-grained as one dump.
type FDBWatch struct {
	watchState[uint64] // keys: ifindex<<48 | MAC

	vxlan    map[int]bool // ifindex → is a VXLAN device
	watchers []func(mac net.HardwareAddr, add bool, at time.Time)
}

// WatchFDB starts watching the namespace's fdb. Close stops it.
func WatchFDB(ns *Namespace) (*FDBWatch, error) {
	w := &FDBWatch{watchState: newWatchState[uint64](ns), vxlan: map[int]bool{}}
	ch := make(chan netlink.NeighUpdate, 1<<16)
	nsh := ns.NsHandle
	err := netlink.NeighSubscribeWithOptions(ch, w.done, netlink.NeighSubscribeOptions{
		Namespace: &nsh, ReceiveBufferSize: 512 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: w.setLost,
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to neighbour notifications in %s: %w", ns.Name, err)
	}
	// Start from the current table.
	if _, err := w.Dump(); err != nil {
		close(w.done)
		return nil, err
	}
	go w.loop(ch)
	return w, nil
}

func key(index int, mac net.HardwareAddr) (uint64, bool) {
	if len(mac) != 6 {
		return 0, false
	}
	var k uint64
	zero := true
	for _, b := range mac {
		k = k<<8 | uint64(b)
		zero = zero && b == 0
	}
	return uint64(index)<<48 | k, !zero
}

// isVXLAN reports (and caches) whether ifindex is a VXLAN device; called
// with w.mu held.
func (w *FDBWatch) isVXLAN(index int) bool {
	if v, ok := w.vxlan[index]; ok {
		return v
	}
	l, err := w.ns.Handle.LinkByIndex(index)
	v := err == nil && l.Type() == "vxlan"
	w.vxlan[index] = v
	return v
}

func (w *FDBWatch) loop(ch chan netlink.NeighUpdate) {
	for u := range ch {
		if u.Family != unix.AF_BRIDGE {
			continue
		}
		k, ok := key(u.LinkIndex, u.HardwareAddr)
		if !ok {
			continue
		}
		now := time.Now()
		w.mu.Lock()
		if !w.isVXLAN(u.LinkIndex) {
			w.mu.Unlock()
			continue
		}
		add := u.Type == unix.RTM_NEWNEIGH
		w.changeLocked(k, add, u.Type == unix.RTM_DELNEIGH, now)
		ws := w.watchers
		w.mu.Unlock()
		for _, f := range ws {
			f(u.HardwareAddr, add, now)
		}
	}
}

// OnChange registers f, called (on the watch goroutine) for each fdb entry
// added or removed on a VXLAN device.
func (w *FDBWatch) OnChange(f func(mac net.HardwareAddr, add bool, at time.Time)) {
	w.mu.Lock()
	w.watchers = append(w.watchers, f)
	w.mu.Unlock()
}

// Dump counts the entries with a full table dump and resets the
// notification-based count to it.
func (w *FDBWatch) Dump() (int, error) {
	list, err := dumpList(func() ([]netlink.Neigh, error) { return w.ns.Handle.NeighList(0, unix.AF_BRIDGE) })
	if err != nil {
		return 0, fmt.Errorf("dumping the fdb of %s: %w", w.ns.Name, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	entries := make(map[uint64]struct{}, len(list))
	for _, n := range list {
		if k, ok := key(n.LinkIndex, n.HardwareAddr); ok && w.isVXLAN(n.LinkIndex) {
			entries[k] = struct{}{}
		}
	}
	return w.resetLocked(entries), nil
}

// Wait waits until cond(count) holds; see waitCount.
func (w *FDBWatch) Wait(cond func(int) bool, timeout time.Duration, alive func() error) (time.Time, error) {
	return waitCount(w.Count, w.Dump, w.lastChange, cond, timeout, alive, func(n int) string {
		return fmt.Sprintf("fdb of %s: %d unicast entries on VXLAN devices", w.ns.Name, n)
	})
}

// waitCount waits until cond(count) holds and returns when it first held
// (the time of the deciding notification, or the end of the deciding dump
// after notifications were lost), or an error after timeout, naming the
// last count with describe. alive is checked on the way. It serves both
// kernel watchers (fdb entries and VRF routes).
func waitCount(count func() (int, bool), dump func() (int, error), last func() time.Time,
	cond func(int) bool, timeout time.Duration, alive func() error, describe func(n int) string) (time.Time, error) {
	start := time.Now()
	end := start.Add(timeout)
	for {
		n, lost := count()
		if lost {
			if _, err := dump(); err != nil {
				return time.Time{}, err
			}
			n, _ = count()
		}
		if cond(n) {
			if t := last(); t.After(start) {
				return t, nil
			}
			return start, nil
		}
		if err := alive(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(end) {
			return time.Time{}, fmt.Errorf("%s after %s, not the expected count", describe(n), timeout)
		}
		if lost {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		// Check again soon: the returned time is that of the notification,
		// so this period only bounds how late we notice.
		time.Sleep(2 * time.Millisecond)
	}
}
