package agent

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

// reporter sends port statuses to the controller in the background, so
// that a controller outage never holds up bagpipe-bgp's reconciliation:
// it keeps the latest wanted status of each port and sends those that
// differ from what the controller last acknowledged, retrying with
// back-off.
type reporter struct {
	ctl *ctlclient.Client
	max time.Duration
	log *slog.Logger

	mu     sync.Mutex
	want   map[string]string
	sent   map[string]string
	forget map[string]bool // drop the port once its status is sent
	kick   chan struct{}
}

func newReporter(ctl *ctlclient.Client, max time.Duration, log *slog.Logger) *reporter {
	return &reporter{ctl: ctl, max: max, log: log, want: map[string]string{}, sent: map[string]string{},
		forget: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// set records the status port should have; forget drops the port once that
// status is sent.
func (r *reporter) set(port, status string, forget bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.want[port] == status && r.forget[port] == forget {
		return
	}
	r.want[port] = status
	if forget {
		r.forget[port] = true
	} else {
		delete(r.forget, port)
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// pending returns the ports whose wanted status is not sent yet, sorted.
func (r *reporter) pending() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for p, s := range r.want {
		if r.sent[p] != s {
			out[p] = s
		} else if r.forget[p] {
			delete(r.want, p)
			delete(r.sent, p)
			delete(r.forget, p)
		}
	}
	return out
}

// done records that the controller has status for port.
func (r *reporter) done(port, status string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent[port] = status
	if r.forget[port] && r.want[port] == status {
		delete(r.want, port)
		delete(r.sent, port)
		delete(r.forget, port)
	}
}

func (r *reporter) run(ctx context.Context) {
	bo := backoff{max: r.max}
	for {
		failed := false
		p := r.pending()
		ports := make([]string, 0, len(p))
		for port := range p {
			ports = append(ports, port)
		}
		sort.Strings(ports)
		for _, port := range ports {
			st := p[port]
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := r.ctl.SetPortStatus(rctx, port, st)
			cancel()
			if ctx.Err() != nil {
				return
			}
			switch {
			case err == nil:
				r.log.Info("port status reported", "port", port, "status", st)
				r.done(port, st)
			case ctlclient.IsStatus(err, http.StatusNotFound):
				// The port was deleted: nothing to report any more.
				r.log.Debug("port gone from the controller: status not reported", "port", port)
				r.mu.Lock()
				delete(r.want, port)
				delete(r.sent, port)
				delete(r.forget, port)
				r.mu.Unlock()
			default:
				r.log.Warn("cannot report a port status; will retry", "port", port, "status", st, "err", err)
				failed = true
			}
			if failed {
				break
			}
		}
		var wait <-chan time.Time
		var t *time.Timer
		if failed {
			t = time.NewTimer(bo.next())
			wait = t.C
		} else {
			bo.reset()
		}
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-wait:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}
