package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Publish processes a batch of events from src (reference §4.2):
//
//   - Advertise of a new (family, key): delivered to every worker with a
//     matching subscription (each at most once, never to src's worker, never
//     peer→peer).
//   - Advertise replacing a stored route: ignored if route.Equal; otherwise
//     delivered with Replaced set (for workers that had the old route), and a
//     Withdraw of the old route is synthesized for workers that had it but do
//     not match the new one (e.g. its RTs changed).
//   - Withdraw: the stored route (with its attributes) is looked up by
//     (src, family, key) and its withdrawal delivered to the workers that
//     had it; unknown routes are counted and ignored with a warning.
//
// Each worker receives the events of one batch in a single Deliver call.
// Events whose Route.Source is not src are rejected (an Advertise must be
// stamped with its publisher). Events from an unregistered (or cleaned-up)
// source are dropped.
func (t *Table) Publish(src *route.Source, events []Event) {
	ws := t.bySource[src]
	if ws == nil {
		if len(events) > 0 {
			t.badLog.log(t.log, slog.LevelWarn, "events from an unregistered or cleaned-up source dropped; register the worker before publishing",
				"source", sourceName(src), "events", len(events))
		}
		return
	}
	for i := range events {
		ev := &events[i]
		t.c.events++
		r := ev.Route
		if r == nil {
			t.badLog.log(t.log, slog.LevelError, "event without a route dropped", "source", src.Name)
			continue
		}
		switch ev.Kind {
		case Advertise:
			if r.Source != src {
				t.badLog.log(t.log, slog.LevelError, "advertised route dropped: Route.Source must be the publishing source",
					"source", src.Name, "route_source", sourceName(r.Source), "route", r.String())
				continue
			}
			t.advertise(ws, r)
		case Withdraw:
			t.withdraw(ws, r)
		default:
			t.badLog.log(t.log, slog.LevelError, "event of unknown kind dropped", "source", src.Name, "kind", int(ev.Kind))
		}
	}
	t.flush()
}

func sourceName(s *route.Source) string {
	if s == nil {
		return "<nil>"
	}
	return s.Name
}

func (t *Table) advertise(ws *workerState, r *route.Route) {
	ft := t.table(ws, r.Family, true)
	// One probe serves the lookup and the update: dispatching does not
	// touch the source's table.
	h := rsHash(r.Key)
	slot, free := ft.routes.lookup(h, r.Key, nil)
	if slot < 0 {
		t.newW = t.interested(t.newW[:0], r)
		for _, w := range t.newW {
			t.push(w, Event{Kind: Advertise, Route: r})
		}
		clear(t.newW)
		ft.routes.insert(h, r, free)
		t.index(r, h)
		t.family(r.Family, true).count++
		t.countRoute(r, 1)
		return
	}
	old := ft.routes.at(slot)
	if route.Equal(old, r) {
		t.c.duplicates++
		return
	}
	t.oldW = t.interested(t.oldW[:0], old)
	oldEpoch := t.epoch
	for _, w := range t.oldW {
		w.oldMark = oldEpoch
	}
	t.newW = t.interested(t.newW[:0], r)
	newEpoch := t.epoch
	for _, w := range t.newW {
		ev := Event{Kind: Advertise, Route: r}
		if w.oldMark == oldEpoch {
			ev.Replaced = old
		}
		t.push(w, ev)
	}
	for _, w := range t.oldW {
		if w.mark != newEpoch {
			t.push(w, Event{Kind: Withdraw, Route: old})
		}
	}
	clear(t.oldW)
	clear(t.newW)
	ft.routes.setAt(slot, r)
	t.unindex(old, h)
	t.index(r, h)
}

func (t *Table) withdraw(ws *workerState, r *route.Route) {
	var old *route.Route
	h := rsHash(r.Key)
	slot := -1
	ft := t.table(ws, r.Family, false)
	if ft != nil {
		if slot, _ = ft.routes.lookup(h, r.Key, nil); slot >= 0 {
			old = ft.routes.at(slot)
		}
	}
	if old == nil {
		t.c.unknownWithdraws++
		t.unknownLog.log(t.log, slog.LevelWarn, "withdraw of a route that was never advertised ignored",
			"source", ws.src.Name, "route", r.String())
		return
	}
	t.dispatchWithdraw(old)
	ft.routes.deleteAt(slot)
	t.unindex(old, h)
	t.family(r.Family, false).count--
	t.countRoute(old, -1)
}

// dispatchWithdraw queues a Withdraw of the stored route r for every worker
// that has it.
func (t *Table) dispatchWithdraw(r *route.Route) {
	t.newW = t.interested(t.newW[:0], r)
	for _, w := range t.newW {
		t.push(w, Event{Kind: Withdraw, Route: r})
	}
	clear(t.newW)
}

