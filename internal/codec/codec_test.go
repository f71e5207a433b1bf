package codec

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Common attribute literals, in the order and with the flags EncodeUpdate
// writes them (type-code order, MP_REACH_NLRI last, as upstream), so that
// encode(decode(msg)) == msg.
const (
	originIGP = `40 01 01 00 // ORIGIN (well-known transitive), len 1, IGP`
	asPathNil = `40 02 00 // AS_PATH, len 0 (iBGP)`
	localPref = `40 05 04 00000064 // LOCAL_PREF, len 4, 100`
	// Encapsulation VXLAN then RT 64:1 (upstream puts RTs last).
	extRTVXLAN = `c0 10 10 // EXTENDED_COMMUNITIES (optional transitive), len 16
		030c 00000000 0008 // Encapsulation (RFC 5512), tunnel type 8 VXLAN
		0002 0040 00000001 // RT two-octet-AS 64:1`

	// E-VPN type 2, RD 192.0.2.1:1, MAC 52:54:00:12:34:56, IP 10.0.0.5, VNI 100.
	reachType2IP = `80 0e 30 // MP_REACH_NLRI (optional), len 48
		0019 46 // AFI 25 l2vpn, SAFI 70 evpn
		04 c0000201 // next hop len 4, 192.0.2.1
		00 // reserved
		02 25 // route type 2 MAC/IP, len 37
		0001 c0000201 0001 // RD type 1 192.0.2.1:1
		00000000000000000000 // ESI 0
		00000000 // Ethernet tag 0
		30 525400123456 // MAC len 48, MAC
		20 0a000005 // IP len 32, 10.0.0.5
		000064 // label 1: VNI 100 (raw 24 bits)`
)

type decodeCase struct {
	name  string
	msg   string // attributes (framed by update) or "" if raw is used
	check func(t *testing.T, u Update)
	// roundTrip: EncodeUpdate(decoded) must give the same bytes.
	exact bool
}

