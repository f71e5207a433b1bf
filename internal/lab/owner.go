package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ownerDir holds one file per lab prefix in use, named after the prefix
// and holding the PID of the process that owns the lab.
const ownerDir = "/run/bagpipe-lab"

// NewPrefix returns a fresh prefix base + 4 random hex digits + "-" and
// records the calling process as its owner, so that SweepStale can remove
// the namespaces of a lab whose process died without cleaning up (a test
// binary killed by its timeout does not run its cleanups).
func NewPrefix(base string) (string, error) {
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lab: random prefix: %w", err)
	}
	prefix := base + hex.EncodeToString(b[:]) + "-"
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return "", fmt.Errorf("lab: creating %s: %w", ownerDir, err)
	}
	if err := os.WriteFile(filepath.Join(ownerDir, prefix), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", fmt.Errorf("lab: recording the owner of %s: %w", prefix, err)
	}
	return prefix, nil
}

// ReleasePrefix forgets the owner of prefix (after its namespaces are
// deleted).
func ReleasePrefix(prefix string) { os.Remove(filepath.Join(ownerDir, prefix)) }

// SweepStale deletes the namespaces of every lab prefix starting with
// base whose owner process no longer runs, and forgets those prefixes.
func SweepStale(base string) error {
	entries, err := os.ReadDir(ownerDir)
	if err != nil {
		return nil //nolint:nilerr // no lab ever ran here
	}
	for _, e := range entries {
		prefix := e.Name()
		if !strings.HasPrefix(prefix, base) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(ownerDir, prefix))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && Alive(pid) {
			continue
		}
		if err := DeleteNamespaces(prefix, 2*time.Second); err != nil {
			return err
		}
		ReleasePrefix(prefix)
	}
	return nil
}
