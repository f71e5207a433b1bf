// Command bagpipe-looking-glass prints the looking glass of a running
// bagpipe-bgp (GET /looking-glass/<path>) as an indented tree, with the
// options and output of upstream networking-bagpipe's tool of the same
// name. See --help and package internal/cli.
package main

import (
	"os"

	"github.com/bagpipe-go/bagpipe/internal/cli"
)

func main() { os.Exit(cli.LookingGlassMain(os.Args[1:], os.Stdout, os.Stderr)) }
