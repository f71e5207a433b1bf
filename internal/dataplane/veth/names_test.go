package veth

import (
	"testing"
)

// The short names are "e2i-"/"i2e-" + the first 11 characters of the
// lower-case base32 SHA-256 of the upstream EVI-side name; the expected
// hashes below were computed independently (Python hashlib + base64).
func TestNames(t *testing.T) {
	cases := []struct {
		name         string
		evi, vrf     uint32
		eviIf, vrfIf string
	}{
		{"upstream name", 3, 4, "evpn3-ipvpn4", "ipvpn4-evpn3"},
		{"upstream name of exactly 15 characters", 99, 100, "evpn99-ipvpn100", "ipvpn100-evpn99"},
		// "evpn100-ipvpn101" is 16 characters.
		{"one character too long", 100, 101, "e2i-ctxqgthhwdf", "i2e-ctxqgthhwdf"},
		// "evpn12345-ipvpn7"
		{"long EVI id", 12345, 7, "e2i-j7bs7j352fp", "i2e-j7bs7j352fp"},
		// "evpn4294967295-ipvpn4294967294"
		{"largest ids", 4294967295, 4294967294, "e2i-kuj3ydv2zpn", "i2e-kuj3ydv2zpn"},
		// the same ids swapped give another pair
		{"swapped ids", 101, 100, "e2i-hymw52asjsj", "i2e-hymw52asjsj"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, v := Names(c.evi, c.vrf)
			if e != c.eviIf || v != c.vrfIf {
				t.Fatalf("Names(%d, %d) = %q, %q, want %q, %q", c.evi, c.vrf, e, v, c.eviIf, c.vrfIf)
			}
		})
	}
}

// TestNamesValid checks, over many id pairs around the length limit and
// at the top of the id range, that every name is a valid interface name
// of at most 15 characters and that no two names collide (the two ends
// of one pair included).
func TestNamesValid(t *testing.T) {
	seen := map[string][2]uint32{}
	add := func(name string, e, v uint32) {
		t.Helper()
		if len(name) == 0 || len(name) > IfNameMax {
			t.Fatalf("Names(%d, %d): %q has %d characters, want 1 to %d", e, v, name, len(name), IfNameMax)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				t.Fatalf("Names(%d, %d): %q has character %q", e, v, name, r)
			}
		}
		if prev, ok := seen[name]; ok {
			t.Fatalf("Names(%d, %d) and Names(%d, %d) share the name %q", e, v, prev[0], prev[1], name)
		}
		seen[name] = [2]uint32{e, v}
	}
	ids := []uint32{}
	for i := uint32(1); i <= 300; i++ {
		ids = append(ids, i)
	}
	for i := uint32(0); i < 30; i++ {
		ids = append(ids, 99990+i, 4294967295-i)
	}
	for _, e := range ids {
		for _, v := range ids {
			if e == v {
				continue // an instance is either an EVI or a VRF
			}
			eviIf, vrfIf := Names(e, v)
			add(eviIf, e, v)
			add(vrfIf, e, v)
		}
	}
}
