package linuxipvpn

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// unhex decodes hex with spaces and "|" separators.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The attribute layouts below are include/uapi/linux/lwtunnel.h and
// fib_rules.h; integer fields other than the be64 ones are host order, and
// these literals assume a little-endian host (x86, arm64).

func TestIPEncapEncode(t *testing.T) {
	e := &ipEncap{ID: 302, Dst: addr("10.98.0.2")}
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, ""+
		"0c00 0100 | 0000 0000 0000 012e"+ // LWTUNNEL_IP_ID (1), len 12: be64 302
		"0800 0200 | 0a62 0002") // LWTUNNEL_IP_DST (2), len 8: 10.98.0.2
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode\n got %x\nwant %x", got, want)
	}
	var back ipEncap
	if err := back.Decode(got); err != nil || back != *e {
		t.Fatalf("Decode(Encode) = %+v, %v", back, err)
	}
	if _, err := (&ipEncap{ID: 1, Dst: addr("2001:db8::1")}).Encode(); err == nil {
		t.Error("an IPv6 destination was encoded")
	}
}

func TestRuleMsg(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    rule
		want string
	}{
		{"tun_id", rule{Pref: 1000, Table: 1001, TunID: 302}, "" +
			"02 00 00 00 00 00 00 01 00000000" + // fib_rule_hdr: AF_INET, dst_len 0, src_len 0, tos 0, table 0 (see FRA_TABLE), res, res, FR_ACT_TO_TBL, flags
			"0800 0600 | e8030000" + // FRA_PRIORITY (6): 1000
			"0800 0f00 | e9030000" + // FRA_TABLE (15): 1001
			"0c00 0c00 | 0000 0000 0000 012e" + // FRA_TUN_ID (12): be64 302, not the library's 4 bytes
			"0500 1500 | 13 000000"}, // FRA_PROTOCOL (21): 19, padded
		{"classifier", rule{Pref: 900, Table: 1007, Iif: "tap", IPProto: 6, Dport: [2]uint16{80, 90}, Src: pfx("10.1.1.0/24")}, "" +
			"02 00 18 00 00 00 00 01 00000000" + // src_len 24
			"0800 0200 | 0a010100" + // FRA_SRC (2): 10.1.1.0
			"0800 0600 | 84030000" + // FRA_PRIORITY: 900
			"0800 0f00 | ef030000" + // FRA_TABLE: 1007
			"0800 0300 | 74617000" + // FRA_IIFNAME (3): "tap\0"
			"0500 1600 | 06 000000" + // FRA_IP_PROTO (22): u8 6
			"0800 1800 | 5000 5a00" + // FRA_DPORT_RANGE (24): 80-90
			"0500 1500 | 13 000000"}, // FRA_PROTOCOL
		{"drop", dropRule, "" +
			"02 00 00 00 00 00 00 06 00000000" + // action FR_ACT_BLACKHOLE (6), table 0
			"0800 0600 | e9030000" + // FRA_PRIORITY: 1001; no FRA_TABLE
			"0f00 0300 | 62616770697065 2d 7678 00 00" + // FRA_IIFNAME: "bagpipe-vx\0", padded to 12
			"0500 1500 | 13 000000"}, // FRA_PROTOCOL
	} {
		req := ruleMsg(unix.RTM_NEWRULE, unix.NLM_F_CREATE, tc.r, rtProto)
		got := req.Serialize()[unix.SizeofNlMsghdr:]
		if want := unhex(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", tc.name, got, want)
		}
	}
}

func TestParseMultipath(t *testing.T) {
	nh := func(ifindex, gw, label string) string {
		return "3000 00 00 " + ifindex + // rtnexthop: len 48, flags, hops, ifindex
			"0800 0500 | " + gw + // RTA_GATEWAY (5)
			"0600 1500 | 0200 0000" + // RTA_ENCAP_TYPE (21): LWTUNNEL_ENCAP_IP (2), padded
			"1800 1600" + // RTA_ENCAP (22), len 24, nested:
			"0c00 0100 | 0000 0000 0000 " + label + // LWTUNNEL_IP_ID: be64
			"0800 0200 | " + gw // LWTUNNEL_IP_DST
	}
	b := unhex(t, nh("07000000", "0a620002", "012e")+nh("07000000", "0a620003", "012f"))
	got, err := parseMultipath(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []knexthop{
		{Oif: 7, Gw: addr("10.98.0.2"), Encap: ipEncap{ID: 302, Dst: addr("10.98.0.2")}},
		{Oif: 7, Gw: addr("10.98.0.3"), Encap: ipEncap{ID: 303, Dst: addr("10.98.0.3")}},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseMultipath\n got %+v\nwant %+v", got, want)
	}
	if _, err := parseMultipath(b[:20]); err == nil {
		t.Error("a truncated next hop was accepted")
	}
}

func TestRouteMetric(t *testing.T) {
	seen := map[int]bool{}
	for i := range 1000 {
		p := pfx("10.0.0.0/32")
		a := p.Addr().As4()
		a[2], a[3] = byte(i>>8), byte(i)
		m := routeMetric(pfxFrom(a, 32))
		if m < 1 || m > 65535 {
			t.Fatalf("metric %d out of 1..65535", m)
		}
		seen[m] = true
	}
	if len(seen) < 900 {
		t.Errorf("1000 prefixes got only %d distinct metrics: the kernel's route-info hash would collide", len(seen))
	}
	if routeMetric(pfx("10.1.0.0/16")) != routeMetric(pfx("10.1.0.0/16")) || routeMetric(pfx("10.1.0.0/16")) == routeMetric(pfx("10.1.0.0/24")) {
		t.Error("the metric must be a function of the prefix, length included")
	}
}

func TestRPFilterWarning(t *testing.T) {
	for v, want := range map[string]string{"0": "", "1": "strict", "2": "loose", "": ""} {
		if got := rpFilterWarning(v); !strings.Contains(got, want) || (want == "") != (got == "") {
			t.Errorf("rpFilterWarning(%q) = %q, want it to mention %q", v, got, want)
		}
	}
}
