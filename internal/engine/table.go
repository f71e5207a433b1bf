package engine

import (
	"cmp"
	"log/slog"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// replayChunk bounds the number of events handed to a worker in one Deliver
// call by operations that may produce very many events (subscription
// replay, unsubscribe, cleanup), so that neither the engine nor the worker
// needs a buffer the size of the whole table. Publish never splits: each
// worker gets one Deliver call per published batch.
const replayChunk = 1024

// maxKeptPending is the largest per-worker event buffer kept for reuse
// after a delivery; larger ones are released to the garbage collector.
const maxKeptPending = 4096

// Table is the route table manager's state and processing, single-threaded
// and synchronous: every method processes its input completely (delivering
// to workers) before returning. Engine runs a Table in its own goroutine;
// tests and benchmarks may use a Table directly. A Table must not be used
// from several goroutines at once, and Worker.Deliver and the hook must not
// call back into it.
//
// Indexes (no event scans all routes, all workers or all subscriptions):
//   - per source and family: NLRI key → route (the (source, family, key)
//     lookup of advertise/withdraw, and the source's routes for Cleanup);
//   - per family: the sources having routes of that family ((f,*) replays);
//   - per family, RT and source-is-peer: the set of routes carrying the RT
//     ((f,rt) and (*,rt) replays; peer subscribers skip received routes);
//   - per family (FamilyAny included) and RT (RTAny included): the
//     subscribed workers, and how many are local;
//   - per worker: its matches.
//
// Family-level state lives in a short slice (a handful of families), and
// every per-route map is keyed by a 64-bit value or a pointer, which keeps
// the hot path to a few fast map operations per route.
type Table struct {
	log  *slog.Logger
	hook LocalSubscriptionHook

	workers  map[Worker]*workerState
	bySource map[*route.Source]*workerState
	fams     []*familyState // families of routes or subscriptions, few: linear lookup
	anyFam   *familyState   // subscriptions to FamilyAny (never holds routes)

	epoch   uint64
	touched []*workerState // workers with pending events
	chunk   int            // 0: no chunking (Publish), else replayChunk
	oldW    []*workerState // scratch
	newW    []*workerState // scratch
	nextID  uint32

	c          counters
	unknownLog rateLog
	badLog     rateLog
}

// workerState is what the table knows of one registered worker.
type workerState struct {
	w    Worker
	src  *route.Source
	peer bool
	subs map[Match]struct{}
	// tables holds the routes this worker published, one per family.
	tables  []*famTable
	pending []Event
	// mark and oldMark are epoch stamps used to deduplicate workers while
	// collecting the interested workers of a route.
	mark    uint64
	oldMark uint64
}

// famTable holds one source's routes of one family, by NLRI key.
type famTable struct {
	fam    route.Family
	routes routeSet // keyed
}

// familyState is the per-family part of the indexes.
type familyState struct {
	fam   route.Family
	count int64
	// sources are the workers having a famTable of this family.
	sources map[*workerState]struct{}
	// byRT indexes routes by RT; [0] for local sources, [1] for peers.
	byRT [2]map[route.RT]*routeSet // identity sets
	// subs are the subscriptions (fam, rt); anySub is (fam, RTAny).
	subs   map[route.RT]*matchState
	anySub *matchState
}

func newFamilyState(f route.Family) *familyState {
	return &familyState{
		fam:     f,
		sources: make(map[*workerState]struct{}),
		byRT:    [2]map[route.RT]*routeSet{make(map[route.RT]*routeSet), make(map[route.RT]*routeSet)},
		subs:    make(map[route.RT]*matchState),
	}
}

func peerIndex(peer bool) int {
	if peer {
		return 1
	}
	return 0
}

// matchState lists the workers subscribed to one Match.
type matchState struct {
	workers []*workerState
	local   int
}

// NewTable returns an empty table. hook may be nil.
func NewTable(hook LocalSubscriptionHook) *Table {
	return &Table{
		log:      slog.Default().With("component", "engine"),
		hook:     hook,
		workers:  make(map[Worker]*workerState),
		bySource: make(map[*route.Source]*workerState),
		anyFam:   newFamilyState(route.FamilyAny),
	}
}

// SetLogger sets the logger (a "component" attribute is added).
func (t *Table) SetLogger(l *slog.Logger) {
	if l == nil {
		l = slog.Default()
	}
	t.log = l.With("component", "engine")
}

// SetHook sets the local subscription hook (nil for none). Matches that
// already have local subscribers are not reported retroactively.
func (t *Table) SetHook(h LocalSubscriptionHook) { t.hook = h }

// Register registers w and returns its route source. Registering a worker
// that is already registered returns its existing source.
func (t *Table) Register(w Worker) *route.Source {
	if ws := t.workers[w]; ws != nil {
		return ws.src
	}
	t.nextID++
	src := &route.Source{Name: w.Name(), Peer: w.IsPeer(), ID: t.nextID}
	t.register(w, src)
	return src
}

// register records w with a source allocated by the caller (Engine
// allocates sources outside the loop).
func (t *Table) register(w Worker, src *route.Source) *workerState {
	if ws := t.workers[w]; ws != nil {
		if ws.src != src {
			t.log.Error("worker registered twice with different sources; keeping the first",
				"worker", w.Name())
		}
		return ws
	}
	ws := &workerState{w: w, src: src, peer: src.Peer, subs: make(map[Match]struct{})}
	t.workers[w] = ws
	t.bySource[src] = ws
	t.c.workers++
	return ws
}

// workerFor returns the state of w, registering it if needed.
func (t *Table) workerFor(w Worker) *workerState {
	if ws := t.workers[w]; ws != nil {
		return ws
	}
	t.Register(w)
	return t.workers[w]
}

// family returns the per-family index entry, creating it if create.
func (t *Table) family(f route.Family, create bool) *familyState {
	for _, fs := range t.fams {
		if fs.fam == f {
			return fs
		}
	}
	if !create {
		return nil
	}
	fs := newFamilyState(f)
	t.fams = append(t.fams, fs)
	return fs
}

// matchState returns the subscription state of m, creating it if create.
func (t *Table) matchState(m Match, create bool) *matchState {
	fs := t.anyFam
	if m.Family != route.FamilyAny {
		if fs = t.family(m.Family, create); fs == nil {
			return nil
		}
	}
	if m.RT == route.RTAny {
		if fs.anySub == nil && create {
			fs.anySub = &matchState{}
		}
		return fs.anySub
	}
	ms := fs.subs[m.RT]
	if ms == nil && create {
		ms = &matchState{}
		fs.subs[m.RT] = ms
	}
	return ms
}

// dropMatchState forgets m's subscription state (it has no worker left).
func (t *Table) dropMatchState(m Match) {
	fs := t.anyFam
	if m.Family != route.FamilyAny {
		if fs = t.family(m.Family, false); fs == nil {
			return
		}
	}
	if m.RT == route.RTAny {
		fs.anySub = nil
	} else {
		delete(fs.subs, m.RT)
	}
}

// table returns ws's routes of family f, creating the table if create.
func (t *Table) table(ws *workerState, f route.Family, create bool) *famTable {
	for _, ft := range ws.tables {
		if ft.fam == f {
			return ft
		}
	}
	if !create {
		return nil
	}
	ft := &famTable{fam: f}
	ws.tables = append(ws.tables, ft)
	t.family(f, true).sources[ws] = struct{}{}
	return ft
}

// Subscriptions returns the matches w is subscribed to, sorted by family
// then RT.
func (t *Table) Subscriptions(w Worker) []Match {
	ws := t.workers[w]
	if ws == nil {
		return nil
	}
	out := make([]Match, 0, len(ws.subs))
	for m := range ws.subs {
		out = append(out, m)
	}
	slices.SortFunc(out, compareMatch)
	return out
}

func compareMatch(a, b Match) int {
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	return cmp.Compare(a.RT, b.RT)
}

// Routes returns a copy of the routes of family fam (every family for
// FamilyAny), in no particular order. It costs O(routes of that family).
func (t *Table) Routes(fam route.Family) []*route.Route {
	var n int64
	for _, fs := range t.fams {
		if fam == route.FamilyAny || fs.fam == fam {
			n += fs.count
		}
	}
	out := make([]*route.Route, 0, n)
	for _, fs := range t.fams {
		if fam != route.FamilyAny && fs.fam != fam {
			continue
		}
		for ws := range fs.sources {
			if ft := t.table(ws, fs.fam, false); ft != nil {
				for r := range ft.routes.all() {
					out = append(out, r)
				}
			}
		}
	}
	return out
}

// Subscribe subscribes w to m (registering w if needed). Existing routes
// matching m are replayed to w as Advertise events, except its own routes,
// routes from peers when w is a peer, and routes w already had through
// another of its subscriptions. Subscribing again to the same match does
// nothing. The first local subscriber of a match with a specific RT fires
// hook.FirstLocalSubscriber.
func (t *Table) Subscribe(w Worker, m Match) {
	ws := t.workerFor(w)
	if _, ok := ws.subs[m]; ok {
		return
	}
	ws.subs[m] = struct{}{}
	t.c.subs++
	ms := t.matchState(m, true)
	ms.workers = append(ms.workers, ws)
	if !ws.peer {
		ms.local++
		if ms.local == 1 && m.RT != route.RTAny && t.hook != nil {
			t.hook.FirstLocalSubscriber(m)
		}
	}
	t.chunk = replayChunk
	t.forEachCandidate(m, ws, func(r *route.Route) {
		if t.coveredElsewhere(ws, r, m) {
			return
		}
		t.push(ws, Event{Kind: Advertise, Route: r})
	})
	t.flush()
}

// Resend delivers again, as Advertise events, every route w gets through
// its subscription to m (a BGP ROUTE-REFRESH, RFC 2918 §4), without the
// withdrawals an unsubscribe/subscribe cycle would cause. Nothing happens
// if w is not subscribed to m.
func (t *Table) Resend(w Worker, m Match) {
	ws := t.workers[w]
	if ws == nil || !hasSub(ws, m) {
		return
	}
	t.chunk = replayChunk
	t.forEachCandidate(m, ws, func(r *route.Route) {
		t.push(ws, Event{Kind: Advertise, Route: r})
	})
	t.flush()
}

// Unsubscribe removes w's subscription to m. Routes of m that w does not
// still get through another subscription are withdrawn from w. The last
// local subscriber of a match with a specific RT fires
// hook.LastLocalSubscriber. Unsubscribing from a match w is not subscribed
// to does nothing.
func (t *Table) Unsubscribe(w Worker, m Match) {
	ws := t.workers[w]
	if ws == nil {
		return
	}
	if !t.dropSub(ws, m) {
		return
	}
	t.chunk = replayChunk
	t.forEachCandidate(m, ws, func(r *route.Route) {
		if t.coveredElsewhere(ws, r, m) {
			return
		}
		t.push(ws, Event{Kind: Withdraw, Route: r})
	})
	t.flush()
	t.lastLocal(ws, m)
}

// dropSub removes the subscription from the indexes (without hooks or
// withdraws). It reports whether ws was subscribed to m.
func (t *Table) dropSub(ws *workerState, m Match) bool {
	if _, ok := ws.subs[m]; !ok {
		return false
	}
	delete(ws.subs, m)
	t.c.subs--
	ms := t.matchState(m, false)
	if ms == nil {
		return true
	}
	if i := slices.Index(ms.workers, ws); i >= 0 {
		last := len(ms.workers) - 1
		ms.workers[i] = ms.workers[last]
		ms.workers[last] = nil
		ms.workers = ms.workers[:last]
	}
	if !ws.peer {
		ms.local--
	}
	if len(ms.workers) == 0 {
		t.dropMatchState(m)
	}
	return true
}

// lastLocal fires the last-local-subscriber hook if ws was the last local
// subscriber of m (called after dropSub).
func (t *Table) lastLocal(ws *workerState, m Match) {
	if ws.peer || m.RT == route.RTAny || t.hook == nil {
		return
	}
	if ms := t.matchState(m, false); ms == nil || ms.local == 0 {
		t.hook.LastLocalSubscriber(m)
	}
}

// Cleanup withdraws every route published by w (delivering the withdraws
// to interested workers), drops all of w's subscriptions (firing
// last-local-subscriber hooks; w itself is not sent withdraws) and
// unregisters w. Later publishes with w's source are ignored.
func (t *Table) Cleanup(w Worker) {
	ws := t.workers[w]
	if ws == nil {
		return
	}
	t.chunk = replayChunk
	for _, ft := range ws.tables {
		fs := t.family(ft.fam, false)
		for r := range ft.routes.all() {
			t.dispatchWithdraw(r)
			t.unindex(r, rsHash(r.Key))
			fs.count--
			t.countRoute(r, -1)
		}
		delete(fs.sources, ws)
	}
	ws.tables = nil
	t.flush()
	subs := make([]Match, 0, len(ws.subs))
	for m := range ws.subs {
		subs = append(subs, m)
	}
	slices.SortFunc(subs, compareMatch)
	for _, m := range subs {
		t.dropSub(ws, m)
		t.lastLocal(ws, m)
	}
	delete(t.workers, w)
	delete(t.bySource, ws.src)
	t.c.workers--
}

// coveredElsewhere reports whether ws gets r through a subscription other
// than m.
func (t *Table) coveredElsewhere(ws *workerState, r *route.Route, m Match) bool {
	if len(ws.subs) == 0 || (len(ws.subs) == 1 && hasSub(ws, m)) {
		return false
	}
	rts := matchRTs(r)
	for _, f := range [2]route.Family{r.Family, route.FamilyAny} {
		if o := (Match{Family: f, RT: route.RTAny}); o != m && hasSub(ws, o) {
			return true
		}
		for _, rt := range rts {
			if o := (Match{Family: f, RT: rt}); rt != route.RTAny && o != m && hasSub(ws, o) {
				return true
			}
		}
	}
	return false
}

func hasSub(ws *workerState, m Match) bool {
	_, ok := ws.subs[m]
	return ok
}

// matchRTs returns the RTs a route is matched on: its two-octet-AS route
// targets, none for RTC routes (their NLRI holds an RT, but they are not
// tagged with it: they match only (rtc,*) and (*,*)).
func matchRTs(r *route.Route) []route.RT {
	if r.Family == route.FamilyRTC {
		return nil
	}
	return r.RTs()
}

// forEachCandidate calls fn for every stored route matching m that ws may
// receive (not its own, not peer→peer). Each route is visited once.
func (t *Table) forEachCandidate(m Match, ws *workerState, fn func(*route.Route)) {
	eligible := func(r *route.Route) {
		if r.Source != ws.src {
			fn(r)
		}
	}
	if m.RT != route.RTAny {
		for _, fs := range t.fams {
			if m.Family != route.FamilyAny && fs.fam != m.Family {
				continue
			}
			for p, idx := range fs.byRT {
				if p == 1 && ws.peer {
					continue
				}
				if set := idx[m.RT]; set != nil {
					for r := range set.all() {
						eligible(r)
					}
				}
			}
		}
		return
	}
	for _, fs := range t.fams {
		if m.Family != route.FamilyAny && fs.fam != m.Family {
			continue
		}
		for src := range fs.sources {
			if src == ws || (src.peer && ws.peer) {
				continue
			}
			if ft := t.table(src, fs.fam, false); ft != nil {
				for r := range ft.routes.all() {
					fn(r)
				}
			}
		}
	}
}

// push queues ev for ws; with chunking on, full buffers are delivered at once.
func (t *Table) push(ws *workerState, ev Event) {
	if len(ws.pending) == 0 {
		t.touched = append(t.touched, ws)
	}
	ws.pending = append(ws.pending, ev)
	if t.chunk > 0 && len(ws.pending) >= t.chunk {
		t.deliver(ws)
	}
}

// deliver hands ws its pending events now.
func (t *Table) deliver(ws *workerState) {
	if len(ws.pending) == 0 {
		return
	}
	ws.w.Deliver(ws.pending)
	clear(ws.pending)
	if cap(ws.pending) > maxKeptPending {
		ws.pending = nil
	} else {
		ws.pending = ws.pending[:0]
	}
}

// flush delivers every pending event, one Deliver call per worker.
func (t *Table) flush() {
	for i, ws := range t.touched {
		t.deliver(ws)
		t.touched[i] = nil
	}
	t.touched = t.touched[:0]
	t.chunk = 0
}
