package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

// Port statuses reported to the controller.
const (
	StatusActive = "ACTIVE"
	StatusDown   = "DOWN"
)

// Config configures an Agent.
type Config struct {
	// Controller is the controller's client.
	Controller *ctlclient.Client
	// Host is the host name whose attachments the agent follows.
	Host string
	// BGP is the local bagpipe-bgp's client.
	BGP *BGPClient
	// PingInterval is how often /ping is polled while bagpipe-bgp answers
	// (default 10 s); while it does not, polls back off up to MaxBackoff.
	PingInterval time.Duration
	// MaxBackoff caps retry delays (default 10 s).
	MaxBackoff time.Duration
	// WatchTimeout bounds one watch request (default 60 s): the agent then
	// watches again from its last revision, which also detects a
	// controller that vanished without closing the connection.
	WatchTimeout time.Duration
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// Agent follows a host's attachments and reconciles bagpipe-bgp with them.
type Agent struct {
	cfg Config
	log *slog.Logger

	// Inputs of the reconcile loop.
	feedc   chan feedMsg
	pingc   chan pingMsg
	pingNow chan struct{}

	rep *reporter
}

// feedMsg is a full listing (snapshot) or one watch line.
type feedMsg struct {
	snapshot *ctlclient.HostAttachments
	line     *ctlclient.FeedLine
}

// pingMsg is one /ping result.
type pingMsg struct {
	value string
	err   error
}

// New returns an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Controller == nil || cfg.BGP == nil || cfg.Host == "" {
		return nil, errors.New("agent: Controller, BGP and Host are required")
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.WatchTimeout <= 0 {
		cfg.WatchTimeout = 60 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	log := cfg.Log.With("component", "agent", "host", cfg.Host)
	a := &Agent{
		cfg: cfg, log: log,
		feedc:   make(chan feedMsg, 16),
		pingc:   make(chan pingMsg, 1),
		pingNow: make(chan struct{}, 1),
	}
	a.rep = newReporter(cfg.Controller, cfg.MaxBackoff, log)
	return a, nil
}

// Run runs the agent until ctx ends; it returns nil then.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){a.follow, a.pinger, a.rep.run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	a.reconcileLoop(ctx)
	wg.Wait()
	return nil
}

// backoff is an exponential back-off with jitter, from 100 ms to max.
type backoff struct {
	max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = 100 * time.Millisecond
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	// Jitter: between half and all of the delay.
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d or until ctx ends (false then).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// follow lists the host's attachments, then watches from the listed
// revision, resuming from the last revision received after a
// disconnection and listing again when the controller says the revision is
// gone (410) or unknown (400: a controller with new storage).
func (a *Agent) follow(ctx context.Context) {
	bo := backoff{max: a.cfg.MaxBackoff}
	var rev int64
	listed := false
	for ctx.Err() == nil {
		if !listed {
			ha, err := a.cfg.Controller.HostAttachments(ctx, a.cfg.Host)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				d := bo.next()
				a.log.Warn("cannot list the attachments; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
				sleep(ctx, d)
				continue
			}
			a.log.Info("attachments listed", "revision", ha.Revision, "ports", len(ha.Ports))
			select {
			case a.feedc <- feedMsg{snapshot: ha}:
			case <-ctx.Done():
				return
			}
			rev, listed = ha.Revision, true
			bo.reset()
		}
		wctx, cancel := context.WithTimeout(ctx, a.cfg.WatchTimeout+30*time.Second)
		err := a.cfg.Controller.WatchHostAttachments(wctx, a.cfg.Host, rev, int(a.cfg.WatchTimeout/time.Second), func(l ctlclient.FeedLine) error {
			select {
			case a.feedc <- feedMsg{line: &l}:
			case <-ctx.Done():
				return ctx.Err()
			}
			rev = l.Revision
			bo.reset()
			return nil
		})
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			// The long poll ended: watch again from rev.
		case ctlclient.IsStatus(err, http.StatusGone), ctlclient.IsStatus(err, http.StatusBadRequest):
			a.log.Warn("the controller cannot resume the feed from our revision: listing again", "revision", rev, "err", err)
			listed = false
		default:
			d := bo.next()
			a.log.Warn("attachment feed interrupted; resuming", "revision", rev, "err", err, "retry_in", d.Round(time.Millisecond))
			sleep(ctx, d)
		}
	}
}

