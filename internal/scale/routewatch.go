package scale

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelWatch counts the kernel state an ingest run waits for: fdb entries
// (E-VPN, FDBWatch) or VRF routes (IP VPN, RouteWatch).
type kernelWatch interface {
	Dump() (int, error)
	Count() (int, bool)
	Wait(cond func(int) bool, timeout time.Duration, alive func() error) (time.Time, error)
	Lost() (bool, error)
	Close()
}

// watchState is what both kernel watchers keep: the set of counted keys,
// updated from notifications and reset by dumps, when it last changed,
// and whether notifications were lost. The watchers embed it; its mu
// guards their own fields too.
type watchState[K comparable] struct {
	ns   *Namespace
	done chan struct{}

	mu      sync.Mutex
	last    time.Time      // when the count last changed
	entries map[K]struct{} // the counted keys
	lost    bool
	lastErr error
}

func newWatchState[K comparable](ns *Namespace) watchState[K] {
	return watchState[K]{ns: ns, done: make(chan struct{}), entries: map[K]struct{}{}}
}

// setLost is the subscription's ErrorCallback: a notification was lost
// (ENOBUFS), counts now come from dumps.
func (w *watchState[K]) setLost(err error) {
	w.mu.Lock()
	w.lost, w.lastErr = true, err
	w.mu.Unlock()
}

// changeLocked applies one notification about k at now; called with
// w.mu held.
func (w *watchState[K]) changeLocked(k K, add, del bool, now time.Time) {
	if add {
		w.entries[k] = struct{}{}
	} else if del {
		delete(w.entries, k)
	}
	w.last = now
}

// resetLocked replaces the count with a dump's and returns it; called
// with w.mu held.
func (w *watchState[K]) resetLocked(entries map[K]struct{}) int {
	if len(entries) != len(w.entries) {
		w.last = time.Now()
	}
	w.entries = entries
	return len(entries)
}

// Count returns the current count and whether notifications were lost.
func (w *watchState[K]) Count() (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries), w.lost
}

func (w *watchState[K]) lastChange() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Lost reports whether notifications were lost (the counts then come from
// dumps).
func (w *watchState[K]) Lost() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost, w.lastErr
}

// Close stops the watch.
func (w *watchState[K]) Close() { close(w.done) }

// dumpList runs a netlink dump, retrying it a few times when the kernel
// interrupts it (the table changed meanwhile); a dump still interrupted
// after that is used as it is.
func dumpList[T any](list func() ([]T, error)) ([]T, error) {
	var out []T
	var err error
	for range 5 {
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, err
	}
	return out, nil
}

// MinVRFTable is the lowest routing table counted by RouteWatch: the linux
// IP VPN driver uses table 1000 + instance id by default (table_base).
const MinVRFTable = 1000

// routeKey identifies a route of a VRF table.
type routeKey struct {
	table int
	dst   netip.Prefix
	typ   int
}

// RouteWatch counts the IPv4 routes in tables ≥ MinVRFTable of a namespace,
// from netlink route notifications (RTM_NEWROUTE/RTM_DELROUTE, AF_INET)
// received into a large socket buffer; after a lost notification (ENOBUFS)
// it falls back to dumps, like FDBWatch.
type RouteWatch struct {
	watchState[routeKey]
}

// WatchVRFRoutes starts watching the namespace's VRF routes. Close stops it.
func WatchVRFRoutes(ns *Namespace) (*RouteWatch, error) {
	w := &RouteWatch{watchState: newWatchState[routeKey](ns)}
	ch := make(chan netlink.RouteUpdate, 1<<16)
	nsh := ns.NsHandle
	err := netlink.RouteSubscribeWithOptions(ch, w.done, netlink.RouteSubscribeOptions{
		Namespace: &nsh, ReceiveBufferSize: 512 << 20, ReceiveBufferForceSize: true,
		ErrorCallback: w.setLost,
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to route notifications in %s: %w", ns.Name, err)
	}
	if _, err := w.Dump(); err != nil {
		close(w.done)
		return nil, err
	}
	go w.loop(ch)
	return w, nil
}

// vrfKey returns the key of r and whether it is an IPv4 route of a VRF table.
func vrfKey(r *netlink.Route) (routeKey, bool) {
	if r.Table < MinVRFTable || r.Family != unix.AF_INET {
		return routeKey{}, false
	}
	k := routeKey{table: r.Table, typ: r.Type, dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0)}
	if r.Dst != nil {
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			return routeKey{}, false
		}
		bits, _ := r.Dst.Mask.Size()
		k.dst = netip.PrefixFrom(a.Unmap(), bits)
	}
	return k, true
}

func (w *RouteWatch) loop(ch chan netlink.RouteUpdate) {
	for u := range ch {
		k, ok := vrfKey(&u.Route)
		if !ok {
			continue
		}
		now := time.Now()
		w.mu.Lock()
		w.changeLocked(k, u.Type == unix.RTM_NEWROUTE, u.Type == unix.RTM_DELROUTE, now)
		w.mu.Unlock()
	}
}

// Dump counts the routes with a full table dump and resets the
// notification-based count to it.
func (w *RouteWatch) Dump() (int, error) {
	list, err := dumpList(func() ([]netlink.Route, error) {
		return w.ns.Handle.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return 0, fmt.Errorf("dumping the routes of %s: %w", w.ns.Name, err)
	}
	entries := make(map[routeKey]struct{}, len(list))
	for i := range list {
		if k, ok := vrfKey(&list[i]); ok {
			entries[k] = struct{}{}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resetLocked(entries), nil
}

// Wait waits until cond(count) holds; see waitCount.
func (w *RouteWatch) Wait(cond func(int) bool, timeout time.Duration, alive func() error) (time.Time, error) {
	return waitCount(w.Count, w.Dump, w.lastChange, cond, timeout, alive, func(n int) string {
		return fmt.Sprintf("routes of %s: %d IPv4 routes in tables ≥ %d", w.ns.Name, n, MinVRFTable)
	})
}
