package engine

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Message buffers: the loop and the producers alternate two buffers. While
// messages keep coming, buffers of up to maxKeptQueue messages are reused
// (a burst of UPDATEs queues one message per UPDATE: reallocating them
// would be most of the engine's garbage); once the queue has stayed empty
// for idleTrimDelay, buffers larger than idleKeptQueue are dropped, so an
// idle engine holds no burst-sized buffer (maxKeptQueue messages are 5 MB).
const (
	maxKeptQueue  = 1 << 16
	idleKeptQueue = 1 << 10
	idleTrimDelay = 100 * time.Millisecond
)

// Engine runs a Table in one goroutine (Run). Its methods may be called
// from any goroutine: they enqueue a message on an unbounded FIFO queue
// (a mutex held only for an append) and return, so callers never wait for
// route processing; messages from one goroutine are processed in the order
// they were enqueued. Sync, Snapshot and Subscriptions wait for the loop to
// reach their message; Stats reads counters published atomically by the
// loop and never waits.
//
// Read-only views: Snapshot copies the routes of one family on the loop
// (O(routes of that family) pointer copies, nothing else is held), so the
// looking glass never blocks route processing for longer than that copy.
type Engine struct {
	log   *slog.Logger
	table *Table

	mu    sync.Mutex
	queue []message
	wake  chan struct{}
	done  chan struct{} // closed when Run returns

	regMu   sync.Mutex
	sources map[Worker]*route.Source
	nextID  atomic.Uint32

	stats     atomic.Pointer[Stats]
	lastStats counters
}

type msgKind uint8

const (
	msgRegister msgKind = iota + 1
	msgPublish
	msgSubscribe
	msgUnsubscribe
	msgCleanup
	msgHook
	msgSync
	msgSnapshot
	msgSubscriptions
	msgResend
	msgCall
)

// message is one queued request for the loop: 80 bytes, the fields of
// rare requests being behind x.
type message struct {
	kind   msgKind
	w      Worker
	src    *route.Source
	m      Match
	events []Event
	x      *extra
}

// extra holds the arguments of rare requests.
type extra struct {
	fam     route.Family
	hook    LocalSubscriptionHook
	reply   chan struct{}
	routes  *[]*route.Route
	matches *[]Match
	fn      func()
}

// New returns an engine; start it with Run.
func New(log *slog.Logger) *Engine {
	if log == nil {
		log = slog.Default()
	}
	t := NewTable(nil)
	t.SetLogger(log)
	e := &Engine{
		log:     log.With("component", "engine"),
		table:   t,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		sources: make(map[Worker]*route.Source),
	}
	e.stats.Store(&Stats{Families: map[route.Family]int64{}})
	return e
}

// Run is the engine loop: it processes queued messages until ctx is done.
// Run must be called once. Messages still queued when ctx is done are
// dropped; Sync, Snapshot and Subscriptions return at once after Run
// returned.
func (e *Engine) Run(ctx context.Context) {
	defer close(e.done)
	var batch []message
	idle := time.NewTimer(idleTrimDelay)
	idle.Stop()
	for {
		var large bool
		batch, large = e.take(batch)
		if len(batch) == 0 {
			if large {
				idle.Reset(idleTrimDelay)
			}
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
			case <-idle.C:
				batch = e.trim(batch)
			}
			idle.Stop()
			continue
		}
		for i := range batch {
			if i%64 == 0 && ctx.Err() != nil {
				return
			}
			e.handle(&batch[i])
			batch[i] = message{}
		}
		if cap(batch) > maxKeptQueue {
			batch = nil
		}
		e.publishStats()
	}
}

// take returns the queued messages, giving the producers batch (emptied)
// as their next buffer; large tells whether one of the two buffers is
// larger than idleKeptQueue (see trim).
func (e *Engine) take(batch []message) (taken []message, large bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	batch, e.queue = e.queue, batch[:0]
	return batch, cap(batch) > idleKeptQueue || cap(e.queue) > idleKeptQueue
}

// trim drops the buffers larger than idleKeptQueue (a past backlog's),
// the loop's (batch, empty) and, if nothing was queued meanwhile, the
// producers'. It returns the loop's buffer.
func (e *Engine) trim(batch []message) []message {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 && cap(e.queue) > idleKeptQueue {
		e.queue = nil
	}
	if cap(batch) > idleKeptQueue {
		return nil
	}
	return batch
}

func (e *Engine) handle(msg *message) {
	t := e.table
	switch msg.kind {
	case msgRegister:
		t.register(msg.w, msg.src)
	case msgPublish:
		t.Publish(msg.src, msg.events)
	case msgSubscribe:
		t.Subscribe(msg.w, msg.m)
	case msgUnsubscribe:
		t.Unsubscribe(msg.w, msg.m)
	case msgResend:
		t.Resend(msg.w, msg.m)
	case msgCall:
		msg.x.fn()
	case msgCleanup:
		t.Cleanup(msg.w)
	case msgHook:
		t.SetHook(msg.x.hook)
	case msgSync:
		e.publishStats()
		close(msg.x.reply)
	case msgSnapshot:
		*msg.x.routes = t.Routes(msg.x.fam)
		close(msg.x.reply)
	case msgSubscriptions:
		*msg.x.matches = t.Subscriptions(msg.w)
		close(msg.x.reply)
	}
}

