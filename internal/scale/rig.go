package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options are the parameters common to every scenario.
type Options struct {
	// Spec says how to run the daemon.
	Spec DaemonSpec
	// Label names the daemon in the report.
	Label string
	// Timeout bounds each wait (routes in the RIB, session up, ...).
	Timeout time.Duration
	// Log receives progress messages.
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Spec.Driver == "" {
		o.Spec.Driver = "dummy"
	}
}

// Rig is a set of daemons, each in its namespace, peering with one RR.
type Rig struct {
	NSs     []*Namespace
	Daemons []*Daemon
	RR      *RR
	// APIUp and Established are when each daemon's API first answered and
	// when its session first came up.
	APIUp, Established []time.Time
	log                *slog.Logger
}

// NewRig creates n namespaces, the reflector and n daemons, and waits for
// their APIs and sessions. On error everything is already cleaned up.
func NewRig(ctx context.Context, o Options, n int) (_ *Rig, err error) {
	r := &Rig{log: o.Log}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	for k := range n {
		ns, err := NewNamespace(k, o.Log)
		if err != nil {
			return nil, err
		}
		r.NSs = append(r.NSs, ns)
	}
	if r.RR, err = NewRR(r.NSs, o.Log); err != nil {
		return nil, err
	}
	for _, ns := range r.NSs {
		d, err := StartDaemon(o.Spec, ns, r.RR.Peer(ns.Local).Port(), o.Log)
		if err != nil {
			return nil, err
		}
		r.Daemons = append(r.Daemons, d)
	}
	for _, d := range r.Daemons {
		t, err := d.WaitAPI(ctx, o.Timeout)
		if err != nil {
			return nil, err
		}
		r.APIUp = append(r.APIUp, t)
	}
	for i, d := range r.Daemons {
		t, err := r.RR.Peer(r.NSs[i].Local).WaitEstablished(ctx, o.Timeout, alive(ctx, d))
		if err != nil {
			return nil, fmt.Errorf("%w; daemon log %s:\n%s", err, d.Log, d.LogTail(2000))
		}
		r.Established = append(r.Established, t)
	}
	return r, nil
}

// alive returns a check that fails when ctx ends or the daemon died.
func alive(ctx context.Context, d *Daemon) func() error {
	return func() error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		return d.Alive()
	}
}

// Close stops the daemons (by PID), the reflector and removes the
// namespaces.
func (r *Rig) Close() error {
	for _, d := range r.Daemons {
		d.Stop()
	}
	if r.RR != nil {
		r.RR.Close()
	}
	var errs []error
	for _, ns := range r.NSs {
		errs = append(errs, ns.Close())
	}
	return errors.Join(errs...)
}

// portNames returns k interface names prefix<i>.
func portNames(prefix string, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// localMAC returns MAC 02:<b>:<i on 32 bits> for local ports.
func localMAC(b byte, i int) string {
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", b, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
}

// localIP returns 172.<b>.<i/254>.<i%254+1>.
func localIP(b byte, i int) string {
	return fmt.Sprintf("172.%d.%d.%d", b, i/254, i%254+1)
}

func errorsJoin(errs ...error) error { return errors.Join(errs...) }