func TestDecode(t *testing.T) {
	rd := mustRD(t, "0001 c0000201 0001")
	cases := []decodeCase{
		{
			name:  "type2 with IP",
			msg:   originIGP + "\n" + asPathNil + "\n" + localPref + "\n" + extRTVXLAN + "\n" + reachType2IP,
			exact: true,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				wantKey := route.EVPNMACIPKey(rd, 0, mustMAC(t, "52:54:00:12:34:56"), netip.MustParseAddr("10.0.0.5"))
				if r.Family != route.FamilyEVPN || r.Key != wantKey || r.Label != 100 || r.Extra != "" {
					t.Errorf("route %+v, want key %x label 100", r, wantKey)
				}
				a := r.Attrs
				if a.NextHop != nh1 || !a.HasLocalPref || a.LocalPref != 100 || a.Origin != 0 ||
					!slices.Equal(a.RTs, []route.RT{rt641}) || !slices.Equal(a.Encaps, []route.Encap{route.EncapVXLAN}) {
					t.Errorf("attrs %+v", a)
				}
			},
		},
		{
			name: "type2 without IP, with ESI and a second label",
			msg: originIGP + "\n" + asPathNil + "\n" + localPref + "\n" + extRTVXLAN + `
				80 0e 2f // MP_REACH_NLRI, len 47
				0019 46 04 c0000201 00 // l2vpn/evpn, next hop 192.0.2.1, reserved
				02 24 // type 2, len 36
				0001 c0000201 0001 // RD
				00 112233445566778899 // ESI type 0, value
				0000000a // Ethernet tag 10
				30 525400abcdef // MAC
				00 // no IP
				000064 // label 1 (VNI 100)
				0007d1 // label 2 (raw 0x0007d1)`,
			exact: true,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				if r.Key != route.EVPNMACIPKey(rd, 10, mustMAC(t, "52:54:00:ab:cd:ef"), netip.Addr{}) {
					t.Errorf("key %x", r.Key)
				}
				if want := string(hx(t, "00112233445566778899 0007d1")); r.Extra != want || r.Label != 100 {
					t.Errorf("extra %x label %d, want %x 100", r.Extra, r.Label, want)
				}
				if r.ETag() != 10 {
					t.Errorf("etag %d", r.ETag())
				}
			},
		},
		{
			name: "type3 with PMSI ingress replication",
			msg: originIGP + "\n" + asPathNil + "\n" + localPref + "\n" + extRTVXLAN + `
				c0 16 09 // PMSI_TUNNEL (optional transitive), len 9
				00 06 // flags 0, tunnel type 6 ingress replication
				000064 // label: VNI 100 (raw)
				c0000202 // tunnel id 192.0.2.2
				80 0e 1c // MP_REACH_NLRI, len 28
				0019 46 04 c0000201 00 // l2vpn/evpn, next hop 192.0.2.1
				03 11 // type 3 inclusive multicast, len 17
				0001 c0000201 0001 // RD
				00000000 // Ethernet tag
				20 c0000201 // originator len 32, 192.0.2.1`,
			exact: true,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				if r.Key != route.EVPNMulticastKey(rd, 0, nh1) {
					t.Errorf("key %x", r.Key)
				}
				want := route.PMSI{TunnelType: 6, Label: 100, TunnelID: netip.MustParseAddr("192.0.2.2")}
				if p := r.Attrs.PMSI; p == nil || *p != want {
					t.Errorf("PMSI %+v, want %+v", p, want)
				}
			},
		},
		{
			name: "VPNv4 with label, MED, AS path, LB order, RT record, other",
			msg: `40 01 01 02 // ORIGIN INCOMPLETE
				40 02 0a 02 02 0000fde8 0000fde9 // AS_PATH: AS_SEQUENCE of 2 4-byte ASNs 65000 65001
				80 04 04 00000007 // MULTI_EXIT_DISC 7
				40 05 04 000000c8 // LOCAL_PREF 200
				c0 10 28 // EXTENDED_COMMUNITIES, len 40
				030c 00000000 000a // encap MPLS
				0013 0040 00000002 // RT-record 64:2
				0314 00000005 0000 // consistent hash sort order 5
				0102 c6336401 0007 // RT IPv4 198.51.100.1:7 (kept as other)
				0002 0040 00000001 // RT 64:1
				80 0e 20 // MP_REACH_NLRI, len 32
				0001 80 // AFI 1 ipv4, SAFI 128 mpls-vpn
				0c 0000000000000000 c0000201 // next hop len 12: RD 0 + 192.0.2.1
				00
				70 // 112 bits = label 24 + RD 64 + prefix 24
				000641 // label 100 << 4 | bottom of stack
				0000 fde8 00000001 // RD type 0 65000:1
				0a0102 // 10.1.2.0/24`,
			exact: true,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				p := netip.MustParsePrefix("10.1.2.0/24")
				if r.Family != route.FamilyVPNv4 || r.Key != route.VPNv4Key(mustRD(t, "0000 fde8 00000001"), p) || r.Label != 100 {
					t.Errorf("route %+v", r)
				}
				a := r.Attrs
				if a.Origin != 2 || !slices.Equal(a.ASPath, []uint32{65000, 65001}) || !a.HasMED || a.MED != 7 || a.LocalPref != 200 {
					t.Errorf("attrs %+v", a)
				}
				if !a.HasLBOrder || a.LBOrder != 5 || !slices.Equal(a.RTRecords, []route.RT{route.NewRT(64, 2)}) ||
					!slices.Equal(a.Encaps, []route.Encap{route.EncapMPLS}) || !slices.Equal(a.OtherExtCommunities, []uint64{0x0102c63364010007}) {
					t.Errorf("ext communities %+v", a)
				}
			},
		},
		{
			name: "RTC specific and wildcard",
			msg: originIGP + "\n" + asPathNil + "\n" + localPref + `
				80 0e 17 // MP_REACH_NLRI, len 23
				0001 84 04 c0000201 00 // ipv4/rtc, next hop 192.0.2.1
				60 0000fde8 0002004000000001 // 96 bits: origin AS 65000, RT 64:1
				00 // wildcard (prefix length 0)`,
			exact: true,
			check: func(t *testing.T, u Update) {
				if len(u.Advertised) != 2 {
					t.Fatalf("got %d routes", len(u.Advertised))
				}
				if u.Advertised[0].Key != route.RTCKey(65000, rt641) || u.Advertised[1].Key != route.RTCWildcardKey {
					t.Errorf("keys %x %x", u.Advertised[0].Key, u.Advertised[1].Key)
				}
				if u.Advertised[0].Attrs != u.Advertised[1].Attrs {
					t.Errorf("routes of one UPDATE do not share Attrs")
				}
			},
		},
		{
			name: "FlowSpec-VPN redirect",
			msg: originIGP + "\n" + asPathNil + "\n" + localPref + `
				c0 10 08 // EXTENDED_COMMUNITIES
				8008 fde8 00000001 // redirect to VRF 65000:1
				80 0e 13 // MP_REACH_NLRI, len 19
				0001 86 // ipv4/flow-vpn
				00 // no next hop
				00
				0d // NLRI len 13
				0000 fde8 00000001 // RD 65000:1
				01 18 0a0102 // destination prefix 10.1.2.0/24`,
			exact: true,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				if r.Family != route.FamilyFlowVPN || r.Key != string(hx(t, "0000fde800000001 01180a0102")) {
					t.Errorf("route %+v", r)
				}
				if !r.Attrs.HasRedirect || r.Attrs.Redirect != route.NewRT(65000, 1) || r.Attrs.NextHop.IsValid() {
					t.Errorf("attrs %+v", r.Attrs)
				}
			},
		},
		{
			name: "withdraw type2",
			msg: `80 0f 2a // MP_UNREACH_NLRI, len 42
				0019 46 // l2vpn/evpn
				02 25 0001c00002010001 00000000000000000000 00000000 30 525400123456 20 0a000005 000064`,
			exact: false,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Withdrawn)
				if r.Attrs != nil || r.Key != route.EVPNMACIPKey(rd, 0, mustMAC(t, "52:54:00:12:34:56"), netip.MustParseAddr("10.0.0.5")) {
					t.Errorf("withdrawn %+v", r)
				}
				if len(u.Advertised) != 0 || len(u.EndOfRIB) != 0 {
					t.Errorf("update %+v", u)
				}
			},
		},
		{
			name: "FlowSpec-VPN withdraw, two rules",
			msg: `80 0f 17 // MP_UNREACH_NLRI, len 23
				0001 86 // ipv4/flow-vpn
				13 // NLRI len 19
				0001 c0000201 0002 // RD 192.0.2.1:2
				01 18 0a0102 // destination prefix 10.1.2.0/24
				03 81 06 // IP protocol = 6 (end of list, 1-byte value)
				04 81 50 // port == 80`,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Withdrawn)
				if r.Family != route.FamilyFlowVPN || r.Key != string(hx(t, "0001c00002010002 01180a0102 038106 048150")) {
					t.Errorf("withdrawn %+v", r)
				}
				if rd, _ := r.RD(); rd != mustRD(t, "0001 c0000201 0002") {
					t.Errorf("RD %s", rd)
				}
			},
		},
		{
			name: "end of RIB E-VPN",
			msg:  `80 0f 03 0019 46 // MP_UNREACH_NLRI, len 3, l2vpn/evpn, no NLRI`,
			check: func(t *testing.T, u Update) {
				if !slices.Equal(u.EndOfRIB, []route.Family{route.FamilyEVPN}) {
					t.Errorf("EndOfRIB %v", u.EndOfRIB)
				}
			},
		},
		{
			name: "unknown optional transitive attribute is ignored",
			msg: originIGP + "\n" + asPathNil + "\n" + localPref + `
				c0 f0 03 010203 // attribute 240, optional transitive, len 3
				` + reachType2IP,
			check: func(t *testing.T, u Update) {
				r := one(t, u.Advertised)
				if r.Attrs.Discarded != nil || !r.Attrs.HasLocalPref {
					t.Errorf("attrs %+v", r.Attrs)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := update(t, c.msg)
			seed(t, msg)
			d := NewDecoder()
			u, err := d.Decode(msg, allowAll)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			c.check(t, u)
			if len(u.Advertised) > 0 {
				enc, err := EncodeUpdate(u.Advertised)
				if err != nil {
					t.Fatalf("EncodeUpdate: %v", err)
				}
				if c.exact && !bytes.Equal(enc, msg) {
					t.Errorf("re-encoded\n%x\nwant\n%x", enc, msg)
				}
				u2, err := NewDecoder().Decode(enc, allowAll)
				if err != nil {
					t.Fatalf("Decode(EncodeUpdate): %v", err)
				}
				sameRoutes(t, u2.Advertised, u.Advertised)
			}
			if len(u.Withdrawn) > 0 {
				enc, err := EncodeWithdraw(u.Withdrawn)
				if err != nil {
					t.Fatalf("EncodeWithdraw: %v", err)
				}
				if !bytes.Equal(enc, msg) {
					t.Errorf("re-encoded withdraw\n%x\nwant\n%x", enc, msg)
				}
			}
			for _, f := range u.EndOfRIB {
				if enc := EncodeEndOfRIB(f); !bytes.Equal(enc, msg) {
					t.Errorf("EncodeEndOfRIB %x, want %x", enc, msg)
				}
			}
		})
	}
}

