package linux

import (
	"net/netip"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
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

// TestReconcileLeavesChangesDuringDump: entries an EVI changes while the
// reconcile's dump runs (after changes.start) are neither re-added nor
// removed from that dump.
func TestReconcileLeavesChangesDuringDump(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "during", 970, "")
	const old, added = "02:00:00:00:0b:01", "02:00:00:00:0b:02"
	apply(t, e, addMAC(old, "10.99.0.2", 970), addIP("10.1.0.9", old))

	e.mu.Lock()
	e.changes.start()
	e.mu.Unlock()
	snap, err := d.takeSnapshot(func(i int) bool { return i == e.vxIndex })
	if err != nil {
		t.Fatal(err)
	}
	remote := 0
	for _, r := range snap.fdb[e.vxIndex] {
		if r.vtep.IsValid() {
			remote++
		}
	}
	if remote != 1 {
		t.Fatalf("snapshot holds %d remote fdb entries of %s, want 1: %+v", remote, e.vxName, snap.fdb[e.vxIndex])
	}
	// During the "dump": one entry removed, one added.
	apply(t, e, delMAC(old, "10.99.0.2", 970), delIP("10.1.0.9", old), addMAC(added, "10.99.0.3", 970), addIP("10.1.0.10", added))
	if err := e.reconcile(snap); err != nil {
		t.Fatal(err)
	}
	if e.repairs != 0 {
		t.Errorf("reconcile repaired %d entries changed during its dump, want 0", e.repairs)
	}
	want := []fdbEntry{{mac: added, dst: "10.99.0.3", vni: 0, state: 128, flags: 2}}
	if got := vxlanFDB(t, ns, e.vxName); len(got) != 1 || got[0].mac != want[0].mac || got[0].dst != want[0].dst {
		t.Errorf("fdb = %v, want %v", got, want)
	}
	// The next round, with a dump of its own, finds nothing to do.
	if err := d.Reconcile(); err != nil || e.repairs != 0 {
		t.Errorf("second reconcile: err %v, repairs %d", err, e.repairs)
	}
}

// TestTouchedLimit: past touchLimit keys the record gives up (the entry
// checks are skipped) instead of growing.
func TestTouchedLimit(t *testing.T) {
	var c touched
	c.mac(route.MAC{1})
	if c.hasMAC(route.MAC{1}) {
		t.Fatal("recorded while no dump runs")
	}
	c.start()
	for i := range touchLimit + 1 {
		c.mac(route.MAC{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	if !c.overflow || len(c.macs) != 0 {
		t.Errorf("overflow %v with %d keys, want overflow and none kept", c.overflow, len(c.macs))
	}
}
