// Package testenv runs real daemons on loopback for the integration and
// interop tests of other packages: GoBGP's gobgpd and FRR's bgpd as route
// reflectors, and this module's own binaries as processes.
//
// Every helper takes a testing.TB, registers a t.Cleanup that stops what it
// started (by PID) and removes its temporary directory, and logs the
// daemon's output with t.Log when the test failed. A missing tool fails the
// test loudly with the package to install; nothing here ever skips.
//
// On Linux every address of 127.0.0.0/8 is local, so daemons can use
// distinct identities and session sources such as 127.0.0.1, 127.0.0.2 and
// 127.0.0.3 on one machine.
package testenv

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pollInterval is how often WaitFor evaluates its condition.
const pollInterval = 50 * time.Millisecond

// FreePort returns a TCP port that is free on 127.0.0.1 at the time of the
// call (the kernel picks it; the listener is closed before returning).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: cannot find a free TCP port on 127.0.0.1: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 50 ms until it returns true, and fails the test
// with what and cond's last error if that has not happened within timeout.
// An error from cond does not stop the polling: it is only remembered.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := poll(timeout, cond); err != nil {
		t.Fatalf("testenv: timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

// poll is WaitFor without the test: it returns nil once cond holds, or an
// error carrying cond's last error after timeout.
func poll(timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("condition never became true (no error reported)")
			}
			return fmt.Errorf("last error: %w", last)
		}
		time.Sleep(pollInterval)
	}
}

// requireTool returns the absolute path of a program, looked up in PATH
// when name has no slash, and fails the test with the install hint when it
// is missing or not executable.
func requireTool(t testing.TB, name, hint string) string {
	t.Helper()
	var path string
	var err error
	if strings.ContainsRune(name, '/') {
		var st os.FileInfo
		if st, err = os.Stat(name); err == nil && (!st.Mode().IsRegular() || st.Mode()&0o111 == 0) {
			err = fmt.Errorf("%s is not an executable file", name)
		}
		path = name
	} else {
		path, err = exec.LookPath(name)
	}
	if err != nil {
		t.Fatalf("testenv: required tool %s is missing (%v); install it with %q", name, err, hint)
	}
	return path
}

// ModuleRoot returns the directory holding the go.mod of the module the
// test runs in, found by walking up from the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := moduleRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return dir
}

func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cannot get the working directory to find go.mod: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.mod in %s or any parent: run the test inside the module", wd)
		}
	}
}

// build holds the result of the one go build per test process.
var build struct {
	once sync.Once
	dir  string
	err  error
}

// binDirPrefix names the per-process directory BuildBinaries builds into.
const binDirPrefix = "bagpipe-testenv-bin-"

// BuildBinaries builds every command of the module (go build ./cmd/...)
// into a directory under os.TempDir named after the test process, once per
// process, and returns that directory. A failed build fails this and every
// later caller's test with the compiler output. Directories left by test
// processes that no longer run are removed first.
func BuildBinaries(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		removeStaleBinDirs()
		build.dir = filepath.Join(os.TempDir(), binDirPrefix+strconv.Itoa(os.Getpid()))
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		build.err = buildInto(root, build.dir)
	})
	if build.err != nil {
		t.Fatalf("testenv: %v", build.err)
	}
	return build.dir
}

// buildInto runs go build -o dir/ ./cmd/... in the module at root.
func buildInto(root, dir string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("the go command is not in PATH (%w): run the tests with go test", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create the binary directory: %w", err)
	}
	cmd := exec.Command(goTool, "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o %s/ ./cmd/... in %s failed (%w); fix the build:\n%s", dir, root, err, out)
	}
	return nil
}

// removeStaleBinDirs deletes binary directories of test processes that have
// exited, so that /tmp does not fill up with one per test run.
func removeStaleBinDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), binDirPrefix+"*"))
	for _, m := range matches {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(m), binDirPrefix))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(m)
		}
	}
}

// tempDir creates a short-named temporary directory (unix socket paths must
// stay under 108 bytes, which t.TempDir does not promise for long test
// names) and registers its removal.
func tempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testenv-"+prefix+"-")
	if err != nil {
		t.Fatalf("testenv: cannot create a temporary directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
