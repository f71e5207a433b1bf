// Command bagpipe is the command-line client of bagpipe-controller: it
// creates, lists, shows, updates and deletes networks, subnets and ports,
// printing readable tables (or the controller's JSON with --json).
//
// Usage:
//
//	bagpipe [--controller URL] [--token TOKEN] [--json] network|subnet|port create|list|show|update|delete ...
//
// For labs, "port create --netns NAME --host HOST" also makes the port's
// "VM": network namespace NAME linked by a veth pair whose end here is the
// port's tap name (tap<port id[:11]>), as bagpipe-rest-attach --port netns
// does; run it in the network namespace of HOST (ip netns exec HOST ...).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usage is the top-level help.
const usage = `Usage: bagpipe [--controller URL] [--token TOKEN] [--json] RESOURCE ACTION [ARGS]

Client of bagpipe-controller (Neutron v2.0 networks, subnets and ports).

Global flags (also accepted after the action):
  --controller URL   controller URL (default $BAGPIPE_CONTROLLER or http://127.0.0.1:9696)
  --token TOKEN      controller token (default $BAGPIPE_CONTROLLER_TOKEN)
  --json             print the controller's JSON instead of tables

Commands:
  network create NAME [--vni N] [--description TEXT] [--admin-state-up=false]
  network list [--name NAME]
  network show NETWORK
  network update NETWORK [--name NAME] [--description TEXT] [--admin-state-up true|false]
  network delete NETWORK...
  subnet create --network NETWORK --cidr CIDR [--gateway IP|none] [--name NAME]
  subnet list [--network NETWORK] [--name NAME]
  subnet show SUBNET
  subnet update SUBNET [--name NAME] [--gateway IP|none] [--description TEXT]
  subnet delete SUBNET...
  port create --network NETWORK [--name NAME] [--mac MAC] [--ip IP] [--host HOST]
              [--device-owner OWNER] [--admin-state-up=false] [--netns NAMESPACE]
  port list [--network NETWORK] [--host HOST] [--name NAME]
  port show PORT
  port update PORT [--name NAME] [--host HOST] [--admin-state-up true|false] [--device-owner OWNER]
  port delete PORT... [--netns NAMESPACE]

NETWORK, SUBNET and PORT are ids or unique names.
`

// exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// globals are the options every command takes.
type globals struct {
	controller, token string
	json              bool
}

// addGlobals registers the global flags on fs.
func addGlobals(fs *flag.FlagSet, g *globals) {
	fs.StringVar(&g.controller, "controller", g.controller, "controller URL")
	fs.StringVar(&g.token, "token", g.token, "controller token")
	fs.BoolVar(&g.json, "json", g.json, "print JSON")
}

// parseAll parses flags anywhere among the arguments and returns the
// positional ones.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlagSet returns a silent flag set (errors are reported by run).
func newFlagSet(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addGlobals(fs, g)
	return fs
}

// cmd is what a command gets.
type cmd struct {
	g      *globals
	ctl    *ctlclient.Client
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{controller: os.Getenv("BAGPIPE_CONTROLLER"), token: os.Getenv("BAGPIPE_CONTROLLER_TOKEN")}
	if g.controller == "" {
		g.controller = "http://127.0.0.1:9696"
	}
	fs := newFlagSet("bagpipe", g)
	// Global flags come before the resource; the rest is the command's.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "bagpipe: %v\n\n%s", err, usage)
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 1 && rest[0] == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if len(rest) < 2 {
		fmt.Fprintf(stderr, "bagpipe: want a resource and an action, e.g. \"bagpipe network list\"\n\n%s", usage)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &cmd{g: g, ctx: ctx, stdout: stdout, stderr: stderr}
	err := c.dispatch(rest[0], rest[1], rest[2:])
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "bagpipe: %v (see bagpipe --help)\n", err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "bagpipe: %v\n", err)
		return exitError
	}
}

// client returns the controller client (after the command's flags, which
// may set --controller and --token, are parsed).
func (c *cmd) client() *ctlclient.Client {
	if c.ctl == nil {
		c.ctl = ctlclient.New(c.g.controller, c.g.token)
	}
	return c.ctl
}

// dispatch runs resource action.
func (c *cmd) dispatch(resource, action string, args []string) error {
	type handler func(args []string) error
	table := map[string]map[string]handler{
		"network": {"create": c.networkCreate, "update": c.networkUpdate},
		"subnet":  {"create": c.subnetCreate, "update": c.subnetUpdate},
		"port":    {"create": c.portCreate, "update": c.portUpdate, "delete": c.portDelete},
	}
	actions, ok := table[resource]
	if !ok {
		return usagef("unknown resource %q: want network, subnet or port", resource)
	}
	if h, ok := actions[action]; ok {
		return h(args)
	}
	switch action {
	case "list":
		return c.list(resource, args)
	case "show":
		return c.show(resource, args)
	case "delete":
		return c.delete(resource, args, nil)
	}
	return usagef("unknown action %q for %s: want create, list, show, update or delete", action, resource)
}

// parse parses a command's flags and checks the number of positional
// arguments (max < 0: any number).
func (c *cmd) parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	pos, err := parseAll(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s: %v", fs.Name(), err)
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, usagef("%s: want %s, got %q", fs.Name(), what, strings.Join(pos, " "))
	}
	return pos, nil
}