// interested appends to dst the workers that should receive r, each once:
// subscribers of (f,*), (*,*), (f,rt) and (*,rt) for each RT of r, minus
// r's source and, for a route from a peer, peers.
func (t *Table) interested(dst []*workerState, r *route.Route) []*workerState {
	t.epoch++
	e := t.epoch
	src := r.Source
	rts := matchRTs(r)
	for _, fs := range [2]*familyState{t.family(r.Family, true), t.anyFam} {
		dst = addMatch(dst, fs.anySub, src, e)
		if len(fs.subs) == 0 {
			continue
		}
		for _, rt := range rts {
			if rt != route.RTAny {
				dst = addMatch(dst, fs.subs[rt], src, e)
			}
		}
	}
	return dst
}

func addMatch(dst []*workerState, ms *matchState, src *route.Source, e uint64) []*workerState {
	if ms == nil {
		return dst
	}
	for _, w := range ms.workers {
		if w.mark == e || w.src == src || (w.peer && src.Peer) {
			continue
		}
		w.mark = e
		dst = append(dst, w)
	}
	return dst
}

// index adds r to the RT index (h is rsHash(r.Key)).
func (t *Table) index(r *route.Route, h uint64) {
	rts := matchRTs(r)
	if len(rts) == 0 {
		return
	}
	idx := t.family(r.Family, true).byRT[peerIndex(r.Source.Peer)]
	for _, rt := range rts {
		if rt == route.RTAny {
			continue
		}
		set := idx[rt]
		if set == nil {
			set = &routeSet{}
			idx[rt] = set
		}
		set.addH(h, r)
	}
}

// unindex removes r from the RT index (h is rsHash(r.Key)).
func (t *Table) unindex(r *route.Route, h uint64) {
	rts := matchRTs(r)
	if len(rts) == 0 {
		return
	}
	idx := t.family(r.Family, true).byRT[peerIndex(r.Source.Peer)]
	for _, rt := range rts {
		set := idx[rt]
		if set == nil {
			continue
		}
		set.removeH(h, r)
		if set.Len() == 0 {
			delete(idx, rt)
		}
	}
}

// countRoute updates the local/received counters (RTC excluded).
func (t *Table) countRoute(r *route.Route, d int64) {
	if r.Family == route.FamilyRTC {
		return
	}
	if r.Source.Peer {
		t.c.received += d
	} else {
		t.c.local += d
	}
}

// counters are the table's statistics, plain integers owned by the table.
type counters struct {
	local, received  int64
	workers, subs    int64
	events           int64
	unknownWithdraws int64
	duplicates       int64
}

// Stats are engine counters.
type Stats struct {
	// LocalRoutes counts routes from local sources (VPN instances, the BGP
	// manager), RTC routes excluded (upstream's local_routes_count).
	LocalRoutes int64
	// ReceivedRoutes counts routes from BGP peers, RTC routes excluded
	// (upstream's received_routes_count).
	ReceivedRoutes int64
	// Families counts stored routes per family (RTC included); families
	// the table has seen (routes or subscriptions) stay listed with 0.
	Families map[route.Family]int64
	// Workers is the number of registered workers.
	Workers int64
	// Subscriptions is the number of (worker, match) subscriptions.
	Subscriptions int64
	// Events is the number of route events processed by Publish.
	Events int64
	// UnknownWithdraws counts withdraws of routes that were not stored.
	UnknownWithdraws int64
	// Duplicates counts advertisements identical to the stored route.
	Duplicates int64
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	s := Stats{
		LocalRoutes:      t.c.local,
		ReceivedRoutes:   t.c.received,
		Families:         make(map[route.Family]int64, len(t.fams)),
		Workers:          t.c.workers,
		Subscriptions:    t.c.subs,
		Events:           t.c.events,
		UnknownWithdraws: t.c.unknownWithdraws,
		Duplicates:       t.c.duplicates,
	}
	for _, fs := range t.fams {
		s.Families[fs.fam] = fs.count
	}
	return s
}

// rateLog limits a log message to one per interval, reporting how many
// were suppressed in between.
type rateLog struct {
	last       time.Time
	suppressed int
}

const rateLogInterval = 5 * time.Second

func (r *rateLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < rateLogInterval {
		r.suppressed++
		return
	}
	if r.suppressed > 0 {
		args = append(args, "suppressed_since_last", r.suppressed)
	}
	r.last = now
	r.suppressed = 0
	l.Log(context.Background(), level, msg, args...)
}
