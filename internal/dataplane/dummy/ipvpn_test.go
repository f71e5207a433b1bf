package dummy

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

func TestIPVPNDummyRecordsState(t *testing.T) {
	d := NewIPVPN(Options{Log: quiet})
	if !d.ECMP() || len(d.Directions()) != 3 || d.Encaps()[0] != route.EncapDefault || d.Encaps()[1] != route.EncapMPLS {
		t.Fatalf("capabilities: ecmp %v directions %v encaps %v", d.ECMP(), d.Directions(), d.Encaps())
	}
	v, err := d.NewVRF(dataplane.VRFConfig{InstanceID: 3, Label: 16})
	if err != nil {
		t.Fatal(err)
	}
	port := dataplane.LocalPort{LinuxIf: "tap0"}
	mac := route.MAC{1, 2, 3, 4, 5, 6}
	ip := netip.MustParsePrefix("10.0.0.5/32")
	if err := v.Plug(port, mac, ip, 17, dataplane.DirectionBoth); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("10.1.0.0/24")
	nh1, nh2 := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	must(t, v.Apply([]dataplane.VRFChange{
		{Kind: dataplane.AddRoute, Prefix: p, NextHop: nh1, Label: 20, Encap: route.EncapMPLS},
		{Kind: dataplane.AddRoute, Prefix: p, NextHop: nh2, Label: 21, Encap: route.EncapMPLS, LBOrder: 2},
		{Kind: dataplane.RemoveRoute, Prefix: p, NextHop: nh1, Label: 20},
	}))
	c := dataplane.Classifier{Protocol: 6}
	must(t, v.AddClassifier(c, 9))
	s, _ := d.State(3)
	if len(s.Routes[p]) != 1 || s.Routes[p][0] != (NextHop{NextHop: nh2, Label: 21, Encap: route.EncapMPLS, LBOrder: 2}) {
		t.Fatalf("routes %v", s.Routes)
	}
	if s.Classifiers[c] != 9 || len(s.Ports["tap0"]) != 1 {
		t.Fatalf("state %+v", s)
	}
	must(t, v.RemoveClassifier(c, 9))
	must(t, v.Unplug(port, mac, ip, 17, dataplane.DirectionBoth, true))
	must(t, v.Apply([]dataplane.VRFChange{{Kind: dataplane.RemoveRoute, Prefix: p, NextHop: nh1, Label: 20}}))
	if a := d.Anomalies(); len(a) != 1 {
		t.Fatalf("want one anomaly (removal of a missing route), got %v", a)
	}
	d.FailNext("Apply", errors.New("boom"))
	if err := v.Apply(nil); err == nil {
		t.Fatal("injected failure not returned")
	}
	must(t, v.Close())
	if err := v.Close(); !errors.Is(err, errClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
