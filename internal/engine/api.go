// Package engine is the route table manager (RTM): publish/subscribe of
// routes keyed by (family, route target), as upstream's RouteTableManager
// (reference §4.2), with RT-Constraint hooks (RFC 4684) and indexes so that
// no event scans all routes, all workers or all instances.
//
// Workers (VPN instances, BGP peer workers, the BGP manager) register with
// the engine and get a *route.Source. They publish advertise/withdraw events
// and subscribe to Matches. The engine owns its tables in one goroutine
// (Run); every other goroutine talks to it through methods that enqueue
// messages. Delivery to a worker never blocks the engine: Worker.Deliver
// must enqueue and return.
package engine

import "github.com/bagpipe-go/bagpipe/internal/route"

// EventKind says whether an event advertises or withdraws a route.
type EventKind uint8

// Event kinds.
const (
	Advertise EventKind = iota + 1
	Withdraw
)

func (k EventKind) String() string {
	if k == Advertise {
		return "advertise"
	}
	return "withdraw"
}

// Event is a route advertisement or withdrawal.
type Event struct {
	Kind  EventKind
	Route *route.Route
	// Replaced is set by the engine on Advertise events delivered to
	// workers when the route replaces an earlier route with the same
	// (Source, Family, Key) that this worker was also given.
	Replaced *route.Route
}

// Match is a subscription key: a family (or FamilyAny) and an RT (or RTAny).
type Match struct {
	Family route.Family
	RT     route.RT
}

// String renders "match:<family>,<rt>" as upstream's looking glass does.
func (m Match) String() string { return "match:" + m.Family.String() + "," + m.RT.String() }

// Worker receives route events from the engine.
type Worker interface {
	// Name is the worker name ("EVI-1", "BGP-192.0.2.1").
	Name() string
	// IsPeer is true for BGP peer workers: routes from a peer are never
	// delivered to another peer.
	IsPeer() bool
	// Deliver hands a batch of events to the worker. It must not block
	// and must not retain the slice after returning (copy if needed).
	Deliver(events []Event)
}

// LocalSubscriptionHook is told when the first local (non-peer) worker
// subscribes to a match and when the last one goes. The BGP manager uses it
// to originate and withdraw RT-Constraint routes. Calls happen on the engine
// goroutine and must not call back into the engine synchronously except
// through methods that enqueue (Publish).
type LocalSubscriptionHook interface {
	FirstLocalSubscriber(m Match)
	LastLocalSubscriber(m Match)
}

// The engine's public methods (implemented in engine.go) — the contract the
// VPN layer and the BGP layer code against:
//
//	func New(log *slog.Logger) *Engine
//	func (e *Engine) Run(ctx context.Context)            // the engine loop; returns when ctx is done
//	func (e *Engine) SetLocalSubscriptionHook(h LocalSubscriptionHook) // before Run
//	func (e *Engine) Register(w Worker) *route.Source     // safe from any goroutine
//	func (e *Engine) Publish(src *route.Source, events []Event) // enqueue; events' Route.Source must be src
//	func (e *Engine) Subscribe(w Worker, m Match)
//	func (e *Engine) Unsubscribe(w Worker, m Match)
//	func (e *Engine) Cleanup(w Worker)   // withdraw all routes of w, drop its subscriptions, unregister
//	func (e *Engine) Sync()              // wait until everything enqueued before has been processed (tests)
//	func (e *Engine) Stats() Stats       // counters, lock-free (atomics)
//	func (e *Engine) Snapshot(fam route.Family) []*route.Route // copy of routes of a family (looking glass), via the loop
//	func (e *Engine) Subscriptions(w Worker) []Match
//
// For benchmarks and deterministic tests the same processing is available
// synchronously on a Table (the loop's state) without goroutines:
//
//	func NewTable(hook LocalSubscriptionHook) *Table
//	func (t *Table) Publish(src *route.Source, events []Event)
//	func (t *Table) Subscribe(w Worker, m Match) ... (same set of methods)