// publishStats stores a fresh Stats for readers if anything changed.
func (e *Engine) publishStats() {
	if e.table.c == e.lastStats {
		return
	}
	e.lastStats = e.table.c
	s := e.table.Stats()
	e.stats.Store(&s)
}

func (e *Engine) enqueue(msg message) {
	e.mu.Lock()
	e.queue = append(e.queue, msg)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// call enqueues msg and waits until the loop has processed it; it reports
// false if the engine stopped first.
func (e *Engine) call(msg message) bool {
	if msg.x == nil {
		msg.x = &extra{}
	}
	msg.x.reply = make(chan struct{})
	e.enqueue(msg)
	select {
	case <-msg.x.reply:
		return true
	case <-e.done:
		return false
	}
}

// SetLocalSubscriptionHook sets the hook told about first/last local
// subscribers (call it before the first Subscribe; matches subscribed
// earlier are not reported).
func (e *Engine) SetLocalSubscriptionHook(h LocalSubscriptionHook) {
	e.enqueue(message{kind: msgHook, x: &extra{hook: h}})
}

// Register registers w and returns its route source (the same one if w is
// already registered). Safe from any goroutine. Worker values must be
// comparable (normally pointers).
func (e *Engine) Register(w Worker) *route.Source {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	if src := e.sources[w]; src != nil {
		return src
	}
	src := &route.Source{Name: w.Name(), Peer: w.IsPeer(), ID: e.nextID.Add(1)}
	e.sources[w] = src
	e.enqueue(message{kind: msgRegister, w: w, src: src})
	return src
}

// Publish enqueues a batch of events from src (see Table.Publish). The
// slice is copied; each event's Route.Source must be src.
func (e *Engine) Publish(src *route.Source, events []Event) {
	if len(events) == 0 {
		return
	}
	e.enqueue(message{kind: msgPublish, src: src, events: slices.Clone(events)})
}

// Subscribe enqueues a subscription of w to m (see Table.Subscribe),
// registering w first if needed.
func (e *Engine) Subscribe(w Worker, m Match) {
	e.Register(w)
	e.enqueue(message{kind: msgSubscribe, w: w, m: m})
}

// Call enqueues fn to run on the engine goroutine after everything
// enqueued before it: deliveries caused by earlier messages (replays of
// earlier subscriptions, for instance) have been made when fn runs. fn
// must not block nor call the engine's synchronous methods.
func (e *Engine) Call(fn func()) {
	e.enqueue(message{kind: msgCall, x: &extra{fn: fn}})
}

// Resend enqueues a replay to w of the routes it gets through its
// subscription to m (see Table.Resend).
func (e *Engine) Resend(w Worker, m Match) {
	e.enqueue(message{kind: msgResend, w: w, m: m})
}

// Unsubscribe enqueues the removal of w's subscription to m (see
// Table.Unsubscribe).
func (e *Engine) Unsubscribe(w Worker, m Match) {
	e.enqueue(message{kind: msgUnsubscribe, w: w, m: m})
}

// Cleanup enqueues the withdrawal of all of w's routes, the removal of its
// subscriptions and its unregistration (see Table.Cleanup). Registering w
// again afterwards gives it a new source.
func (e *Engine) Cleanup(w Worker) {
	e.regMu.Lock()
	defer e.regMu.Unlock()
	delete(e.sources, w)
	e.enqueue(message{kind: msgCleanup, w: w})
}

// Sync waits until every message enqueued before it has been processed
// (and Stats reflects them). It must not be called from a Deliver or a
// hook (the engine goroutine) and returns at once if the engine stopped.
func (e *Engine) Sync() { e.call(message{kind: msgSync}) }

// Stats returns the counters as of the last processed batch of messages.
// It never waits for the engine.
func (e *Engine) Stats() Stats {
	s := *e.stats.Load()
	s.Families = maps.Clone(s.Families)
	return s
}

// Snapshot returns a copy of the stored routes of fam (all families for
// FamilyAny), in no particular order, or nil if the engine stopped.
func (e *Engine) Snapshot(fam route.Family) []*route.Route {
	var out []*route.Route
	e.call(message{kind: msgSnapshot, x: &extra{fam: fam, routes: &out}})
	return out
}

// Subscriptions returns w's subscriptions sorted by family then RT, or nil
// if the engine stopped.
func (e *Engine) Subscriptions(w Worker) []Match {
	var out []Match
	e.call(message{kind: msgSubscriptions, w: w, x: &extra{matches: &out}})
	return out
}
