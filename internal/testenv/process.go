package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a process gets to exit after SIGTERM before it is
// killed with SIGKILL.
const stopGrace = 5 * time.Second

// logTail bounds how much of a log is dumped into a failed test's output.
const logTail = 64 << 10

// ErrStillRunning is returned (wrapped) by Process.Wait when the process
// has not exited within the timeout.
var ErrStillRunning = errors.New("process still running")

// Process is a program started by StartProcess. Its stdout and stderr go
// to one log file. Its methods are safe for concurrent use.
type Process struct {
	// Name is the program as given to StartProcess.
	Name string
	// LogPath is the file holding the process's stdout and stderr.
	LogPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done is closed

	mu     sync.Mutex
	killed bool // Stop needed SIGKILL
}

// StartProcess starts name (a path, or a program looked up in PATH) with
// args. env is added to the test process's environment (later entries win).
// Stdout and stderr go to a log file in a temporary directory. The
// returned process is stopped at cleanup (SIGTERM, then SIGKILL after 5 s)
// unless it already exited; when the test failed its log is dumped.
// The process also gets SIGKILL if the test process dies first (Linux
// parent-death signal).
func StartProcess(t testing.TB, name string, args []string, env []string) *Process {
	t.Helper()
	dir := tempDir(t, "proc")
	return startProcess(t, dir, name, args, env, "")
}

// startProcess starts a process whose log goes to dir, and whose working
// directory is wd ("" for the test's). See StartProcess.
func startProcess(t testing.TB, dir, name string, args, env []string, wd string) *Process {
	t.Helper()
	logPath := filepath.Join(dir, filepath.Base(name)+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: cannot create the log file for %s: %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = wd
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("testenv: cannot start %s %q: %v", name, args, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Logf("testenv: started %s (pid %d) %q, log %s", name, p.PID(), args, logPath)
	t.Cleanup(func() {
		if !p.Exited() {
			p.Stop()
		}
		if t.Failed() {
			t.Logf("testenv: log of %s (pid %d, %s):\n%s", name, p.PID(), p.exitStatus(), tail(p.Log(), logTail))
		}
	})
	return p
}

// PID returns the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Log returns everything the process wrote to stdout and stderr so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.LogPath, err)
	}
	return string(b)
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0, an *exec.ExitError otherwise), or an error
// wrapping ErrStillRunning if it is still running.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) did not exit within %v: %w", p.Name, p.PID(), timeout, ErrStillRunning)
	}
}

// Stop sends SIGTERM and waits for the process to exit, sending SIGKILL
// after 5 s. It returns the exit error as Wait does, or an error saying
// SIGKILL was needed.
func (p *Process) Stop() error {
	if p.Exited() {
		return p.err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(stopGrace):
	}
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed: %w", p.Name, p.PID(), stopGrace, p.err)
}

// Kill sends SIGKILL and waits for the process to exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
}

// ExitCode returns the exit status, or -1 if the process is running or was
// ended by a signal.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// exitStatus describes how the process ended, for log dumps.
func (p *Process) exitStatus() string {
	if !p.Exited() {
		return "still running"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.cmd.ProcessState.String()
	if p.killed {
		s += " after SIGTERM was ignored"
	}
	return s
}

// tail returns the last n bytes of s, marking the cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("[... %d bytes cut ...]\n%s", len(s)-n, s[len(s)-n:])
}