// pinger polls bagpipe-bgp's /ping: every PingInterval while it answers,
// with back-off while it does not, and at once when the reconcile loop
// asks (a request failed).
func (a *Agent) pinger(ctx context.Context) {
	bo := backoff{max: a.cfg.MaxBackoff}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := a.cfg.BGP.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		select {
		case a.pingc <- pingMsg{value: v, err: err}:
		case <-ctx.Done():
			return
		}
		wait := a.cfg.PingInterval
		if err != nil {
			wait = bo.next()
		} else {
			bo.reset()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-a.pingNow:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// state is what the reconcile loop owns.
type state struct {
	desired map[string][]Attachment
	applied map[string][]Attachment
	// rejected holds, by port, the desired attachments bagpipe-bgp refused
	// (4xx): not sent again until they change or bagpipe-bgp restarts.
	rejected map[string][]Attachment
	// bgpUp says whether bagpipe-bgp answered its last request; ping is
	// its last /ping value ("" never seen).
	bgpUp bool
	ping  string
	// known are the ports whose status the agent manages.
	known map[string]bool
	// listed says whether the feed's first listing arrived; adopt that
	// bagpipe-bgp's endpoints must be read (a new /ping value): stale
	// ones are detached once the listing is there.
	listed, adopt bool
}

// reconcileLoop applies feed and ping news and reconciles bagpipe-bgp.
func (a *Agent) reconcileLoop(ctx context.Context) {
	s := &state{desired: map[string][]Attachment{}, applied: map[string][]Attachment{},
		rejected: map[string][]Attachment{}, known: map[string]bool{}}
	bo := backoff{max: a.cfg.MaxBackoff}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-a.feedc:
			a.applyFeed(s, m)
		case p := <-a.pingc:
			a.applyPing(s, p)
		case <-retry.C:
		}
		if !s.bgpUp {
			a.reportStatuses(s)
			continue
		}
		if err := a.reconcile(ctx, s); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.next()
			a.log.Warn("bagpipe-bgp reconciliation incomplete; retrying", "err", err, "retry_in", d.Round(time.Millisecond))
			retry.Reset(d)
		} else {
			bo.reset()
		}
		a.reportStatuses(s)
	}
}

// applyFeed updates the desired attachments.
func (a *Agent) applyFeed(s *state, m feedMsg) {
	if m.snapshot != nil {
		s.listed = true
		s.desired = map[string][]Attachment{}
		for _, p := range m.snapshot.Ports {
			a.setDesired(s, p.PortID, p.Attachments)
		}
		return
	}
	for _, ev := range m.line.Events {
		switch ev.Type {
		case "put":
			a.setDesired(s, ev.PortID, ev.Attachments)
		case "delete":
			delete(s.desired, ev.PortID)
		default:
			a.log.Warn("unknown feed event type: ignored", "type", ev.Type, "port", ev.PortID)
		}
	}
}

// setDesired parses a port's attachments; one that is not an attachment
// is left out (and logged): the agent sends nothing it cannot identify.
func (a *Agent) setDesired(s *state, port string, raws []json.RawMessage) {
	var l []Attachment
	for _, r := range raws {
		at, err := ParseAttachment(r)
		if err != nil {
			a.log.Error("ignoring a malformed attachment from the controller", "port", port, "err", err)
			continue
		}
		l = append(l, at)
	}
	if len(l) == 0 {
		delete(s.desired, port)
		return
	}
	s.desired[port] = l
	s.known[port] = true
}

// applyPing handles a /ping result: a new value (a restart, or the first
// contact) means bagpipe-bgp has none of our attachments that we know of:
// everything is sent again.
func (a *Agent) applyPing(s *state, p pingMsg) {
	if p.err != nil {
		if s.bgpUp {
			a.log.Warn("bagpipe-bgp is unreachable: its ports are reported DOWN", "err", p.err)
		}
		s.bgpUp = false
		return
	}
	if p.value != s.ping {
		if s.ping == "" {
			a.log.Info("bagpipe-bgp successfully detected: sending every attachment", "ping", p.value)
		} else {
			a.log.Warn("bagpipe-bgp restart detected: sending every attachment again", "ping", p.value, "previous", s.ping)
		}
		s.ping = p.value
		s.adopt = true
		s.applied = map[string][]Attachment{}
		s.rejected = map[string][]Attachment{}
	} else if !s.bgpUp {
		a.log.Info("bagpipe-bgp is reachable again (same process)")
	}
	s.bgpUp = true
}

