package vpn

import (
	"fmt"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

// TestEVIToVRFLinkLongIDs: once instance ids pass 99, upstream's veth
// names ("evpn100-ipvpn101", 16 characters) no longer fit in IFNAMSIZ;
// the link then uses veth.Names' short names (reference §5.5).
func TestEVIToVRFLinkLongIDs(t *testing.T) {
	ve := newVRFEnv(t)
	// Instance ids are never reused: 99 short-lived VRFs take ids 1..99.
	for i := range 99 {
		id := fmt.Sprintf("tmp%d", i)
		ve.attach(ipReq(id, 1, "10.0.0.5", "tap", rts(rt1), rts(rt1)))
		if err := ve.ipDetach(id, 1, "10.0.0.5"); err != nil {
			t.Fatal(err)
		}
	}
	ve.attach(evReq("evi", 1, "11.0.0.1", "tap-vm", rts(rt2), rts(rt2))) // id 100
	r := ipReq("vrf", 1, "11.0.0.1/24", "", rts(rt1), rts(rt1))          // id 101
	r.LocalPort = dataplane.LocalPort{EVPN: "evi"}
	ve.attach(r)
	ve.settle()
	// veth.Names(100, 101); upstream's would be evpn100-ipvpn101.
	eviIf, vrfIf := "e2i-ctxqgthhwdf", "i2e-ctxqgthhwdf"
	if len(ve.links.Live()) != 1 || ve.links.Live()[eviIf] != vrfIf {
		t.Fatalf("veths %v, want %s/%s", ve.links.Live(), eviIf, vrfIf)
	}
	if s := ve.state("evi"); s.Gateway != eviIf {
		t.Fatalf("EVI gateway port %q, want %s", s.Gateway, eviIf)
	}
	if info, _ := ve.m.Instance("vrf"); info.Ports[vrfIf] == nil || info.Link == nil || info.Link.VRFIf != vrfIf || info.Link.EVIIf != eviIf {
		t.Fatalf("VRF ports %v, link %+v", info.Ports, info.Link)
	}
	if err := ve.ipDetach("vrf", 1, "11.0.0.1/24"); err != nil {
		t.Fatal(err)
	}
	ve.settle()
	if len(ve.links.Live()) != 0 {
		t.Fatalf("veths left %v", ve.links.Live())
	}
}
