package veth

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// newNS creates a throwaway named network namespace (needs root) and
// deletes it at the end of the test.
func newNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bagpipe-veth-test-%d", os.Getpid())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("reading the current network namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("creating network namespace %s (this test needs root): %v", name, err)
	}
	ns.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatalf("returning to the original namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("deleting namespace %s: %v", name, err)
		}
	})
	return name
}

func TestNetlinkVethInNamespace(t *testing.T) {
	ns := newNS(t)
	n, err := New(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for round := range 2 { // the second create replaces the first pair
		if err := n.CreateVeth("evpn1-ipvpn2", "ipvpn2-evpn1"); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	for _, name := range []string{"evpn1-ipvpn2", "ipvpn2-evpn1"} {
		l, err := n.h.LinkByName(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if l.Type() != "veth" || l.Attrs().MTU != MTU || l.Attrs().Flags&(1<<0) == 0 {
			t.Fatalf("%s: type %s mtu %d flags %v", name, l.Type(), l.Attrs().MTU, l.Attrs().Flags)
		}
	}
	if err := n.DeleteVeth("evpn1-ipvpn2"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.h.LinkByName("ipvpn2-evpn1"); err == nil {
		t.Fatal("peer still exists after delete")
	} else if _, ok := err.(netlink.LinkNotFoundError); !ok {
		t.Fatalf("unexpected error %v", err)
	}
	if err := n.DeleteVeth("evpn1-ipvpn2"); err != nil {
		t.Fatalf("deleting a missing veth: %v", err)
	}
	if err := n.CreateVeth("a-name-that-is-far-too-long", "b"); err == nil {
		t.Fatal("over-long name accepted")
	}
}

// TestNetlinkVethLongIDs creates and deletes, in a namespace of its own,
// the pairs Names gives for ids whose upstream names are too long for
// the kernel, next to a pair that keeps its upstream name.
func TestNetlinkVethLongIDs(t *testing.T) {
	ns := newNS(t)
	n, err := New(ns, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ids := [][2]uint32{{3, 4}, {100, 101}, {101, 100}, {4294967295, 4294967294}}
	for _, id := range ids {
		a, b := Names(id[0], id[1])
		if err := n.CreateVeth(a, b); err != nil {
			t.Fatalf("ids %v: %v", id, err)
		}
	}
	links, err := n.h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	veths := map[string]int{} // name → peer index
	for _, l := range links {
		if l.Type() == "veth" {
			veths[l.Attrs().Name] = l.Attrs().ParentIndex
		}
	}
	if len(veths) != 2*len(ids) {
		t.Fatalf("namespace has veths %v, want the %d pairs of %v", veths, len(ids), ids)
	}
	for _, id := range ids {
		a, b := Names(id[0], id[1])
		la, err := n.h.LinkByName(a)
		if err != nil {
			t.Fatalf("ids %v: %s: %v", id, a, err)
		}
		lb, err := n.h.LinkByName(b)
		if err != nil {
			t.Fatalf("ids %v: %s: %v", id, b, err)
		}
		if la.Attrs().MTU != MTU || lb.Attrs().MTU != MTU {
			t.Errorf("ids %v: MTU %d/%d, want %d", id, la.Attrs().MTU, lb.Attrs().MTU, MTU)
		}
		if veths[a] != lb.Attrs().Index {
			t.Errorf("ids %v: %s's peer has index %d, want %s's %d", id, a, veths[a], b, lb.Attrs().Index)
		}
	}
	for _, id := range ids {
		a, b := Names(id[0], id[1])
		if err := n.DeleteVeth(a); err != nil {
			t.Fatal(err)
		}
		if _, err := n.h.LinkByName(b); err == nil {
			t.Errorf("ids %v: %s still exists after deleting %s", id, b, a)
		}
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	_ = r.CreateVeth("a", "b")
	_ = r.DeleteVeth("a")
	if len(r.Live()) != 0 || len(r.Ops()) != 2 {
		t.Fatalf("live %v ops %v", r.Live(), r.Ops())
	}
}
