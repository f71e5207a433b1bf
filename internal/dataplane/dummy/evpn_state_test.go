package dummy

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestApplyLogsBoundedChanges: an Apply call keeps at most
// MaxLoggedChanges of its changes in the call log, and their count.
func TestApplyLogsBoundedChanges(t *testing.T) {
	for _, n := range []int{0, 1, MaxLoggedChanges, MaxLoggedChanges + 1, 4096} {
		d := New(Options{Log: quiet})
		dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 1})
		changes := make([]dataplane.EVIChange, n)
		for i := range changes {
			changes[i] = dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: route.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)},
				VTEP: netip.MustParseAddr("10.0.0.2"), VNI: 100}
		}
		if err := dp.Apply(changes); err != nil {
			t.Fatal(err)
		}
		calls := d.Recorder().Calls()
		c := calls[len(calls)-1]
		want := min(n, MaxLoggedChanges)
		if c.Op != "Apply" || c.ChangeCount != n || len(c.Changes) != want || !reflect.DeepEqual(c.Changes, changes[:want]) {
			t.Fatalf("%d changes: logged %s with ChangeCount %d and %d changes, want %d and the first %d", n, c.Op, c.ChangeCount, len(c.Changes), n, want)
		}
		if s, _ := d.Recorder().State(1); len(s.FDB) != n {
			t.Fatalf("%d changes: fdb has %d entries", n, len(s.FDB))
		}
	}
}

// TestCompactStateRoundTrip: the compact state (interned fdb destinations,
// IPv4 neighbours apart from the others) reads back as the changes made,
// through State and Info, and Close empties it.
func TestCompactStateRoundTrip(t *testing.T) {
	d := New(Options{Log: quiet})
	dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 7, VNI: 100})
	v1, v2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	ip4, ip6 := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("2001:db8::5")
	mapped := netip.MustParseAddr("::ffff:10.1.0.6")
	steps := []struct {
		name    string
		changes []dataplane.EVIChange
		fdb     map[route.MAC]FDBEntry
		neigh   map[netip.Addr]route.MAC
		info    map[string]string // fdb as rendered by Info
	}{
		{"add", []dataplane.EVIChange{
			{Kind: dataplane.AddRemoteMAC, MAC: mac(1), VTEP: v1, VNI: 100},
			{Kind: dataplane.AddRemoteMAC, MAC: mac(2), VTEP: v2, VNI: 200},
			{Kind: dataplane.AddRemoteIP, MAC: mac(1), IP: ip4},
			{Kind: dataplane.AddRemoteIP, MAC: mac(2), IP: ip6},
			{Kind: dataplane.AddRemoteIP, MAC: mac(2), IP: mapped},
		},
			map[route.MAC]FDBEntry{mac(1): {v1, 100}, mac(2): {v2, 200}},
			map[netip.Addr]route.MAC{ip4: mac(1), ip6: mac(2), mapped: mac(2)},
			map[string]string{"02:00:00:00:00:01": "10.0.0.1/100", "02:00:00:00:00:02": "10.0.0.2/200"}},
		{"move mac 1 (make-before-break), stale removal ignored", []dataplane.EVIChange{
			{Kind: dataplane.AddRemoteMAC, MAC: mac(1), VTEP: v2, VNI: 200},
			{Kind: dataplane.RemoveRemoteMAC, MAC: mac(1), VTEP: v1, VNI: 100},
		},
			map[route.MAC]FDBEntry{mac(1): {v2, 200}, mac(2): {v2, 200}},
			map[netip.Addr]route.MAC{ip4: mac(1), ip6: mac(2), mapped: mac(2)},
			map[string]string{"02:00:00:00:00:01": "10.0.0.2/200", "02:00:00:00:00:02": "10.0.0.2/200"}},
		{"remove", []dataplane.EVIChange{
			{Kind: dataplane.RemoveRemoteIP, MAC: mac(1), IP: ip4},
			{Kind: dataplane.RemoveRemoteIP, MAC: mac(2), IP: ip6},
			{Kind: dataplane.RemoveRemoteMAC, MAC: mac(2), VTEP: v2, VNI: 200},
		},
			map[route.MAC]FDBEntry{mac(1): {v2, 200}},
			map[netip.Addr]route.MAC{mapped: mac(2)},
			map[string]string{"02:00:00:00:00:01": "10.0.0.2/200"}},
	}
	for _, st := range steps {
		if err := dp.Apply(st.changes); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		s, ok := d.Recorder().State(7)
		if !ok || !reflect.DeepEqual(s.FDB, st.fdb) || !reflect.DeepEqual(s.Neigh, st.neigh) {
			t.Fatalf("%s: state fdb %v neigh %v, want %v and %v", st.name, s.FDB, s.Neigh, st.fdb, st.neigh)
		}
		if got := dp.Info()["fdb"]; !reflect.DeepEqual(got, st.info) {
			t.Fatalf("%s: Info fdb %v, want %v", st.name, got, st.info)
		}
	}
	if a := d.Recorder().Anomalies(); len(a) != 0 {
		t.Fatalf("anomalies %v", a)
	}
	if got := dp.Info()["neigh"]; !reflect.DeepEqual(got, map[string]string{"::ffff:10.1.0.6": "02:00:00:00:00:02"}) {
		t.Fatalf("Info neigh %v", got)
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if s, _ := d.Recorder().State(7); !s.Closed || len(s.FDB)+len(s.Neigh)+len(s.Flood)+len(s.Ports) != 0 {
		t.Fatalf("state after close %+v", s)
	}
}

