package dummy

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mac(n byte) route.MAC { return route.MAC{2, 0, 0, 0, 0, n} }

func TestRecorderStateAndLog(t *testing.T) {
	d := New(Options{Log: quiet})
	if d.Name() != "dummy" || d.ECMP() || !reflect.DeepEqual(d.Encaps(), []route.Encap{route.EncapVXLAN}) {
		t.Fatalf("driver identity: %s %v %v", d.Name(), d.ECMP(), d.Encaps())
	}
	if err := d.ResetState(); err != nil {
		t.Fatal(err)
	}
	dp, err := d.NewEVI(dataplane.EVIConfig{InstanceID: 3, VNI: 100})
	if err != nil {
		t.Fatal(err)
	}
	port := dataplane.LocalPort{LinuxIf: "tap0"}
	vtep := netip.MustParseAddr("10.0.0.2")
	ip := netip.MustParseAddr("10.1.0.2")
	steps := []error{
		dp.Plug(port, mac(1), netip.Addr{}),
		dp.Apply([]dataplane.EVIChange{
			{Kind: dataplane.AddRemoteMAC, MAC: mac(2), VTEP: vtep, VNI: 100},
			{Kind: dataplane.AddRemoteIP, MAC: mac(2), IP: ip},
			{Kind: dataplane.AddFlood, VTEP: vtep, VNI: 100},
		}),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	s, ok := d.Recorder().State(3)
	want := EVIState{
		Config: dataplane.EVIConfig{InstanceID: 3, VNI: 100},
		FDB:    map[route.MAC]FDBEntry{mac(2): {VTEP: vtep, VNI: 100}},
		Flood:  map[FDBEntry]bool{{VTEP: vtep, VNI: 100}: true},
		Neigh:  map[netip.Addr]route.MAC{ip: mac(2)},
		Ports:  map[string][]Endpoint{"tap0": {{MAC: mac(1)}}},
	}
	if !ok || !reflect.DeepEqual(s, want) {
		t.Fatalf("state %+v, want %+v", s, want)
	}
	// A move (make-before-break): the stale removal leaves the new entry.
	other := netip.MustParseAddr("10.0.0.3")
	if err := dp.Apply([]dataplane.EVIChange{
		{Kind: dataplane.AddRemoteMAC, MAC: mac(2), VTEP: other, VNI: 100},
		{Kind: dataplane.RemoveRemoteMAC, MAC: mac(2), VTEP: vtep, VNI: 100},
	}); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Recorder().State(3); s.FDB[mac(2)] != (FDBEntry{VTEP: other, VNI: 100}) {
		t.Fatalf("fdb after move %v", s.FDB)
	}
	var ops []string
	for _, c := range d.Recorder().Calls() {
		ops = append(ops, c.Op)
	}
	if want := []string{"ResetState", "NewEVI", "Plug", "Apply", "Apply"}; !reflect.DeepEqual(ops, want) {
		t.Fatalf("calls %v, want %v", ops, want)
	}
	if a := d.Recorder().Anomalies(); len(a) != 0 {
		t.Fatalf("anomalies %v", a)
	}
	// Redundant changes are flagged.
	_ = dp.Apply([]dataplane.EVIChange{{Kind: dataplane.AddFlood, VTEP: vtep, VNI: 100}, {Kind: dataplane.RemoveRemoteIP, MAC: mac(9), IP: other}})
	_ = dp.Unplug(port, mac(1), netip.Addr{}, false) // it was the last one
	if c := d.Recorder().Counters(); c.Anomalies != 3 {
		t.Fatalf("anomalies %v", d.Recorder().Anomalies())
	}
}

func TestRecorderBoundedLog(t *testing.T) {
	d := New(Options{LogLimit: 3, Log: quiet})
	dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 1})
	for i := range 5 {
		_ = dp.Plug(dataplane.LocalPort{LinuxIf: "tap"}, mac(byte(i)), netip.Addr{})
	}
	calls := d.Recorder().Calls()
	if len(calls) != 3 || calls[0].MAC != mac(2) || calls[2].MAC != mac(4) || calls[2].Seq != 6 {
		t.Fatalf("bounded log %+v", calls)
	}
}

func TestFailNextAndCountOnly(t *testing.T) {
	d := New(Options{CountOnly: true, Log: quiet})
	boom := errors.New("boom")
	d.Recorder().FailNext("Plug", boom)
	dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 1})
	if err := dp.Plug(dataplane.LocalPort{}, mac(1), netip.Addr{}); !errors.Is(err, boom) {
		t.Fatalf("injected failure: %v", err)
	}
	if err := dp.Plug(dataplane.LocalPort{}, mac(1), netip.Addr{}); err != nil {
		t.Fatalf("second plug: %v", err)
	}
	_ = dp.Apply(make([]dataplane.EVIChange, 4))
	c := d.Recorder().Counters()
	if c.Plugs != 1 || c.Calls != 4 || len(d.Recorder().Calls()) != 0 {
		t.Fatalf("count-only counters %+v, %d calls logged", c, len(d.Recorder().Calls()))
	}
	if _, ok := d.Recorder().State(1); ok {
		t.Fatal("count-only mode kept state")
	}
}
