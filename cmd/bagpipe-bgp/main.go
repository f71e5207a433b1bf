// Command bagpipe-bgp is the BGP VPN speaker for compute nodes: a drop-in
// replacement for upstream networking-bagpipe's daemon (same bgp.conf, REST
// API and BGP on the wire). See --help.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/bagpipe-go/bagpipe/internal/api/lg"
	"github.com/bagpipe-go/bagpipe/internal/config"
	"github.com/bagpipe-go/bagpipe/internal/daemon"
)

const usageHead = `bagpipe-bgp: a lightweight BGP VPN speaker for compute nodes (E-VPN over VXLAN,
BGP/MPLS IP VPN, RT Constraint), compatible with OpenStack networking-bagpipe.

It peers over iBGP with route reflectors (GoBGP, FRR, or bagpipe-fakerr for two
nodes), serves the upstream REST API (attach_localport, detach_localport, ping,
looking-glass) and programs the dataplane of the VPN instances it hosts.

Usage:
  bagpipe-bgp [--config-file FILE] [--log-level LEVEL] [--log-format text|json]
              [--pprof-addr HOST:PORT]

Flags:
`

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, usageHead)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprint(w, "\nConfiguration file options (INI, section names case-insensitive):\n")
	section := ""
	for _, o := range config.Options() {
		if o.Section != section {
			section = o.Section
			fmt.Fprintf(w, "\n  [%s]\n", section)
		}
		def := o.Default
		switch {
		case o.Required:
			def = "required"
		case def == "":
			def = "unset"
		}
		extra := ""
		if o.Driver != "" {
			extra += " (driver " + o.Driver + ")"
		}
		if o.New {
			extra += " (bagpipe-go addition)"
		}
		if len(o.Aliases) > 0 {
			extra += " (also: " + strings.Join(o.Aliases, ", ") + ")"
		}
		fmt.Fprintf(w, "    %-26s default: %s%s\n        %s\n", o.Name, def, extra, o.Help)
	}
	fmt.Fprint(w, `
Example bgp.conf:
  [BGP]
  local_address = 192.0.2.10
  peers = 192.0.2.1
  my_as = 64512
  [API]
  host = 127.0.0.1
  port = 8082
  [DATAPLANE_DRIVER_EVPN]
  dataplane_driver = dummy
`)
}

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("bagpipe-bgp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config-file", "/etc/bagpipe-bgp/bgp.conf", "bgp.conf `file` to read")
	logLevel := fs.String("log-level", "", "log `level`: debug, info, warning or error (default info, or debug with [DEFAULT] debug = true)")
	logFormat := fs.String("log-format", "text", "log `format` on standard error: text or json")
	debug := fs.Bool("debug", false, "same as --log-level debug")
	version := fs.Bool("version", false, "print the version and exit")
	pprofAddr := fs.String("pprof-addr", "", "serve Go runtime profiles (net/http/pprof: heap, allocs, goroutine, CPU profile) at http://`HOST:PORT`/debug/pprof/; off by default, unauthenticated: bind to loopback (e.g. 127.0.0.1:6060)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			usage(fs, os.Stdout)
			return 0
		}
		fmt.Fprintf(stderr, "bagpipe-bgp: %v (see bagpipe-bgp --help)\n", err)
		return 2
	}
	if *version {
		fmt.Println("bagpipe-bgp", daemon.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bagpipe-bgp: unexpected argument %q (the old start|stop action was removed upstream too; see --help)\n", fs.Arg(0))
		return 2
	}
	cfg, warnings, err := config.Load(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "bagpipe-bgp: %v\n", err)
		return 1
	}
	level := slog.LevelInfo
	if cfg.Log.Debug || *debug {
		level = slog.LevelDebug
	}
	if *logLevel != "" {
		l, ok := parseLevel(*logLevel)
		if !ok {
			fmt.Fprintf(stderr, "bagpipe-bgp: --log-level %q: expected debug, info, warning or error\n", *logLevel)
			return 2
		}
		level = l
	}
	hopts := &slog.HandlerOptions{Level: level}
	out := stderr
	if cfg.Log.File != "" {
		path := cfg.Log.File
		if cfg.Log.Dir != "" && !filepath.IsAbs(path) {
			path = filepath.Join(cfg.Log.Dir, path)
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "bagpipe-bgp: %s: [DEFAULT] log_file = %q: %v (fix the path or remove the option to log to standard error)\n", cfg.File, cfg.Log.File, err)
			return 1
		}
		defer f.Close()
		out = f
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(out, hopts)
	case "json":
		h = slog.NewJSONHandler(out, hopts)
	default:
		fmt.Fprintf(stderr, "bagpipe-bgp: --log-format %q: expected text or json\n", *logFormat)
		return 2
	}
	logs := lg.NewLogBuffer(100)
	log := slog.New(logs.Tee(h))
	for _, w := range warnings {
		log.Warn(w, "component", "config")
	}
	if cfg.Log.UseSyslog {
		log.Warn("[DEFAULT] use_syslog is not supported: logging to standard error (or log_file); journald collects standard error under systemd", "component", "config")
	}
	d, err := daemon.New(cfg, log, logs)
	if err != nil {
		fmt.Fprintf(stderr, "bagpipe-bgp: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *pprofAddr != "" {
		if _, err := servePprof(ctx, *pprofAddr, log); err != nil {
			fmt.Fprintf(stderr, "bagpipe-bgp: %v\n", err)
			return 1
		}
	}
	if err := d.Run(ctx); err != nil {
		log.Error("bagpipe-bgp stopped on error", "component", "daemon", "err", err)
		return 1
	}
	log.Info("bagpipe-bgp stopped", "component", "daemon")
	return 0
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warning", "warn":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}
