package bgp

import (
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestRTCRouteCounting checks that the peer is subscribed to an RT while
// at least one of its RTC routes asks for it (RFC 4684 §4: routes from
// different origin ASes count separately), to every RT while it sends the
// default RTC route, and that withdrawals of RTC routes never received
// are ignored.
func TestRTCRouteCounting(t *testing.T) {
	f := newFixture(t, true)
	evi := newRecorder("EVI-1")
	publish(f, evi, type2(nil, 1, rtX, localAddr), type2(nil, 2, rtY, localAddr))
	f.eng.Subscribe(evi, engine.Match{Family: route.FamilyEVPN, RT: rtX})
	f.establish(route.FamilyEVPN, route.FamilyRTC)
	f.sync(t)
	// send builds the UPDATE a route reflector would send: the RTC route
	// for rt from origin AS asn (wild: the default RTC route).
	send := func(asn uint32, rt route.RT, wild, withdraw bool) {
		t.Helper()
		key := route.RTCKey(asn, rt)
		if wild {
			key = route.RTCWildcardKey
		}
		r := &route.Route{Family: route.FamilyRTC, Key: key, Attrs: &route.Attrs{NextHop: peerAddr, HasLocalPref: true, LocalPref: 100}}
		enc := codec.EncodeUpdate
		if withdraw {
			enc = codec.EncodeWithdraw
		}
		msg, err := enc([]*route.Route{r})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.p.Update(msg); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		what     string
		asn      uint32
		rt       route.RT
		wild     bool
		withdraw bool
		want     int // routes sent to the peer: our RTC route + the VPN routes it asks for
	}{
		{"withdraw of an RTC route never received", 64512, rtX, false, true, 1},
		{"RTC route for rtX from AS 64512", 64512, rtX, false, false, 2},
		{"RTC route for rtX from AS 65000", 65000, rtX, false, false, 2},
		{"AS 64512 withdraws: AS 65000 still asks", 64512, rtX, false, true, 2},
		{"AS 65000 withdraws: nobody asks", 65000, rtX, false, true, 1},
		{"withdraw again: ignored, no underflow", 65000, rtX, false, true, 1},
		{"default RTC route: every RT", 0, 0, true, false, 3},
		{"RTC route for rtY under the default", 64512, rtY, false, false, 3},
		{"default withdrawn: rtY still asked", 0, 0, true, true, 2},
		{"default withdrawn again: ignored", 0, 0, true, true, 2},
		{"rtY withdrawn", 64512, rtY, false, true, 1},
		{"rtX asked again", 64512, rtX, false, false, 2},
	} {
		send(step.asn, step.rt, step.wild, step.withdraw)
		f.sync(t)
		if got := f.wire.keys(); len(got) != step.want {
			t.Fatalf("step %d (%s): peer has %v; want %d routes", i, step.what, got, step.want)
		}
	}
}