func one(t *testing.T, rs []*route.Route) *route.Route {
	t.Helper()
	if len(rs) != 1 {
		t.Fatalf("got %d routes, want 1: %v", len(rs), rs)
	}
	return rs[0]
}

func sameRoutes(t *testing.T, got, want []*route.Route) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d routes, want %d", len(got), len(want))
	}
	for i := range got {
		if !route.Equal(got[i], want[i]) {
			t.Errorf("route %d: got %s %+v, want %s %+v", i, got[i], got[i].Attrs, want[i], want[i].Attrs)
		}
	}
}

func TestDecodeFamilyFilter(t *testing.T) {
	msg := update(t, originIGP+"\n"+asPathNil+"\n"+localPref+"\n"+reachType2IP)
	u, err := NewDecoder().Decode(msg, func(f route.Family) bool { return f == route.FamilyVPNv4 })
	if err != nil || len(u.Advertised) != 0 || u.Ignored != 1 {
		t.Fatalf("Decode = %+v, %v; want 1 ignored NLRI", u, err)
	}
}

func TestEndOfRIBIPv4Unicast(t *testing.T) {
	msg := hx(t, `ffffffffffffffffffffffffffffffff // marker
		0017 02 // length 23, UPDATE
		0000 0000 // no withdrawn routes, no attributes`)
	ipv4 := route.NewFamily(1, 1)
	u, err := NewDecoder().Decode(msg, allowAll)
	if err != nil || !slices.Equal(u.EndOfRIB, []route.Family{ipv4}) {
		t.Fatalf("Decode = %+v, %v", u, err)
	}
	if !bytes.Equal(EncodeEndOfRIB(ipv4), msg) {
		t.Errorf("EncodeEndOfRIB(ipv4) = %x", EncodeEndOfRIB(ipv4))
	}
}

