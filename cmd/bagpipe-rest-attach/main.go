// Command bagpipe-rest-attach attaches or detaches a local port to a VPN
// instance of a running bagpipe-bgp through its REST API, with the options
// and output of upstream networking-bagpipe's tool of the same name; with
// --port netns it first builds a network namespace "VM" linked by a veth
// pair. See --help and package internal/cli.
package main

import (
	"os"

	"github.com/bagpipe-go/bagpipe/internal/cli"
)

func main() { os.Exit(cli.RestAttachMain(os.Args[1:], os.Stdout, os.Stderr)) }
