package vpn

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Engine is the part of the route engine the VPN layer uses;
// *engine.Engine implements it. (*engine.Table does too, but it is not safe
// for concurrent use, so it only suits code driving instance states
// synchronously, as the benchmarks do, not a Manager.)
type Engine interface {
	Register(w engine.Worker) *route.Source
	Publish(src *route.Source, events []engine.Event)
	Subscribe(w engine.Worker, m engine.Match)
	Unsubscribe(w engine.Worker, m engine.Match)
	Cleanup(w engine.Worker)
}

// errStopped is returned by requests that reach an instance after it
// stopped; the manager then retries on a fresh instance.
var errStopped = errors.New("VPN instance stopped")

// request is an API operation run on the instance goroutine.
type request struct {
	fn    func() error
	reply chan error
}

// message is an inbox entry: an event batch, a request, or a dataplane
// retry tick.
type message struct {
	events []engine.Event
	req    *request
	retry  bool
}

// retryDelay is how long after a failed dataplane batch the instance
// retries it when no other batch comes first.
const retryDelay = 2 * time.Second

// inbox is an unbounded FIFO: putting never blocks (engine deliveries must
// not block, reference §4.5 / engine contract).
type inbox struct {
	mu     sync.Mutex
	items  []message
	signal chan struct{}
}

