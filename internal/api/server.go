// Package api is the bagpipe-bgp REST API (reference §2), a drop-in
// replacement for upstream's pecan application: GET /, GET /ping (restart
// detection), POST /attach_localport and /detach_localport (validated and
// normalised into vpn.AttachRequest / vpn.DetachRequest for the VPN
// manager), and the read-only looking glass under /looking-glass (package
// lg). Bodies are JSON; errors follow pecan's abort() format.
package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/api/lg"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// MaxBodyBytes is the largest attach/detach body accepted (413 above).
const MaxBodyBytes = 1 << 20

// Backend is what the API needs from the VPN manager (*vpn.Manager
// implements it). Attach and Detach may be called concurrently.
type Backend interface {
	// Attach plugs an endpoint; a *vpn.Error is a client mistake.
	Attach(ctx context.Context, req vpn.AttachRequest) error
	// Detach unplugs an endpoint; a *vpn.Error is a client mistake.
	Detach(ctx context.Context, req vpn.DetachRequest) error
	// HasDriver reports whether a dataplane driver is configured for t.
	HasDriver(t vpn.Type) bool
}

// Config configures a Server.
type Config struct {
	// Backend receives attach/detach requests. Required.
	Backend Backend
	// LookingGlass serves /looking-glass; nil answers 404 there.
	LookingGlass *lg.Tree
	// Log is the logger (a "component" attribute is added); nil is
	// slog.Default().
	Log *slog.Logger
}

// Server is the REST API server.
type Server struct {
	backend Backend
	lg      *lg.Tree
	log     *slog.Logger
	ping    int64
	handler http.Handler
}

// New returns a Server. Its /ping value is drawn here, once.
func New(cfg Config) *Server {
	l := cfg.Log
	if l == nil {
		l = slog.Default()
	}
	s := &Server{backend: cfg.Backend, lg: cfg.LookingGlass, log: l.With("component", "api"), ping: newPing()}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", s.handleRoot)
	mux.HandleFunc("/ping", s.handlePing)
	mux.HandleFunc("/attach_localport", s.handleAttach)
	mux.HandleFunc("/detach_localport", s.handleDetach)
	mux.HandleFunc("/looking-glass", s.handleLG)
	mux.HandleFunc("/looking-glass/", s.handleLG)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Upstream (pecan) also routes "/ping/" and "/ping.json".
		p := lg.StripExt(r.URL.Path)
		if len(p) > 1 {
			p = strings.TrimSuffix(p, "/")
		}
		if p != r.URL.Path && (p == "/" || p == "/ping" || p == "/attach_localport" || p == "/detach_localport") {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = p, ""
			mux.ServeHTTP(w, r2)
			return
		}
		lg.WriteError(w, r, http.StatusNotFound, "The resource could not be found.")
	})
	s.handler = mux
	return s
}

// newPing draws the /ping value: positive, 63 bits, never 0 or -1 (the
// Neutron agent's "never seen" and "failed" markers, reference §2.2).
func newPing() int64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err)) // never returns an error on Linux
		}
		if v := int64(binary.BigEndian.Uint64(b[:]) >> 1); v > 0 {
			return v
		}
	}
}

// Ping is the value GET /ping answers for this server's lifetime.
func (s *Server) Ping() int64 { return s.ping }

// Handler is the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until ctx is done, then shuts down gracefully
// (in-flight requests get up to 10 s to finish). It returns nil after a
// shutdown requested through ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			s.log.Warn("REST API shutdown did not complete, closing connections", "error", err)
			_ = srv.Close()
		}
	}()
	s.log.Info("REST API listening", "address", ln.Addr().String())
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return fmt.Errorf("REST API server on %s: %w", ln.Addr(), err)
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// methodNotAllowed answers 405 with an Allow header.
func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	lg.WriteError(w, r, http.StatusMethodNotAllowed,
		fmt.Sprintf("The method %s is not allowed for this resource.", r.Method))
}

func isGet(r *http.Request) bool { return r.Method == http.MethodGet || r.Method == http.MethodHead }

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	writeJSON(w, "{}")
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	if !isGet(r) {
		methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	writeJSON(w, strconv.FormatInt(s.ping, 10))
}

func (s *Server) handleLG(w http.ResponseWriter, r *http.Request) {
	if s.lg == nil {
		if !isGet(r) {
			methodNotAllowed(w, r, "GET, HEAD")
			return
		}
		lg.WriteError(w, r, http.StatusNotFound, "The resource could not be found.")
		return
	}
	s.lg.ServeHTTP(w, r)
}

func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request) {
	s.handlePlug(w, r, "attach_localport", "An error occurred during local port plug to VPN",
		func(ctx context.Context, p params) error {
			req, err := parseAttach(p, s.backend.HasDriver)
			if err != nil {
				return err
			}
			return s.backend.Attach(ctx, req)
		})
}

func (s *Server) handleDetach(w http.ResponseWriter, r *http.Request) {
	s.handlePlug(w, r, "detach_localport", "An error occurred during local port unplug from VPN",
		func(ctx context.Context, p params) error {
			req, err := parseDetach(p, s.backend.HasDriver)
			if err != nil {
				return err
			}
			return s.backend.Detach(ctx, req)
		})
}

// handlePlug is the common part of attach and detach: GET answers {},
// POST reads, validates and forwards the body, and maps errors to status
// codes as upstream does (reference §2.5).
func (s *Server) handlePlug(w http.ResponseWriter, r *http.Request, op, failMsg string,
	do func(context.Context, params) error) {
	switch {
	case isGet(r):
		writeJSON(w, "{}")
		return
	case r.Method != http.MethodPost:
		methodNotAllowed(w, r, "GET, HEAD, POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.log.Warn(op+": request body too large", "limit", MaxBodyBytes)
			lg.WriteError(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("API error: the request body exceeds the limit of %d bytes", MaxBodyBytes))
			return
		}
		s.log.Warn(op+": cannot read request body", "error", err)
		lg.WriteError(w, r, http.StatusBadRequest, errNoDetails.Error())
		return
	}
	p, err := decodeBody(body)
	if err == nil {
		s.log.Info("local port "+strings.TrimSuffix(op, "_localport")+" received", "body", string(body))
		// A client giving up must not abort a plug half-way: the backend
		// gets the request's values but not its cancellation.
		err = do(context.WithoutCancel(r.Context()), p)
	}
	if err == nil {
		writeJSON(w, "null")
		return
	}
	var apiErr *apiError
	var vErr *vpn.Error
	switch {
	case errors.Is(err, errNoDetails):
		s.log.Error(op + ": No local port details received")
		lg.WriteError(w, r, http.StatusBadRequest, errNoDetails.Error())
	case errors.As(err, &apiErr):
		s.log.Warn(op+": API error", "error", apiErr.msg)
		lg.WriteError(w, r, http.StatusBadRequest, "API error: "+apiErr.msg)
	case errors.As(err, &vErr):
		status := vErr.Status
		if status < 400 || status > 599 {
			status = http.StatusBadRequest
		}
		s.log.Warn(op+": API error", "status", status, "error", vErr.Msg)
		lg.WriteError(w, r, status, "API error: "+vErr.Msg)
	default:
		s.log.Error(op+": "+failMsg, "error", err)
		lg.WriteError(w, r, http.StatusInternalServerError, failMsg)
	}
}
