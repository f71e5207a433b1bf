// Command bagpipe-demo brings up a small bagpipe lab on one machine: a
// route reflector (gobgpd when installed, else bagpipe-fakerr) and several
// bagpipe-bgp "compute nodes", attaches VM ports to two E-VPNs, and shows
// which node learned what. See --help.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

const help = `bagpipe-demo: run a multi-node bagpipe lab on this machine.

Usage:
  bagpipe-demo [--check] [--dir DIR]   bring the lab up, run the checks, and
                                       (without --check) stay up until Ctrl-C
  bagpipe-demo down [--dir DIR]        remove what a crashed demo left behind

The lab: a route reflector on 127.0.0.1 (gobgpd if installed, otherwise
bagpipe-fakerr with two nodes), bagpipe-bgp nodes on 127.0.0.2, 127.0.0.3,
127.0.0.4, E-VPN "net1" (route target 64512:100) with a port on node A and
one on node B, and E-VPN "net2" (64512:200) with a port on node C. The
checks show that A and B learn each other's MAC/IP and flooding routes over
BGP and that C, in another E-VPN, learns none of them.

With --check the demo exits after the checks: status 0 if all passed.
Files (configurations, logs, pid files) go to DIR (default
/tmp/bagpipe-demo).

Flags:
`

func main() {
	fs := flag.NewFlagSet("bagpipe-demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	check := fs.Bool("check", false, "run the checks and exit (non-zero if one failed)")
	dir := fs.String("dir", "/tmp/bagpipe-demo", "working `directory` for configurations, logs and pid files")
	args := os.Args[1:]
	down := len(args) > 0 && args[0] == "down"
	if down {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Print(help)
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return
		}
		fmt.Fprintf(os.Stderr, "bagpipe-demo: %v (see bagpipe-demo --help)\n", err)
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bagpipe-demo: %v\n", err)
		os.Exit(1)
	}
	l := &lab{dir: *dir, bin: filepath.Dir(exe), out: os.Stdout}
	if down {
		l.down()
		return
	}
	l.down() // leftovers of a crashed run
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ok := l.up(ctx)
	if ok {
		ok = l.runChecks(ctx)
	}
	if !*check && ctx.Err() == nil {
		l.printNext()
		fmt.Fprintln(l.out, "\nThe lab stays up until Ctrl-C.")
		<-ctx.Done()
	}
	fmt.Fprintln(l.out, "\nTearing down...")
	l.down()
	if !ok {
		os.Exit(1)
	}
}