func (q *inbox) put(m message) {
	q.mu.Lock()
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *inbox) take() []message {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// instance runs an EVI or a VRF on its own goroutine as an engine
// worker: exactly one of e and v is set.
type instance struct {
	typ     Type
	m       *Manager
	e       *evi
	v       *vrf
	eng     Engine
	q       inbox
	done    chan struct{} // closed when the goroutine exits
	stopped atomic.Bool
	info    atomic.Pointer[InstanceInfo]
	// epMu guards the endpoint bookkeeping (endpoints, their ports and
	// labels) against looking-glass readers: the loop holds it while it
	// runs a request (the only code that changes endpoints) and bumps
	// epGen; readers build InstanceInfo.Ports under RLock (see
	// portsSnapshot), so attaches do not rebuild it each time.
	epMu  sync.RWMutex
	epGen atomic.Uint64
	ports atomic.Pointer[portsSnap] // last Ports built, with its epGen
	// ignoreLog rate-limits "route ignored" warnings (owned by the loop).
	lastWarn   time.Time
	suppressed int
	// failed holds dataplane changes of failed Apply calls, retried
	// (reconciled against the current state) before the next batch or
	// after retryDelay; retryArmed: a retry tick is pending.
	failed     []dataplane.EVIChange
	retryArmed bool
}

// base returns the state shared by both instance kinds.
func (in *instance) base() *instanceBase {
	if in.v != nil {
		return &in.v.instanceBase
	}
	return &in.e.instanceBase
}

// Name is the worker name ("EVI-3", "VRF-1").
func (in *instance) Name() string { return in.base().name }

// IsPeer is false: VPN instances are local workers.
func (in *instance) IsPeer() bool { return false }

// Deliver queues a copy of the events for the instance goroutine.
func (in *instance) Deliver(events []engine.Event) {
	if in.stopped.Load() || len(events) == 0 {
		return
	}
	in.q.put(message{events: append([]engine.Event(nil), events...)})
}

// do runs fn on the instance goroutine and waits for its result.
func (in *instance) do(ctx context.Context, fn func() error) error {
	if in.stopped.Load() {
		return errStopped
	}
	r := &request{fn: fn, reply: make(chan error, 1)}
	in.q.put(message{req: r})
	select {
	case err := <-r.reply:
		return err
	case <-in.done:
		// The goroutine exited; the request may have run just before.
		select {
		case err := <-r.reply:
			return err
		default:
			return errStopped
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (in *instance) warnIgnored(reason string, r *route.Route) {
	now := time.Now()
	if now.Sub(in.lastWarn) < 10*time.Second {
		in.suppressed++
		return
	}
	in.base().log.Warn("received route ignored", "reason", reason, "route", r.String(), "from", srcName(r),
		"encaps", r.Attrs.EncapsOrDefault(), "similar_warnings_suppressed", in.suppressed)
	in.lastWarn, in.suppressed = now, 0
}

// run is the instance loop.
func (in *instance) run() {
	defer close(in.done)
	// Dataplane changes of consecutive route-event batches are coalesced
	// into one Apply: a reflector sends one route per UPDATE, so without
	// this a burst of routes became as many one-change netlink rounds.
	// They are flushed before any request (attach, detach, looking glass)
	// and before the loop waits again, so the order of effects is kept.
	var changes []dataplane.EVIChange
	var vrfChanges []dataplane.VRFChange
	pending := false
	flush := func() {
		if !pending {
			return
		}
		in.apply(changes)
		in.applyVRF(vrfChanges)
		changes, vrfChanges = changes[:0], vrfChanges[:0]
		in.publishCounts()
		pending = false
	}
	for range in.q.signal {
		for _, msg := range in.q.take() {
			if in.stopped.Load() {
				if msg.req != nil {
					msg.req.reply <- errStopped
				}
				continue
			}
			if msg.retry {
				flush()
				in.retryArmed = false
				in.retryFailed()
				continue
			}
			if msg.req != nil {
				flush()
				in.epMu.Lock()
				err := msg.req.fn()
				in.epGen.Add(1)
				in.epMu.Unlock()
				in.publishInfo() // before replying: the caller may read it
				msg.req.reply <- err
				continue
			}
			if !pending {
				in.retryFailed()
			}
			pending = true
			if in.v != nil {
				fx := in.v.receive(msg.events)
				vrfChanges = append(vrfChanges, fx.vrfChanges...)
				changes = append(changes, fx.changes...)
				fx.changes, fx.vrfChanges = nil, nil
				in.exec(fx)
			} else {
				changes = in.e.receive(msg.events, changes)
			}
			if len(changes)+len(vrfChanges) >= maxCoalesced {
				flush()
			}
		}
		flush()
		if in.stopped.Load() {
			// Drain requests that raced with the stop, then exit.
			for _, msg := range in.q.take() {
				if msg.req != nil {
					msg.req.reply <- errStopped
				}
			}
			return
		}
	}
}

// maxCoalesced bounds the changes of one coalesced Apply, so the first
// routes of a long burst reach the kernel without waiting for the last.
const maxCoalesced = 4096

func (in *instance) apply(changes []dataplane.EVIChange) {
	if len(changes) == 0 {
		return
	}
	if err := in.e.dp.Apply(changes); err != nil {
		in.e.rt.stats.DataplaneErrors++
		in.e.log.Error("dataplane update failed, will retry", "changes", len(changes), "err", err)
		in.failed = append(in.failed, changes...)
		if !in.retryArmed && !in.stopped.Load() {
			in.retryArmed = true
			time.AfterFunc(retryDelay, func() { in.q.put(message{retry: true}) })
		}
	}
}

// applyVRF programs VRF changes, keeping failed ones for a retry.
func (in *instance) applyVRF(changes []dataplane.VRFChange) {
	if len(changes) == 0 {
		return
	}
	v := in.v
	if err := v.dp.Apply(changes); err != nil {
		v.stats.DataplaneErrors++
		v.log.Error("dataplane update failed, will retry", "changes", len(changes), "err", err)
		v.failed = append(v.failed, changes...)
		if !in.retryArmed && !in.stopped.Load() {
			in.retryArmed = true
			time.AfterFunc(retryDelay, func() { in.q.put(message{retry: true}) })
		}
	}
}

// retryFailed re-applies, as the current state, what failed batches
// touched (before newer batches, so that they apply on top).
func (in *instance) retryFailed() {
	if in.v != nil {
		if len(in.v.failed) > 0 {
			changes := in.v.reconcile(in.v.failed)
			in.v.failed = nil
			in.applyVRF(changes)
		}
		return
	}
	if len(in.failed) == 0 {
		return
	}
	changes := in.e.rt.reconcile(in.failed)
	in.failed = nil
	in.apply(changes)
}

// exec applies effects in the contract order.
func (in *instance) exec(fx effects) {
	for _, m := range fx.unsubscribe {
		in.eng.Unsubscribe(in, m)
	}
	for _, m := range fx.subscribe {
		in.eng.Subscribe(in, m)
	}
	if len(fx.publish) > 0 {
		in.eng.Publish(in.base().src, fx.publish)
	}
	in.apply(fx.changes)
	in.applyVRF(fx.vrfChanges)
}

// attach runs on the loop.
func (in *instance) attach(req *AttachRequest) error {
	var fx effects
	var err error
	if in.v != nil {
		fx, err = in.v.attach(req)
	} else {
		fx, err = in.e.attach(req)
	}
	in.exec(fx)
	if err != nil && len(in.base().endpoints) == 0 && (in.v == nil || in.v.redirectFor == 0) {
		// A new instance whose first plug failed: do not keep it.
		in.shutdown()
	}
	return err
}

// detach runs on the loop.
func (in *instance) detach(req *DetachRequest) error {
	var fx effects
	var empty bool
	var err error
	if in.v != nil {
		fx, empty, _, err = in.v.detach(req)
	} else {
		fx, empty, err = in.e.detach(req)
	}
	in.exec(fx)
	if empty {
		if serr := in.shutdown(); serr != nil {
			err = errors.Join(err, serr)
		}
	}
	return err
}

// shutdown stops the instance (reference §2.4 last endpoint, §5.1
// shutdown): withdraw everything through engine Cleanup, close the
// dataplane, release the identifiers and leave the manager. It runs on
// the loop; later requests get errStopped.
func (in *instance) shutdown() error {
	if in.stopped.Load() {
		return nil
	}
	in.eng.Cleanup(in)
	var err error
	if in.v != nil {
		err = in.v.stop()
	} else {
		err = in.e.stop()
	}
	in.stopped.Store(true)
	in.m.instanceStopped(in)
	in.publishInfo()
	return err
}
