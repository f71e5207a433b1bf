// Command bagpipe-scale measures a bagpipe-bgp daemon — ours or any other
// speaking upstream's REST API and bgp.conf — at scale: it runs the daemon
// in a network namespace it creates, acts as its BGP peer (route
// reflector), and reports how fast routes reach its RIB and the kernel,
// attach latencies, convergence between two nodes and idle footprint.
//
//	bagpipe-scale ingest      [flags]   N type-2 (or --family vpnv4) routes in, then out
//	bagpipe-scale attach      [flags]   K attach/detach calls
//	bagpipe-scale convergence [flags]   attach on A → fdb entry on B
//	bagpipe-scale idle        [flags]   start-up time and idle RSS
//	bagpipe-scale report --out BENCHMARKS.md results/*.json
//
// It needs root (namespaces, veth pairs) and iproute2.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/scale"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func usage() {
	fmt.Fprintf(os.Stderr, `usage: bagpipe-scale <ingest|attach|convergence|idle> [flags]
       bagpipe-scale report [--out FILE] RESULT.json...
Run "bagpipe-scale <subcommand> --help" for the flags.
`)
}

// defaultDaemon is our bagpipe-bgp next to this binary.
func defaultDaemon() string {
	exe, err := os.Executable()
	if err != nil {
		return "bagpipe-bgp --config-file {conf}"
	}
	return filepath.Join(filepath.Dir(exe), "bagpipe-bgp") + " --config-file {conf}"
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return 2
	}
	sub, args := args[0], args[1:]
	if sub == "report" {
		return report(args)
	}
	fs := flag.NewFlagSet(sub, flag.ContinueOnError)
	daemon := fs.String("daemon", defaultDaemon(), "daemon command line run with sh -c in the namespace; {conf} is the generated bgp.conf")
	driver := fs.String("driver", "dummy", "E-VPN dataplane driver written in bgp.conf: dummy or linux")
	label := fs.String("label", "bagpipe (Go)", "name of the daemon in reports")
	extra := fs.String("extra-conf", "", "text appended to the generated bgp.conf (e.g. a [COMMON] section)")
	jsonOut := fs.String("json", "", "write the result as JSON to this file")
	dir := fs.String("dir", "", "directory for the generated bgp.conf and daemon logs (default: a temporary one, removed unless the run fails)")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound of each wait")
	verbose := fs.Bool("v", false, "log progress")
	routes := fs.Int("routes", 10000, "ingest: number of routes")
	instances := fs.Int("instances", 10, "ingest: number of VPN instances (E-VPNs or VRFs)")
	pack := fs.Bool("pack", false, "ingest: several NLRI per UPDATE (default: one, like a route reflector)")
	family := fs.String("family", scale.FamilyEVPN, "ingest: route family, evpn (type-2 routes into E-VPNs) or vpnv4 (VPNv4 routes into IP VPN VRFs)")
	rate := fs.Int("rate", 0, "ingest: cap on UPDATEs sent per second (default: full speed)")
	ports := fs.Int("ports", 1000, "attach: number of attachments")
	samples := fs.Int("samples", 100, "convergence: number of samples")
	settle := fs.Duration("settle", 5*time.Second, "idle: delay after the session came up before reading RSS")
	switch sub {
	case "ingest", "attach", "convergence", "idle":
	default:
		usage()
		return 2
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *driver != "dummy" && *driver != "linux" {
		fmt.Fprintf(os.Stderr, "bagpipe-scale: --driver %q: expected dummy or linux\n", *driver)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bagpipe-scale: needs root (it creates network namespaces and veth pairs)")
		return 1
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "bagpipe-scale")
	work := *dir
	temp := work == ""
	if temp {
		var err error
		if work, err = os.MkdirTemp("", "bagpipe-scale-"); err != nil {
			fmt.Fprintf(os.Stderr, "bagpipe-scale: %v\n", err)
			return 1
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "bagpipe-scale: --dir: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := scale.Options{Spec: scale.DaemonSpec{Template: *daemon, Driver: *driver, ExtraConf: *extra, Dir: work},
		Label: *label, Timeout: *timeout, Log: log}
	var res *scale.Result
	switch sub {
	case "ingest":
		res = scale.Ingest(ctx, o, scale.IngestParams{Routes: *routes, Instances: *instances, Pack: *pack, Rate: *rate, Family: *family})
	case "attach":
		res = scale.Attach(ctx, o, *ports)
	case "convergence":
		res = scale.Convergence(ctx, o, scale.ConvergenceParams{Samples: *samples})
	case "idle":
		res = scale.Idle(ctx, o, scale.IdleParams{Settle: *settle})
	}
	res.Command = "bagpipe-scale " + sub + " " + strings.Join(quote(args), " ")
	res.Table(os.Stdout)
	if *jsonOut != "" {
		if err := res.WriteJSON(*jsonOut); err != nil {
			fmt.Fprintf(os.Stderr, "bagpipe-scale: %v\n", err)
			return 1
		}
	}
	if res.Error != "" {
		fmt.Fprintf(os.Stderr, "bagpipe-scale: %s failed; daemon logs and bgp.conf kept in %s\n", sub, work)
		return 1
	}
	if temp {
		os.RemoveAll(work)
	}
	return 0
}

// quote renders arguments so the command line can be pasted in a shell.
func quote(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"{}$*") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return out
}

func report(args []string) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	out := fs.String("out", "", "write the markdown here (default: standard output)")
	var notes []string
	fs.Func("note", "a paragraph added after the machine description (repeatable)", func(s string) error {
		notes = append(notes, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "bagpipe-scale report: give the JSON result files")
		return 2
	}
	var rs []*scale.Result
	for _, f := range fs.Args() {
		r, err := scale.ReadResult(f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bagpipe-scale report: %v\n", err)
			return 1
		}
		rs = append(rs, r)
	}
	w := os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bagpipe-scale report: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	scale.Markdown(w, rs, notes...)
	return 0
}
