package dummy

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// TestCallLog checks the call log both drivers share: bounded (oldest
// dropped, order kept), stamped with sequence numbers and injected
// errors, failures queued per method, anomalies kept up to 100 but all
// counted.
func TestCallLog(t *testing.T) {
	boom1, boom2 := errors.New("boom1"), errors.New("boom2")
	for _, tc := range []struct {
		name string
		// run makes 5 calls named op (the 2nd and 3rd fail), then 120
		// anomalous ones, and returns the logged ops, seqs, errors and
		// anomalies.
		run func(limit int) (ops []string, seqs []uint64, errs []error, anomalies []string)
	}{
		{"evpn", func(limit int) ([]string, []uint64, []error, []string) {
			d := New(Options{LogLimit: limit, Log: quiet})
			r := d.Recorder()
			r.FailNext("Unplug", boom1)
			r.FailNext("Unplug", boom2)
			dp, _ := d.NewEVI(dataplane.EVIConfig{InstanceID: 1})
			for range 4 {
				_ = dp.Unplug(dataplane.LocalPort{LinuxIf: "tap"}, mac(1), netip.Addr{}, true)
			}
			for range 120 { // not plugged: anomalies, as the last 2 above
				_ = dp.Unplug(dataplane.LocalPort{LinuxIf: "tap"}, mac(2), netip.Addr{}, true)
			}
			var ops []string
			var seqs []uint64
			var errs []error
			for _, c := range r.Calls() {
				ops, seqs, errs = append(ops, c.Op), append(seqs, c.Seq), append(errs, c.Err)
			}
			if n := r.Counters().Anomalies; n != 122 {
				t.Errorf("evpn: Counters().Anomalies = %d, want 122", n)
			}
			if n := r.Counters().Calls; n != 125 {
				t.Errorf("evpn: Counters().Calls = %d, want 125", n)
			}
			return ops, seqs, errs, r.Anomalies()
		}},
		{"ipvpn", func(limit int) ([]string, []uint64, []error, []string) {
			d := NewIPVPN(Options{LogLimit: limit, Log: quiet})
			d.FailNext("Unplug", boom1)
			d.FailNext("Unplug", boom2)
			dp, _ := d.NewVRF(dataplane.VRFConfig{InstanceID: 1})
			p := netip.MustParsePrefix("10.0.0.1/32")
			for range 4 {
				_ = dp.Unplug(dataplane.LocalPort{LinuxIf: "tap"}, mac(1), p, 16, dataplane.DirectionBoth, true)
			}
			for range 120 {
				_ = dp.Unplug(dataplane.LocalPort{LinuxIf: "tap"}, mac(2), p, 16, dataplane.DirectionBoth, true)
			}
			var ops []string
			var seqs []uint64
			var errs []error
			for _, c := range d.Calls() {
				ops, seqs, errs = append(ops, c.Op), append(seqs, c.Seq), append(errs, c.Err)
			}
			return ops, seqs, errs, d.Anomalies()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Unbounded enough: every call kept, in order.
			ops, seqs, errs, anomalies := tc.run(1000)
			if len(ops) != 125 || ops[0][:3] != "New" || ops[1] != "Unplug" {
				t.Fatalf("log of %d calls, first %v", len(ops), ops[:2])
			}
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("call %d has seq %d", i, s)
				}
			}
			if errs[0] != nil || errs[1] != boom1 || errs[2] != boom2 || errs[3] != nil {
				t.Errorf("injected errors %v, want [nil boom1 boom2 nil ...]", errs[:4])
			}
			if len(anomalies) != maxAnomalies {
				t.Errorf("%d anomalies kept, want %d", len(anomalies), maxAnomalies)
			}
			// Bounded: the last 3 calls, oldest first.
			_, seqs, _, _ = tc.run(3)
			if len(seqs) != 3 || seqs[0] != 123 || seqs[1] != 124 || seqs[2] != 125 {
				t.Errorf("bounded log seqs %v, want [123 124 125]", seqs)
			}
		})
	}
}