func TestInterning(t *testing.T) {
	d := NewDecoder()
	m1 := update(t, originIGP+"\n"+asPathNil+"\n"+localPref+"\n"+extRTVXLAN+"\n"+reachType2IP)
	m2 := bytes.Clone(m1)
	m2[bytes.Index(m2, hx(t, "525400123456"))+5] = 0x57 // another MAC
	u1, err1 := d.Decode(m1, allowAll)
	u2, err2 := d.Decode(m2, allowAll)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	a, b := one(t, u1.Advertised), one(t, u2.Advertised)
	if a.Key == b.Key {
		t.Fatal("test messages should differ in their NLRI")
	}
	if a.Attrs != b.Attrs {
		t.Errorf("same attributes not interned: %p %p", a.Attrs, b.Attrs)
	}
	// A different LOCAL_PREF gives different attributes.
	m3 := update(t, originIGP+"\n"+asPathNil+"\n40 05 04 00000065\n"+extRTVXLAN+"\n"+reachType2IP)
	u3, err := d.Decode(m3, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	if c := one(t, u3.Advertised); c.Attrs == a.Attrs || c.Attrs.LocalPref != 101 {
		t.Errorf("different attributes shared: %+v", c.Attrs)
	}
	// A different next hop too.
	m4 := bytes.Clone(m1)
	m4[bytes.Index(m4, hx(t, "04c0000201"))+4] = 9
	u4, err := d.Decode(m4, allowAll)
	if err != nil {
		t.Fatal(err)
	}
	if c := one(t, u4.Advertised); c.Attrs == a.Attrs || c.Attrs.NextHop != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("different next hop shared: %+v", c.Attrs)
	}
	// The cache stays bounded.
	for i := range 3 * cacheGeneration {
		m := update(t, originIGP+"\n"+asPathNil+"\n40 05 04 0000"+hex4(i)+"\n"+reachType2IP)
		if _, err := d.Decode(m, allowAll); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.cur) + len(d.old); n > 2*cacheGeneration {
		t.Errorf("cache holds %d entries", n)
	}
}

