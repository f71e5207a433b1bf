// Command bagpipe-controller is the Neutron-side half of bagpipe: a
// Neutron v2.0-shaped REST API for networks, subnets and ports, the
// bagpipe ML2 allocations (segmentation id and route targets per network),
// and for each compute host a watchable feed of the bagpipe-bgp
// attachments its agent must make. State lives in etcd: an embedded server
// with a data directory by default, or an external cluster
// (--etcd-endpoints) shared by several controllers.
//
// See internal/controller/README.md for the flags and the API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/controller"
	"github.com/bagpipe-go/bagpipe/internal/controller/alloc"
	"github.com/bagpipe-go/bagpipe/internal/controller/store"
)

func main() {
	if err := run(os.Args[1:]); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "bagpipe-controller:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("bagpipe-controller", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9696", "address:port of the REST API")
	dataDir := fs.String("data-dir", "/var/lib/bagpipe-controller", "data directory of the embedded etcd server")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated client URLs of an external etcd cluster (no embedded server then)")
	clientURL := fs.String("etcd-client-url", "http://127.0.0.1:2379", "client URL of the embedded etcd server (other controllers may use it as --etcd-endpoints)")
	peerURL := fs.String("etcd-peer-url", "http://127.0.0.1:2380", "peer URL of the embedded etcd server")
	prefix := fs.String("etcd-prefix", "/bagpipe/", "prefix of every etcd key")
	asn := fs.String("as-number", strconv.Itoa(controller.DefaultASNumber), "AS number of route targets <as_number>:<nn> (upstream as_number)")
	vnis := fs.String("vni-ranges", "1001:2000", "segmentation ids (VNIs) given to networks, e.g. 1001:2000,5000:5099 (upstream vni_ranges)")
	rtnn := fs.String("rt-nn-ranges", "", "route-target numbers given to networks (upstream rt_nn_ranges), e.g. 100:119,500:519; empty: nn = segmentation id")
	// Upstream's option names work too.
	fs.StringVar(asn, "as_number", *asn, "same as --as-number")
	fs.StringVar(vnis, "vni_ranges", *vnis, "same as --vni-ranges")
	fs.StringVar(rtnn, "rt_nn_ranges", *rtnn, "same as --rt-nn-ranges")
	tokenFile := fs.String("auth-token-file", "", "file holding the bearer token every request must carry (also $BAGPIPE_CONTROLLER_TOKEN); none: no authentication")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (all options are flags, see -h)", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	base := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	log := base.With("component", "bagpipe-controller")
	as, err := strconv.ParseUint(*asn, 10, 32)
	if err != nil || as == 0 {
		return fmt.Errorf("--as-number %q: want an integer between 1 and 4294967295", *asn)
	}
	vr, err := alloc.ParseRanges(*vnis, 1, 1<<24-1)
	if err != nil {
		return fmt.Errorf("--vni-ranges: %w", err)
	}
	var rr alloc.Ranges
	if strings.TrimSpace(*rtnn) != "" {
		if rr, err = alloc.ParseRanges(*rtnn, 0, 1<<32-1); err != nil {
			return fmt.Errorf("--rt-nn-ranges: %w", err)
		}
	}
	token := os.Getenv("BAGPIPE_CONTROLLER_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--auth-token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return fmt.Errorf("--auth-token-file %s is empty", *tokenFile)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	scfg := store.Config{DataDir: *dataDir, ClientURL: *clientURL, PeerURL: *peerURL, Log: base}
	if *endpoints != "" {
		scfg.Endpoints = strings.Split(*endpoints, ",")
	}
	st, err := store.Open(ctx, scfg)
	if err != nil {
		return err
	}
	defer st.Close()
	ctl, err := controller.New(controller.Config{Client: st.Client, Prefix: *prefix, ASNumber: uint32(as),
		VNIRanges: vr, RTNNRanges: rr, Log: base})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: controller.Handler(ctl, token), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "address", ln.Addr().String(), "etcd", strings.Join(append(scfg.Endpoints, st.ClientURL()), ","),
		"vni_ranges", vr.String(), "rt_nn_ranges", rr.String(), "as_number", as, "auth", token != "")
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-st.Err():
		srv.Close()
		return fmt.Errorf("embedded etcd failed: %w", err)
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("REST server failed: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	return nil
}
