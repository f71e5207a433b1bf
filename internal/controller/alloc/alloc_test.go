package alloc

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestParseRanges(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"100:119,500:519", "100:119,500:519", ""},
		{" 7 , 9:10 ", "7:7,9:10", ""},
		{"5:4", "", "minimum above maximum"},
		{"1:10,10:12", "", "overlaps 1:10"},
		{"0:3", "", "between 1 and 16777215"},
		{"1:16777216", "", "between 1 and 16777215"},
		{"a:b", "", "decimal integers"},
		{"", "", "no range given"},
	} {
		r, err := ParseRanges(tc.in, 1, 1<<24-1)
		if fmt.Sprint(err) != "<nil>" || tc.err != "" {
			if err == nil || tc.err == "" || !contains(err.Error(), tc.err) {
				t.Errorf("ParseRanges(%q): error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if r.String() != tc.want {
			t.Errorf("ParseRanges(%q) = %s, want %s", tc.in, r, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestPickTakesEveryValueOnceThenFails(t *testing.T) {
	rs, _ := ParseRanges("3:4,10:12", 1, 100)
	used := map[uint32]bool{11: true, 50: true} // 50 is outside: ignored
	var got []uint32
	for {
		v, ok := rs.Pick(used)
		if !ok {
			break
		}
		if used[v] || !rs.Contains(v) {
			t.Fatalf("Pick gave %d (used %v)", v, used)
		}
		used[v] = true
		got = append(got, v)
	}
	if len(got) != 4 {
		t.Fatalf("picked %v, want the 4 free values 3, 4, 10, 12", got)
	}
}

func TestBoundsAndDefaultPools(t *testing.T) {
	for _, tc := range []struct {
		prefix, gw, pools string
	}{
		{"10.0.0.0/24", "10.0.0.1", "[{10.0.0.2 10.0.0.254}]"},
		{"10.0.0.0/24", "10.0.0.100", "[{10.0.0.1 10.0.0.99} {10.0.0.101 10.0.0.254}]"},
		{"10.0.0.0/24", "", "[{10.0.0.1 10.0.0.254}]"},
		{"10.0.0.0/30", "10.0.0.1", "[{10.0.0.2 10.0.0.2}]"},
		{"10.0.0.0/31", "", "[{10.0.0.0 10.0.0.1}]"},
		{"2001:db8::/126", "2001:db8::1", "[{2001:db8::2 2001:db8::3}]"},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		var gw netip.Addr
		if tc.gw != "" {
			gw = netip.MustParseAddr(tc.gw)
		}
		if got := fmt.Sprint(DefaultPools(p, gw)); got != tc.pools {
			t.Errorf("DefaultPools(%s, %s) = %s, want %s", tc.prefix, tc.gw, got, tc.pools)
		}
	}
	first, last := Bounds(netip.MustParsePrefix("192.168.4.0/22"))
	if first.String() != "192.168.4.0" || last.String() != "192.168.7.255" {
		t.Fatalf("Bounds(/22) = %s %s", first, last)
	}
}

func TestPickAddr(t *testing.T) {
	pools := []Pool{{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.4")}}
	used := map[netip.Addr]bool{netip.MustParseAddr("10.0.0.2"): true}
	for range 2 {
		a, ok := PickAddr(pools, used, netip.MustParseAddr("10.0.0.3"))
		if !ok || a.String() != "10.0.0.4" {
			t.Fatalf("PickAddr = %s %v, want 10.0.0.4 (the only free, non-gateway address)", a, ok)
		}
	}
	used[netip.MustParseAddr("10.0.0.4")] = true
	if a, ok := PickAddr(pools, used, netip.MustParseAddr("10.0.0.3")); ok {
		t.Fatalf("PickAddr on a full pool = %s", a)
	}
}

func TestRandomMAC(t *testing.T) {
	m := RandomMAC()
	if len(m) != 17 || m[:9] != "fa:16:3e:" {
		t.Fatalf("RandomMAC = %q", m)
	}
}