func hex4(i int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[i>>12&15], digits[i>>8&15], digits[i>>4&15], digits[i&15]})
}

func TestEncodeErrors(t *testing.T) {
	a1 := &route.Attrs{NextHop: nh1}
	a2 := &route.Attrs{NextHop: nh1}
	rd := mustRD(t, "0001 c0000201 0001")
	mk := func(i int, a *route.Attrs) *route.Route {
		return &route.Route{Family: route.FamilyEVPN, Key: route.EVPNMACIPKey(rd, 0, route.MAC{0, 0, 0, 0, byte(i >> 8), byte(i)}, netip.Addr{}), Label: 1, Attrs: a}
	}
	if _, err := EncodeUpdate([]*route.Route{mk(1, a1), mk(2, a2)}); err == nil {
		t.Error("EncodeUpdate accepted routes with different *Attrs")
	}
	if _, err := EncodeUpdate([]*route.Route{mk(1, a1), {Family: route.FamilyRTC, Key: route.RTCWildcardKey, Attrs: a1}}); err == nil {
		t.Error("EncodeUpdate accepted mixed families")
	}
	if _, err := EncodeUpdate(nil); err == nil {
		t.Error("EncodeUpdate accepted no routes")
	}
	var many []*route.Route
	for i := range 300 {
		many = append(many, mk(i, a1))
	}
	many = append(many, mk(1000, a2))
	if _, err := EncodeUpdate(many[:300]); !errors.Is(err, ErrTooLong) {
		t.Errorf("EncodeUpdate(300 type-2) = %v, want ErrTooLong", err)
	}
	msgs, err := EncodeUpdates(many)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder()
	var got []*route.Route
	for _, m := range msgs {
		if len(m) > MaxMessageLen {
			t.Errorf("message of %d bytes", len(m))
		}
		u, err := d.Decode(m, allowAll)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, u.Advertised...)
	}
	if len(msgs) < 3 || len(got) != len(many) {
		t.Errorf("%d messages carrying %d routes, want >= 3 carrying %d", len(msgs), len(got), len(many))
	}
	ws, err := EncodeWithdraws(many)
	if err != nil || len(ws) < 2 {
		t.Errorf("EncodeWithdraws: %d messages, %v", len(ws), err)
	}
}

func TestFlowSpecNextHop(t *testing.T) {
	rd := mustRD(t, "0000 fde8 00000001")
	a := &route.Attrs{NextHop: nh1, HasRedirect: true, Redirect: route.NewRT(65000, 1)}
	r := &route.Route{Family: route.FamilyFlowVPN, Key: string(rd[:]) + string(hx(t, "01180a0102")), Attrs: a}
	m, err := EncodeUpdate([]*route.Route{r})
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewDecoder().Decode(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 8955 §4: no next hop is sent, and one received is ignored.
	want := *r
	want.Attrs = &route.Attrs{HasRedirect: true, Redirect: route.NewRT(65000, 1)}
	sameRoutes(t, u.Advertised, []*route.Route{&want})
	if _, err := EncodeUpdate([]*route.Route{{Family: route.FamilyRTC, Key: route.RTCWildcardKey, Attrs: &route.Attrs{}}}); err == nil {
		t.Error("RTC route without a next hop encoded")
	}
}
