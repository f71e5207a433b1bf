package route

import (
	"net/netip"
	"testing"
)

func TestParseRT(t *testing.T) {
	tests := []struct {
		in   string
		want RT
		ok   bool
	}{
		{"64512:100", NewRT(64512, 100), true},
		{" 1:4294967295 ", NewRT(1, 4294967295), true},
		{"0:0", NewRT(0, 0), true},
		{"65536:1", 0, false},      // 4-octet AS form: not understood (upstream)
		{"1:4294967296", 0, false}, // number too large
		{"64512", 0, false},
		{"a:1", 0, false},
		{"1.2.3.4:5", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseRT(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRT(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	rt := NewRT(64512, 100)
	// Two-octet-AS route target: type 0x00, subtype 0x02 (RFC 4360 §4).
	if b := rt.Bytes(); b != [8]byte{0x00, 0x02, 0xfc, 0x00, 0x00, 0x00, 0x00, 0x64} || rt.String() != "64512:100" || !rt.TwoOctetAS() {
		t.Fatalf("NewRT(64512, 100) = % x %s", b, rt)
	}
}

func TestRDIPv4(t *testing.T) {
	rd := NewRDIPv4(netip.MustParseAddr("127.0.0.10"), 4)
	// type 1 (RFC 4364 §4.2): 00 01 | IPv4 | 2-byte number
	if rd != (RD{0x00, 0x01, 127, 0, 0, 10, 0x00, 0x04}) || rd.String() != "127.0.0.10:4" {
		t.Fatalf("RD = % x %s", rd[:], rd)
	}
}

func TestKeysRoundTrip(t *testing.T) {
	rd := NewRDIPv4(netip.MustParseAddr("192.0.2.1"), 7)
	mac := MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	ip := netip.MustParseAddr("10.0.0.5")
	r := &Route{Family: FamilyEVPN, Key: EVPNMACIPKey(rd, 3, mac, ip)}
	gm, gip, ok := r.MACIP()
	if grd, _ := r.RD(); !ok || gm != mac || gip != ip || grd != rd || r.ETag() != 3 || r.EVPNType() != EVPNMACIP {
		t.Fatalf("type-2 key: %v %v %v %v", gm, gip, ok, r)
	}
	macOnly := &Route{Family: FamilyEVPN, Key: EVPNMACIPKey(rd, 0, mac, netip.Addr{})}
	if _, gip, ok := macOnly.MACIP(); !ok || gip.IsValid() || macOnly.Key == r.Key {
		t.Fatalf("MAC-only key: %v %v", gip, ok)
	}
	m := &Route{Family: FamilyEVPN, Key: EVPNMulticastKey(rd, 0, netip.MustParseAddr("192.0.2.1"))}
	if o, ok := m.Originator(); !ok || o != netip.MustParseAddr("192.0.2.1") || m.EVPNType() != EVPNMulticast {
		t.Fatalf("type-3 key: %v %v", o, ok)
	}
	v := &Route{Family: FamilyVPNv4, Key: VPNv4Key(rd, netip.MustParsePrefix("10.1.2.3/24"))}
	if p, ok := v.Prefix(); !ok || p != netip.MustParsePrefix("10.1.2.0/24") {
		t.Fatalf("VPNv4 key keeps host bits or loses the prefix: %v %v", p, ok)
	}
	c := &Route{Family: FamilyRTC, Key: RTCKey(64512, NewRT(64512, 100))}
	if as, rt, wild, ok := c.RTCTarget(); !ok || wild || as != 64512 || rt != NewRT(64512, 100) {
		t.Fatalf("RTC key: %v %v %v %v", as, rt, wild, ok)
	}
	w := &Route{Family: FamilyRTC, Key: RTCWildcardKey}
	if _, _, wild, ok := w.RTCTarget(); !ok || !wild {
		t.Fatal("RTC default route not seen as a wildcard")
	}
}

func TestAttrsEqualAndDefaults(t *testing.T) {
	a := &Attrs{NextHop: netip.MustParseAddr("192.0.2.1"), RTs: []RT{NewRT(1, 1)}}
	b := a.WithRTs([]RT{NewRT(1, 1)})
	if !a.Equal(b) || a.LocalPrefOrDefault() != 100 || len(a.EncapsOrDefault()) != 1 || a.EncapsOrDefault()[0] != EncapDefault {
		t.Fatal("equal attrs or defaults wrong")
	}
	c := a.WithRTs([]RT{NewRT(1, 2)})
	if a.Equal(c) || a.RTs[0] != NewRT(1, 1) {
		t.Fatal("WithRTs changed the original or compared equal")
	}
}
