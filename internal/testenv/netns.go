package testenv

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netns is a throwaway named network namespace with a netlink handle in it.
type Netns struct {
	// Name is the namespace's name under /var/run/netns ("ip netns exec"
	// finds it).
	Name string
	// Handle is a netlink handle inside the namespace.
	Handle *netlink.Handle
	// Fd is an open handle of the namespace.
	Fd netns.NsHandle
}

var netnsSeq atomic.Int64

// NewNetns creates a named network namespace "<prefix><pid>-<n>" without
// leaving the test's thread in it; the namespace is deleted on cleanup. It
// needs root (CAP_SYS_ADMIN) and fails the test otherwise.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), netnsSeq.Add(1))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("getting the current network namespace: %v", err)
	}
	ns, err := netns.NewNamed(name)
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("creating network namespace %s (tests need root): %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		// The thread stays locked: Go discards it with the goroutine.
		t.Fatalf("returning to the original network namespace: %v", err)
	}
	runtime.UnlockOSThread()
	orig.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		_ = netns.DeleteNamed(name)
		t.Fatalf("netlink handle in %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting network namespace %s: %v", name, err)
		}
	})
	return &Netns{Name: name, Handle: h, Fd: ns}
}
