// Command bagpipe-bgp-cleanup removes the dataplane state a stopped
// bagpipe-bgp left behind (reference §8.2): it reads the same bgp.conf and
// asks each configured dataplane driver to remove everything it owns.
// Interfaces and entries bagpipe-bgp does not own are never touched.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/bagpipe-go/bagpipe/internal/config"
	"github.com/bagpipe-go/bagpipe/internal/dataplane/linux"
)

const usage = `bagpipe-bgp-cleanup: remove the dataplane state of a stopped bagpipe-bgp.

Usage:
  bagpipe-bgp-cleanup [--config-file FILE] [--netns NAME]

It reads bgp.conf like bagpipe-bgp and, for each dataplane driver configured
there, removes what the driver owns (for the linux E-VPN driver: the bridges
and VXLAN devices marked as bagpipe's, with their forwarding entries; VM
interfaces are only released from the bridges). The dummy driver has nothing
to clean. Do not run it while bagpipe-bgp is running: a running daemon would
recreate what it needs at its next reconcile, but traffic would be cut
meanwhile.

Flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bagpipe-bgp-cleanup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config-file", config.DefaultPath, "bgp.conf `file` to read")
	netns := fs.String("netns", "", "network namespace `name` to clean (default: the current one)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "bagpipe-bgp-cleanup: %v (see --help)\n", err)
		return 2
	}
	cfg, _, err := config.Load(*configFile)
	if err != nil {
		fmt.Fprintf(stderr, "bagpipe-bgp-cleanup: %v\n", err)
		return 1
	}
	status := 0
	switch cfg.EVPN.Driver {
	case config.DriverLinux:
		if err := linux.Cleanup(*netns); err != nil {
			fmt.Fprintf(stderr, "bagpipe-bgp-cleanup: E-VPN linux driver: %v\n", err)
			status = 1
		} else {
			fmt.Fprintln(stdout, "E-VPN linux driver: removed the bridges and VXLAN devices bagpipe-bgp owned")
		}
	case config.DriverDummy:
		fmt.Fprintln(stdout, "E-VPN dummy driver: nothing to clean")
	default:
		fmt.Fprintf(stdout, "E-VPN %s driver: nothing this build knows how to clean\n", cfg.EVPN.Driver)
	}
	switch cfg.IPVPN.Driver {
	case config.DriverDummy:
		fmt.Fprintln(stdout, "IP VPN dummy driver: nothing to clean")
	default:
		fmt.Fprintf(stdout, "IP VPN %s driver: nothing this build knows how to clean\n", cfg.IPVPN.Driver)
	}
	return status
}
