// Package fakerr is a TCP relay that joins exactly two clients face to face,
// so that two BGP speakers that only connect out (as upstream bagpipe-bgp
// does) can form a session "through" it without a route reflector. It is not
// a BGP speaker: it never reads what it copies.
//
// The first client waits; bytes it sends are buffered. When a second client
// connects the buffer is flushed to it and bytes are then copied both ways.
// When either side closes, both are closed and the relay waits for a new
// pair. A client arriving while two are connected is refused (closed at
// once). Upstream's bagpipe-fakerr meant to refuse the third client but its
// check never triggered (reference §8.6, §11); this one does.
package fakerr

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
)

// maxPending bounds what is buffered from the first client before the second
// arrives; beyond it the relay stops reading (TCP flow control pushes back).
const maxPending = 1 << 20

// Relay pairs two TCP clients. Create it with New; it serves one listener.
type Relay struct {
	log *slog.Logger

	mu  sync.Mutex
	cur *pair // the waiting or connected pair; nil when idle
	wg  sync.WaitGroup
}

// pair is one (possibly half-formed) pair of clients.
type pair struct {
	first, second net.Conn
	pending       []byte        // bytes from first not yet sent to second
	paired        chan struct{} // closed when second arrives
	flushed       chan struct{} // closed once pending has been written to second
	closeOnce     sync.Once
}

// New returns a relay that logs to log (a "component" attribute is added).
func New(log *slog.Logger) *Relay {
	if log == nil {
		log = slog.Default()
	}
	return &Relay{log: log.With("component", "fakerr")}
}

// Serve accepts clients on ln until ctx is cancelled or accepting fails. It
// closes ln and any connected clients before returning, and returns nil when
// ctx was cancelled.
func (r *Relay) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer r.wg.Wait()
	defer func() {
		r.mu.Lock()
		p := r.cur
		r.mu.Unlock()
		if p != nil {
			r.closePair(p, "relay stopping")
		}
	}()
	r.log.Info("waiting for two clients", "listen", ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			ln.Close()
			return err
		}
		r.admit(c)
	}
}

// admit places a new client: first of a pair, second of a pair, or refused.
func (r *Relay) admit(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.cur == nil:
		p := &pair{first: c, paired: make(chan struct{}), flushed: make(chan struct{})}
		r.cur = p
		r.log.Info("first client connected; waiting for the second", "client", c.RemoteAddr().String())
		r.wg.Add(1)
		go r.pumpFirst(p)
	case r.cur.second == nil:
		p := r.cur
		p.second = c
		close(p.paired)
		r.log.Info("second client connected; relaying", "first", p.first.RemoteAddr().String(), "second", c.RemoteAddr().String())
		r.wg.Add(2)
		go r.flush(p)
		go r.pumpSecond(p)
	default:
		r.log.Warn("refusing a third client: two are already connected",
			"client", c.RemoteAddr().String(),
			"first", r.cur.first.RemoteAddr().String(), "second", r.cur.second.RemoteAddr().String())
		c.Close()
	}
}

// pumpFirst reads the first client: into pending until the second client
// arrives, then straight to the second client once pending is flushed.
func (r *Relay) pumpFirst(p *pair) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		r.mu.Lock()
		full := p.second == nil && len(p.pending) >= maxPending
		r.mu.Unlock()
		if full {
			<-p.paired // closePair also closes paired when the pair dies alone
		}
		n, err := p.first.Read(buf)
		if n > 0 {
			r.mu.Lock()
			to := p.second
			if to == nil {
				p.pending = append(p.pending, buf[:n]...)
			}
			r.mu.Unlock()
			if to != nil {
				<-p.flushed
				if _, werr := to.Write(buf[:n]); werr != nil {
					r.closePair(p, "write to second client failed: "+werr.Error())
					return
				}
			}
		}
		if err != nil {
			r.closePair(p, "first client closed: "+err.Error())
			return
		}
	}
}

// flush sends what the first client sent before the second arrived.
func (r *Relay) flush(p *pair) {
	defer r.wg.Done()
	defer close(p.flushed)
	r.mu.Lock()
	data := p.pending
	p.pending = nil
	r.mu.Unlock()
	if len(data) == 0 {
		return
	}
	if _, err := p.second.Write(data); err != nil {
		r.closePair(p, "flushing to second client failed: "+err.Error())
		return
	}
	r.log.Debug("flushed bytes buffered from the first client", "bytes", len(data))
}

// pumpSecond copies the second client to the first.
func (r *Relay) pumpSecond(p *pair) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := p.second.Read(buf)
		if n > 0 {
			if _, werr := p.first.Write(buf[:n]); werr != nil {
				r.closePair(p, "write to first client failed: "+werr.Error())
				return
			}
		}
		if err != nil {
			r.closePair(p, "second client closed: "+err.Error())
			return
		}
	}
}

// closePair makes the relay idle again, then closes both clients. The relay
// is idle before the clients see the close, so a client that reconnects
// right after is accepted as the first of a new pair.
func (r *Relay) closePair(p *pair, why string) {
	p.closeOnce.Do(func() {
		r.mu.Lock()
		if r.cur == p {
			r.cur = nil
		}
		second := p.second
		if second == nil {
			close(p.paired) // unblock pumpFirst if it waits for a partner
		}
		r.mu.Unlock()
		attrs := []any{"reason", why, "first", p.first.RemoteAddr().String()}
		if second != nil {
			attrs = append(attrs, "second", second.RemoteAddr().String())
		}
		r.log.Info("pair closed; waiting for two new clients", attrs...)
		p.first.Close()
		if second != nil {
			second.Close()
		}
	})
}
