package scale

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestKernelWatches checks both kernel watchers against a namespace of
// this test: FDBWatch counts the unicast fdb entries of VXLAN devices
// (not the all-zero flood entry), RouteWatch the IPv4 routes of tables ≥
// MinVRFTable (not the main table), from notifications and from dumps.
func TestKernelWatches(t *testing.T) {
	needRoot(t)
	ns, err := NewNamespace(40, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Error(err)
		}
	})
	ip := func(args ...string) {
		t.Helper()
		if err := run(append([]string{"ip", "-n", ns.Name}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	fdb := func(op, mac string) {
		t.Helper()
		if err := run("ip", "netns", "exec", ns.Name, "bridge", "fdb", op, mac, "dev", "vx0", "dst", ns.RemoteVTEP.String()); err != nil {
			t.Fatal(err)
		}
	}
	ip("link", "add", "vx0", "type", "vxlan", "id", "100", "dstport", "4789", "local", ns.Local.String(), "nolearning")
	ip("link", "set", "vx0", "up")

	fw, err := WatchFDB(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	rw, err := WatchVRFRoutes(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()

	alive := func() error { return nil }
	wait := func(name string, w kernelWatch, want int) {
		t.Helper()
		if _, err := w.Wait(func(n int) bool { return n == want }, time.Minute, alive); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n, err := w.Dump(); err != nil || n != want {
			t.Fatalf("%s: dump counts %d (err %v), want %d", name, n, err, want)
		}
		if lost, err := w.Lost(); lost {
			t.Fatalf("%s: notifications lost: %v", name, err)
		}
	}
	wait("fdb, empty", fw, 0)
	wait("routes, empty", rw, 0)

	fdb("append", "00:00:00:00:00:00") // flood entry: not counted
	fdb("append", "52:54:00:00:00:01")
	fdb("append", "52:54:00:00:00:02")
	ip("route", "add", "10.1.0.0/24", "dev", "bps0", "table", "1000")
	ip("route", "add", "10.1.0.0/24", "dev", "bps0", "table", "1001")
	ip("route", "add", "10.2.0.0/24", "dev", "bps0", "table", "1001")
	ip("route", "add", "10.3.0.0/24", "dev", "bps0") // main table: not counted
	wait("fdb, 2 added", fw, 2)
	wait("routes, 3 added", rw, 3)

	fdb("del", "52:54:00:00:00:01")
	ip("route", "del", "10.1.0.0/24", "dev", "bps0", "table", "1001")
	wait("fdb, 1 removed", fw, 1)
	wait("routes, 1 removed", rw, 2)
}
