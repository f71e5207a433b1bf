// Command bagpipe-demo brings up a small bagpipe lab on one machine, made
// of network namespaces: an underlay switch, a route reflector (gobgpd
// when installed, else bagpipe-fakerr) and bagpipe-bgp "compute nodes"
// with the linux E-VPN dataplane (bridge + VXLAN); fake VMs made by
// bagpipe-rest-attach --port netns in two E-VPNs sharing one subnet; then
// it pings between the VMs. See --help.
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

	"github.com/bagpipe-go/bagpipe/internal/lab"
)

const help = `bagpipe-demo: run a multi-node bagpipe lab on this machine (as root).

Usage:
  bagpipe-demo [--check] [--dir DIR]   bring the lab up, run the checks, and
                                       (without --check) stay up until Ctrl-C
  bagpipe-demo down [--dir DIR]        remove what a crashed demo left behind

The lab is made of network namespaces named bpdemo-*: a switch (bpdemo-sw)
joining an underlay LAN 10.201.0.0/24; a route reflector in bpdemo-rr
(10.201.0.254; gobgpd if installed, otherwise bagpipe-fakerr with two
nodes); compute nodes bpdemo-A, bpdemo-B, bpdemo-C (10.201.0.1, .2, .3),
each running bagpipe-bgp with the linux E-VPN dataplane (a bridge and a
VXLAN device per E-VPN). VMs are namespaces made by
"bagpipe-rest-attach --port netns" on the nodes: E-VPN net1 (route target
64512:100) has vm1 on A (10.10.0.1) and vm2 on B (10.10.0.2); E-VPN net2
(64512:200) reuses the subnet with vm3 on B (10.10.0.3) and vm4 on C
(10.10.0.4; on A with two nodes). The checks ping every pair of VMs: the
VMs of one E-VPN reach each other over VXLAN, the two E-VPNs are isolated.

With --check the demo exits after the checks: status 0 if all passed.
Files (configurations, logs, pid files) go to DIR (default
/tmp/bagpipe-demo). "down" kills the processes of DIR's pid files and
deletes every bpdemo-* namespace.

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
	if err := lab.CheckTools(); err != nil {
		fmt.Fprintf(os.Stderr, "bagpipe-demo: %v\n", err)
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "bagpipe-demo creates network namespaces, veths, bridges and VXLAN devices: try sudo make demo")
		}
		os.Exit(1)
	}
	l := &demoLab{dir: *dir, bin: filepath.Dir(exe), out: os.Stdout}
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