// TestStateShrinksAfterRemovals: after most entries are removed the fdb
// and neighbour maps are rebuilt for what is left, which reads back intact.
func TestStateShrinksAfterRemovals(t *testing.T) {
	const n, left = 3 * minShrink, 10
	d := New(Options{Log: quiet})
	dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 1})
	vtep := netip.MustParseAddr("10.0.0.2")
	var add, remove []dataplane.EVIChange
	for i := range n {
		m := route.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}
		ip := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		add = append(add, dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: m, VTEP: vtep, VNI: 100},
			dataplane.EVIChange{Kind: dataplane.AddRemoteIP, MAC: m, IP: ip})
		if i >= left {
			remove = append(remove, dataplane.EVIChange{Kind: dataplane.RemoveRemoteIP, MAC: m, IP: ip},
				dataplane.EVIChange{Kind: dataplane.RemoveRemoteMAC, MAC: m, VTEP: vtep, VNI: 100})
		}
	}
	if err := dp.Apply(add); err != nil {
		t.Fatal(err)
	}
	st := d.Recorder().states[1]
	if st.fdbPeak != n || st.neighPeak != n {
		t.Fatalf("high-water marks %d and %d after %d additions", st.fdbPeak, st.neighPeak, n)
	}
	if err := dp.Apply(remove); err != nil {
		t.Fatal(err)
	}
	if st.fdbPeak != left || st.neighPeak != left {
		t.Fatalf("maps not rebuilt: high-water marks %d and %d with %d entries left", st.fdbPeak, st.neighPeak, left)
	}
	s, _ := d.Recorder().State(1)
	if len(s.FDB) != left || len(s.Neigh) != left || s.FDB[route.MAC{2, 0, 0, 0, 0, left - 1}] != (FDBEntry{vtep, 100}) ||
		s.Neigh[netip.AddrFrom4([4]byte{10, 1, 0, left - 1})] != (route.MAC{2, 0, 0, 0, 0, left - 1}) {
		t.Fatalf("state after removals: %d fdb entries, %d neighbours", len(s.FDB), len(s.Neigh))
	}
	if a := d.Recorder().Anomalies(); len(a) != 0 {
		t.Fatalf("anomalies %v", a)
	}
}
