package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// runner runs ovs-vsctl and ovs-ofctl against one bridge of one OVS
// instance. Flow and group changes go through `ovs-ofctl bundle BRIDGE -`:
// one process and one atomic OpenFlow 1.5 bundle per batch, never one
// process per flow.
type runner struct {
	vsctl, ofctl string
	db           string // ovs-vsctl --db value, "" for the default
	runDir       string // OVS_RUNDIR for ovs-ofctl, "" for the default
	bridge       string
	timeout      time.Duration
}

// cmdError is a failed OVS command: what ran, its exit status and stderr.
type cmdError struct {
	cmd    string
	code   int
	stderr string
	err    error
}

func (e *cmdError) Error() string {
	msg := strings.TrimSpace(e.stderr)
	if len(msg) > 600 {
		msg = msg[:600] + "…"
	}
	if msg == "" {
		msg = e.err.Error()
	}
	return fmt.Sprintf("%s: %s", e.cmd, msg)
}

func (e *cmdError) Unwrap() error { return e.err }

// exitCode returns the exit status of a failed command, -1 if it did not
// run to completion.
func exitCode(err error) int {
	var ce *cmdError
	if errors.As(err, &ce) {
		return ce.code
	}
	return -1
}

func (r *runner) run(stdin string, name string, args ...string) (string, error) {
	return r.runFor(r.timeout, stdin, name, args...)
}

// runFor runs a command with a timeout.
func (r *runner) runFor(timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if r.runDir != "" {
		cmd.Env = append(os.Environ(), "OVS_RUNDIR="+r.runDir)
	}
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %s (is ovs-vswitchd running?): %w", timeout, err)
		}
		return out.String(), &cmdError{cmd: name + " " + shortArgs(args), code: code, stderr: errb.String(), err: err}
	}
	return out.String(), nil
}

func shortArgs(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// vsctlArgs prefixes ovs-vsctl options (database, timeout).
func (r *runner) vsctlArgs(args []string) []string {
	pre := []string{"--timeout=" + strconv.Itoa(int(r.timeout/time.Second))}
	if r.db != "" {
		pre = append(pre, "--db="+r.db)
	}
	return append(pre, args...)
}

// vsctl runs ovs-vsctl with args and returns its trimmed output.
func (r *runner) vsctlRun(args ...string) (string, error) {
	out, err := r.run("", r.vsctl, r.vsctlArgs(args)...)
	return strings.TrimSpace(out), err
}

// ofctlRun runs `ovs-ofctl -O OpenFlow15 <cmd> BRIDGE args...`.
func (r *runner) ofctlRun(cmd string, args ...string) (string, error) {
	return r.run("", r.ofctl, append([]string{"-O", "OpenFlow15", cmd, r.bridge}, args...)...)
}

// bundle executes flow and group mods ("flow add …", "group delete …")
// as one atomic OpenFlow bundle read from stdin. An empty batch runs
// nothing. Large batches get 1 ms per line on top of the timeout (10,000
// routes take about 1 s).
func (r *runner) bundle(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	timeout := r.timeout + time.Duration(len(lines))*time.Millisecond
	_, err := r.runFor(timeout, b.String(), r.ofctl, "-O", "OpenFlow15", "bundle", r.bridge, "-")
	return err
}

// ofport returns the OpenFlow port number of interface name, an error if
// the interface is unknown or has no port number yet.
func (r *runner) ofport(name string) (int, error) {
	out, err := r.vsctlRun("get", "Interface", name, "ofport")
	if err != nil {
		return 0, fmt.Errorf("OVS interface %q not found: %w", name, err)
	}
	n, err := strconv.Atoi(strings.Trim(out, "[] "))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("OVS interface %q has no OpenFlow port number (ofport %q); check `ovs-vsctl list Interface %s`", name, out, name)
	}
	return n, nil
}