// reconcile carries out Reconcile's actions. A refused attach (4xx) is
// not retried until it changes; a refused detach means the endpoint is
// gone. A failed action (5xx) skips the rest of its port's actions and is
// retried later; if bagpipe-bgp cannot be reached at all, reconcile stops
// and asks the pinger to check it now.
func (a *Agent) reconcile(ctx context.Context, s *state) error {
	want := map[string][]Attachment{}
	for port, l := range s.desired {
		if r, ok := s.rejected[port]; ok && sameAttachments(r, l) {
			continue
		}
		delete(s.rejected, port)
		want[port] = l
	}
	if s.adopt && s.listed {
		eps, err := a.cfg.BGP.Endpoints(ctx)
		var unreachable *UnreachableError
		switch {
		case errors.As(err, &unreachable) || ctx.Err() != nil:
			return a.bgpFailed(ctx, s, fmt.Errorf("reading bagpipe-bgp's endpoints: %w", err))
		case err != nil:
			// A looking glass the agent cannot read must not stop
			// reconciliation: only stale endpoints stay.
			a.log.Warn("cannot read bagpipe-bgp's endpoints: endpoints of ports removed while the agent was stopped are left in place", "err", err)
			eps = nil
		}
		for port, l := range Stale(eps, s.desired) {
			a.log.Info("bagpipe-bgp has endpoints of a port this host no longer has: detaching them", "port", port, "endpoints", len(l))
			s.applied[port] = append(s.applied[port], l...)
			s.known[port] = true
		}
		s.adopt = false
	}
	var errs []error
	failed := map[string]bool{}
	for _, act := range Reconcile(want, s.applied) {
		if failed[act.PortID] {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 60*time.Second)
		var err error
		if act.Op == OpAttach {
			err = a.cfg.BGP.Attach(actx, act.Body())
		} else {
			err = a.cfg.BGP.Detach(actx, act.Body())
		}
		cancel()
		var unreachable *UnreachableError
		switch rej, rejected := isRejected(err); {
		case err == nil:
			a.log.Info("port "+string(act.Op)+"ed", "port", act.PortID, "vpn_type", act.Attachment.VPNType)
			a.log.Debug(string(act.Op)+" body", "port", act.PortID, "body", string(act.Body()))
			Record(s.applied, act)
		case rejected && act.Op == OpDetach:
			// bagpipe-bgp answers 4xx for an unknown instance or
			// endpoint: nothing left to remove.
			a.log.Warn("bagpipe-bgp refused a detach: considering it detached", "port", act.PortID, "body", string(act.Body()), "err", rej)
			Record(s.applied, act)
		case rejected:
			a.log.Error("bagpipe-bgp refused an attachment: not retrying until it changes", "port", act.PortID, "body", string(act.Body()), "err", rej)
			s.rejected[act.PortID] = s.desired[act.PortID]
			failed[act.PortID] = true
		case errors.As(err, &unreachable) || ctx.Err() != nil:
			return errors.Join(append(errs, a.bgpFailed(ctx, s, fmt.Errorf("%s of port %s: %w", act.Op, act.PortID, err)))...)
		default:
			failed[act.PortID] = true
			errs = append(errs, fmt.Errorf("%s of port %s: %w", act.Op, act.PortID, err))
		}
	}
	return errors.Join(errs...)
}

// bgpFailed handles an error talking to bagpipe-bgp: when it could not
// be reached, it is marked down and the pinger asked to check it now (a
// restart must be noticed before anything is sent again).
func (a *Agent) bgpFailed(ctx context.Context, s *state, err error) error {
	var unreachable *UnreachableError
	if errors.As(err, &unreachable) && ctx.Err() == nil {
		s.bgpUp = false
		select {
		case a.pingNow <- struct{}{}:
		default:
		}
	}
	return err
}

// sameAttachments says whether a and b hold the same attachments, in order.
func sameAttachments(a, b []Attachment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !containsExact(b[i:i+1], a[i]) {
			return false
		}
	}
	return true
}

// reportStatuses sets the status each known port should have: ACTIVE when
// bagpipe-bgp is up and has every desired attachment of the port, DOWN
// otherwise; a port no longer desired is reported DOWN once detached,
// then forgotten.
func (a *Agent) reportStatuses(s *state) {
	ports := make([]string, 0, len(s.known))
	for p := range s.known {
		ports = append(ports, p)
	}
	sort.Strings(ports)
	for _, p := range ports {
		want, desired := s.desired[p]
		switch {
		case desired && s.bgpUp && sameSet(want, s.applied[p]):
			a.rep.set(p, StatusActive, false)
		case desired:
			a.rep.set(p, StatusDown, false)
		case len(s.applied[p]) == 0 || !s.bgpUp:
			a.rep.set(p, StatusDown, true)
			if len(s.applied[p]) == 0 {
				delete(s.known, p)
			}
		}
	}
}

// sameSet says whether a and b hold the same attachments in any order.
func sameSet(a, b []Attachment) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !containsExact(b, x) {
			return false
		}
	}
	return true
}
