package linux

import (
	"net/netip"
	"testing"
	"time"
)

// TestAsyncTeardown: Close releases the ports at once and leaves the
// devices to the reaper; an instance that comes back right away, or a new
// instance with the VNI of a closed one, works; WaitTeardown, the reaper
// alone and Driver.Close each delete what is queued.
func TestAsyncTeardown(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "vm1", "vm1p", nil)
	m1 := mac("02:00:00:00:09:01")

	e := newEVI(t, d, "td-a", 910, "")
	if err := e.Plug(port("vm1"), m1, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	apply(t, e, addMAC("02:00:00:00:09:02", "10.99.0.2", 910))
	if err := e.Unplug(port("vm1"), m1, netip.Addr{}, true); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if m := link(t, ns, "vm1").Attrs().MasterIndex; m != 0 {
		t.Fatalf("vm1 still enslaved (master %d) right after Close", m)
	}

	// The same instance again at once: its bridge (if still queued) is
	// taken back, its VXLAN device is new (no entry of the old one).
	e = newEVI(t, d, "td-a", 910, "")
	if err := e.Plug(port("vm1"), m1, netip.Addr{}); err != nil {
		t.Fatalf("plug right after the instance was closed: %v", err)
	}
	if got, want := link(t, ns, "vm1").Attrs().MasterIndex, link(t, ns, e.brName).Attrs().Index; got != want {
		t.Errorf("vm1 master %d, want bridge %s (%d)", got, e.brName, want)
	}
	if got, want := link(t, ns, e.vxName).Attrs().MasterIndex, link(t, ns, e.brName).Attrs().Index; got != want {
		t.Errorf("%s master %d, want %d", e.vxName, got, want)
	}
	if got := vxlanFDB(t, ns, e.vxName); len(got) != 0 {
		t.Errorf("fdb of the re-created instance = %v, want empty", got)
	}

	// Another instance reusing the VNI of a closed one.
	b := newEVI(t, d, "td-b", 920, "")
	bBr, bVx := b.brName, b.vxName
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	c := newEVI(t, d, "td-c", 920, "")
	if err := d.WaitTeardown(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{bBr, bVx} {
		if exists(t, ns, n) {
			t.Errorf("%s of a closed instance left after WaitTeardown", n)
		}
	}
	for _, n := range []string{e.brName, e.vxName, c.brName, c.vxName} {
		if !exists(t, ns, n) {
			t.Errorf("%s of a live instance deleted", n)
		}
	}
	if n := d.pendingTeardown(); n != 0 {
		t.Errorf("%d interfaces still queued after WaitTeardown", n)
	}

	// The reaper alone.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for exists(t, ns, c.brName) || exists(t, ns, c.vxName) {
		if time.Now().After(deadline) {
			t.Fatalf("the reaper did not delete %s/%s in 30 s", c.brName, c.vxName)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Driver.Close deletes what is queued.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, n := range []string{e.brName, e.vxName} {
		if exists(t, ns, n) {
			t.Errorf("%s left after Driver.Close", n)
		}
	}
	if !exists(t, ns, "vm1") {
		t.Error("vm1 deleted")
	}
}

// TestSyncTeardown: with Options.SyncTeardown, Close deletes the devices
// before it returns.
func TestSyncTeardown(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{SyncTeardown: true})
	e := newEVI(t, d, "td-sync", 950, "")
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{e.brName, e.vxName} {
		if exists(t, ns, n) {
			t.Errorf("%s left after Close with SyncTeardown", n)
		}
	}
	if n := d.pendingTeardown(); n != 0 {
		t.Errorf("%d interfaces queued with SyncTeardown", n)
	}
}
