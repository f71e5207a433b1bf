// Command bagpipe-demo brings up the whole bagpipe system on one machine,
// made of network namespaces: an underlay switch, a route reflector
// (gobgpd when installed, else bagpipe-fakerr), bagpipe-controller with
// its embedded etcd, and "compute nodes" each running bagpipe-bgp (linux
// E-VPN dataplane: bridge + VXLAN) and bagpipe-agent. It creates two
// networks sharing one subnet and their VMs' ports with the bagpipe CLI,
// then checks with pings that each network connects its VMs across nodes
// and is isolated from the other. See --help.
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

const help = `bagpipe-demo: run the whole bagpipe system on this machine (as root).

Usage:
  bagpipe-demo [--check] [--dir DIR] [--rr auto|gobgpd|fakerr]
                                       bring the lab up, run the checks, and
                                       (without --check) stay up until Ctrl-C
  bagpipe-demo down [--dir DIR]        remove what a crashed demo left behind

The lab is made of network namespaces named bpdemo-*: a switch (bpdemo-sw)
joining an underlay LAN 10.201.0.0/24; a route reflector in bpdemo-rr
(10.201.0.254; gobgpd if installed, otherwise bagpipe-fakerr with two
nodes); bagpipe-controller in bpdemo-ctl (http://10.201.0.253:9696,
embedded etcd with its data in DIR/controller-data); compute nodes
bpdemo-A, bpdemo-B, bpdemo-C (10.201.0.1, .2, .3), each running bagpipe-bgp
with the linux E-VPN dataplane (API on 127.0.0.1:8082 of the node) and
bagpipe-agent --host <node namespace> following the controller.

With the bagpipe CLI, the demo creates networks net1 and net2, both with
subnet 10.10.0.0/24, and one port per VM, each with
"ip netns exec NODE bagpipe port create ... --host NODE --netns bpdemo-vmN"
(which makes the VM namespace and its tap): vm1 (10.10.0.11) on A and vm2
(10.10.0.12) on B in net1, vm3 (10.10.0.13) on B and vm4 (10.10.0.14) on C
(on A with two nodes) in net2. The agents attach the ports to their
bagpipe-bgp. The checks wait for every port to be ACTIVE, then ping every
pair of VMs: the VMs of one network reach each other over VXLAN, the two
networks are isolated.

With --check the demo exits after the checks: status 0 if all passed.
Files (configurations, logs, pid files, the controller's data) go to DIR
(default /tmp/bagpipe-demo). "down" kills the processes of DIR's pid files
and every process left in a bpdemo-* namespace, deletes those namespaces
and the controller's data.

Flags:
`

func main() {
	fs := flag.NewFlagSet("bagpipe-demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	check := fs.Bool("check", false, "run the checks and exit (non-zero if one failed)")
	dir := fs.String("dir", "/tmp/bagpipe-demo", "working `directory` for configurations, logs, pid files and the controller's data")
	rr := fs.String("rr", "auto", "route reflector: gobgpd, fakerr (bagpipe-fakerr, two nodes), or auto (gobgpd when installed)")
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
	switch *rr {
	case "auto", "gobgpd", "fakerr":
	default:
		fmt.Fprintf(os.Stderr, "bagpipe-demo: --rr %q: want auto, gobgpd or fakerr\n", *rr)
		os.Exit(2)
	}
	l := &demoLab{dir: *dir, bin: filepath.Dir(exe), out: os.Stdout, rrChoice: *rr}
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
