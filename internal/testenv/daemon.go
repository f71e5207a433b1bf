package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// This file holds what StartGoBGP and StartFRR share: identity defaults,
// running the daemon's command-line client, and waiting for the daemon to
// come up.

// fillIdentity fills in the identity defaults common to GoBGPConfig and
// FRRConfig: router ID 127.0.0.1, AS 64512, listening on the router ID,
// on a free port.
func fillIdentity(t testing.TB, routerID *netip.Addr, as *uint32, listenAddr *netip.Addr, listenPort *int) {
	t.Helper()
	if !routerID.IsValid() {
		*routerID = netip.MustParseAddr("127.0.0.1")
	}
	if *as == 0 {
		*as = 64512
	}
	if !listenAddr.IsValid() {
		*listenAddr = *routerID
	}
	if *listenPort == 0 {
		*listenPort = FreePort(t)
	}
}

// runCLI runs a daemon's command-line client (path args..., bounded by
// cliTimeout) and returns its combined output; what names the invocation
// in errors ("gobgp -p 5000 neighbor").
func runCLI(what, path string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", what, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// decodeCLIJSON decodes the JSON a client printed (out) into v; what
// names the invocation in errors.
func decodeCLIJSON(v any, what, out string) error {
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%s printed unexpected JSON (%w): %.200s", what, err, out)
	}
	return nil
}

// waitUp waits (startTimeout) until the daemon p, called name in
// messages, passes ready (nil: no check) and lists want neighbours. It
// fails the test at once, with the end of p's log, if p exits meanwhile.
func waitUp(t testing.TB, p *Process, name, what string, want int, ready func() error, neighbors func() ([]Neighbor, error)) {
	t.Helper()
	WaitFor(t, startTimeout, what, func() (bool, error) {
		if p.Exited() {
			t.Fatalf("testenv: %s exited at start (%s):\n%s", name, p.exitStatus(), tail(p.Log(), logTail))
		}
		if ready != nil {
			if err := ready(); err != nil {
				return false, err
			}
		}
		ns, err := neighbors()
		if err != nil {
			return false, err
		}
		return len(ns) == want, fmt.Errorf("%s has %d neighbours, want %d", name, len(ns), want)
	})
}
