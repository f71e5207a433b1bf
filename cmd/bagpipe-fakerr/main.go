// Command bagpipe-fakerr joins two BGP speakers that only connect out (such
// as bagpipe-bgp without passive = true) by relaying TCP bytes between the
// first two clients that connect to it. It is a lab tool, not a route
// reflector: it reads nothing of what it copies and serves one pair at a time.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/bagpipe-go/bagpipe/internal/fakerr"
)

const usage = `Usage: bagpipe-fakerr [--host ADDRESS] [--port PORT] [--log-level LEVEL]

bagpipe-fakerr listens on TCP port 179 and pairs exactly two clients: bytes
from the first are held until the second connects, then everything is copied
both ways. When either client disconnects, both are disconnected and the relay
waits for a new pair. A third client arriving while two are connected is
refused. Two bagpipe-bgp daemons with the same my_as thus form an iBGP session
"through" it, without a route reflector.

Typical lab use, with nodes A (10.0.0.1) and B (10.0.0.2):
  on A:  bagpipe-fakerr                 (needs root, or CAP_NET_BIND_SERVICE, for port 179)
         bgp.conf on A: [BGP] local_address = 10.0.0.1, peers = 127.0.0.1
         bgp.conf on B: [BGP] local_address = 10.0.0.2, peers = 10.0.0.1
If bagpipe-bgp on A also listens on 179 (passive = true), run the relay
elsewhere or on another --port and set bgp_port to match.

For more than two speakers, use a real route reflector (gobgpd, FRR bgpd).

Options:
`

func main() {
	fs := flag.NewFlagSet("bagpipe-fakerr", flag.ContinueOnError)
	host := fs.String("host", "0.0.0.0", "address to listen on")
	port := fs.Int("port", 179, "TCP port to listen on (1-65535)")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bagpipe-fakerr: unexpected argument %q (see --help)\n", fs.Arg(0))
		os.Exit(2)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "bagpipe-fakerr: --log-level %q: expected debug, info, warn or error\n", *level)
		os.Exit(2)
	}
	if *port < 1 || *port > 65535 {
		fmt.Fprintf(os.Stderr, "bagpipe-fakerr: --port %d: expected a port number from 1 to 65535\n", *port)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	addr := net.JoinHostPort(*host, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen; is another BGP speaker on this port, or do you need root for ports below 1024?",
			"component", "fakerr", "listen", addr, "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := fakerr.New(log).Serve(ctx, ln); err != nil {
		log.Error("relay stopped", "component", "fakerr", "error", err)
		os.Exit(1)
	}
}
