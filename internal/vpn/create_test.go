package vpn

import (
	"context"
	"errors"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestCreateFailures pins what a failed instance creation answers and
// that it keeps nothing: the forced VNI/label and the RD are free again,
// and ResetState is retried until it succeeds, then never called again.
func TestCreateFailures(t *testing.T) {
	rt := route.NewRT(64512, 1)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name      string
		typ       Type
		failOp    string
		wantErr   string
		wantReset int // ResetState calls after the failed and two good creations
	}{
		{"evpn reset", EVPN, "ResetState",
			`resetting the state of E-VPN dataplane driver "dummy": boom`, 2},
		{"evpn new", EVPN, "NewEVI",
			`creating the E-VPN dataplane for instance vpn-a (VNI 5000) with driver "dummy": boom`, 1},
		{"ipvpn reset", IPVPN, "ResetState",
			`resetting the state of IP VPN dataplane driver "dummy": boom`, 2},
		{"ipvpn new", IPVPN, "NewVRF",
			`creating the IP VPN dataplane for instance vpn-a (label 5000) with driver "dummy": boom`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ve := newVRFEnv(t)
			req := func(id string, mac byte, vni uint32) AttachRequest {
				r := evReq(id, mac, "10.0.0.5", "tap1", rts(rt), rts(rt))
				if tc.typ == IPVPN {
					r = ipReq(id, mac, "10.0.0.5", "tap1", rts(rt), rts(rt))
				}
				r.VNI = vni
				return r
			}
			resets := func() int {
				n := 0
				if tc.typ == EVPN {
					for _, c := range ve.rec.Calls() {
						if c.Op == "ResetState" {
							n++
						}
					}
					return n
				}
				for _, c := range ve.ipvpn.Calls() {
					if c.Op == "ResetState" {
						n++
					}
				}
				return n
			}
			if tc.typ == EVPN {
				ve.rec.FailNext(tc.failOp, boom)
			} else {
				ve.ipvpn.FailNext(tc.failOp, boom)
			}
			err := ve.m.Attach(context.Background(), req("vpn-a", 1, 5000))
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("attach error = %v, want %q", err, tc.wantErr)
			}
			if !errors.Is(err, boom) {
				t.Errorf("attach error %v does not wrap the driver error", err)
			}
			var ce *Error
			if errors.As(err, &ce) {
				t.Errorf("a driver failure is a server error, got client error %d", ce.Status)
			}
			if _, ok := ve.m.Instance("vpn-a"); ok {
				t.Fatal("a failed creation left an instance")
			}
			// Same forced VNI again: it was released.
			ve.attach(req("vpn-a", 1, 5000))
			ve.attach(req("vpn-b", 2, 0))
			a, _ := ve.m.Instance("vpn-a")
			if _, ok := ve.m.Instance("vpn-b"); !ok {
				t.Fatal("vpn-b not created")
			}
			if a.VNI != 5000 || !a.ForcedVNI || a.Type != map[Type]string{EVPN: "EVI", IPVPN: "VRF"}[tc.typ] {
				t.Errorf("vpn-a: VNI %d forced %v type %s", a.VNI, a.ForcedVNI, a.Type)
			}
			// The failed creation's RD number 1 was released and reused.
			if want := "192.0.2.1:1"; a.RD.String() != want {
				t.Errorf("vpn-a RD %s, want %s", a.RD, want)
			}
			if n := resets(); n != tc.wantReset {
				t.Errorf("ResetState called %d times, want %d", n, tc.wantReset)
			}
		})
	}
}
