// Command bagpipe-agent runs on each compute node next to bagpipe-bgp. It
// follows the node's attachment feed on bagpipe-controller (list, then
// watch, resuming after disconnections) and makes the local bagpipe-bgp
// hold exactly those attachments: it attaches what is missing, detaches
// what is gone, sends everything again when bagpipe-bgp restarted (its
// /ping value changed), and reports each port ACTIVE or DOWN back to the
// controller. While bagpipe-bgp or the controller is unreachable it retries
// with back-off and catches up when they return.
//
// Usage:
//
//	bagpipe-agent [--controller URL] [--token-file FILE] [--host NAME]
//	    [--bagpipe-bgp URL] [--ping-interval 10s] [--log-level info]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/agent"
	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); errors.Is(err, flag.ErrHelp) {
		return
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "bagpipe-agent:", err)
		os.Exit(1)
	}
}

// options are the parsed command-line options.
type options struct {
	controller, tokenFile, host, bgp, logLevel string
	pingInterval                               time.Duration
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	hostname, _ := os.Hostname()
	fs := flag.NewFlagSet("bagpipe-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: bagpipe-agent [flags]\n\n"+
			"Follows this host's attachments on bagpipe-controller and reconciles the local bagpipe-bgp with them.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.controller, "controller", "http://127.0.0.1:9696", "URL of bagpipe-controller")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the controller's token (also $BAGPIPE_CONTROLLER_TOKEN); none: no authentication")
	fs.StringVar(&o.host, "host", hostname, "host name whose ports this agent serves (the ports' binding:host_id)")
	fs.StringVar(&o.bgp, "bagpipe-bgp", "http://127.0.0.1:8082", "URL of the local bagpipe-bgp REST API")
	fs.DurationVar(&o.pingInterval, "ping-interval", 10*time.Second, "how often bagpipe-bgp's /ping is polled to detect restarts")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (all options are flags, see -h)", fs.Arg(0))
	}
	if o.host == "" {
		return nil, errors.New("--host is empty and the host name is unknown: give --host")
	}
	if o.pingInterval <= 0 {
		return nil, fmt.Errorf("--ping-interval %s: want a positive duration such as 10s", o.pingInterval)
	}
	for _, u := range []struct{ flag, v string }{{"--controller", o.controller}, {"--bagpipe-bgp", o.bgp}} {
		if !strings.HasPrefix(u.v, "http://") && !strings.HasPrefix(u.v, "https://") {
			return nil, fmt.Errorf("%s %q: want an http:// or https:// URL", u.flag, u.v)
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	token := os.Getenv("BAGPIPE_CONTROLLER_TOKEN")
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return fmt.Errorf("--token-file %s is empty", o.tokenFile)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	a, err := agent.New(agent.Config{
		Controller:   ctlclient.New(o.controller, token),
		Host:         o.host,
		BGP:          agent.NewBGPClient(o.bgp),
		PingInterval: o.pingInterval,
		Log:          log,
	})
	if err != nil {
		return err
	}
	log.Info("starting", "component", "bagpipe-agent", "host", o.host, "controller", o.controller, "bagpipe_bgp", o.bgp)
	return a.Run(ctx)
}
