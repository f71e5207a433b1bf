package linux

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// The messages below are RTM_NEWNEIGH payloads as the kernel dumps them
// (struct ndmsg, then route attributes), in little-endian byte order.

var (
	// bridge fdb 02:00:00:00:00:01 dev vxlan(5) dst 10.0.0.2 vni 100 self permanent
	msgFDBRemote = []byte{
		0x07, 0x00, 0x00, 0x00, // family AF_BRIDGE, pad
		0x05, 0x00, 0x00, 0x00, // ifindex 5
		0x80, 0x00, // state NUD_PERMANENT
		0x02,                   // flags NTF_SELF
		0x00,                   // type
		0x0a, 0x00, 0x02, 0x00, // NDA_LLADDR, len 10
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, // MAC + 2 bytes of padding
		0x08, 0x00, 0x01, 0x00, // NDA_DST, len 8
		0x0a, 0x00, 0x00, 0x02, // 10.0.0.2
		0x08, 0x00, 0x07, 0x00, // NDA_VNI, len 8
		0x64, 0x00, 0x00, 0x00, // 100
		0x14, 0x00, 0x03, 0x00, // NDA_CACHEINFO, len 20 (ignored)
		0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
		0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
	}
	// bridge fdb 02:00:00:00:00:09 dev tap(7) master br(3) static
	msgFDBBridge = []byte{
		0x07, 0x00, 0x00, 0x00, // family AF_BRIDGE, pad
		0x07, 0x00, 0x00, 0x00, // ifindex 7
		0x40, 0x00, // state NUD_NOARP
		0x00,                   // flags
		0x00,                   // type
		0x0a, 0x00, 0x02, 0x00, // NDA_LLADDR, len 10
		0x02, 0x00, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00,
		0x08, 0x00, 0x09, 0x00, // NDA_MASTER, len 8
		0x03, 0x00, 0x00, 0x00, // 3
	}
	// ip -6 neigh 2001:db8::5 lladdr 02:00:00:00:00:05 dev vxlan(5) permanent
	msgNeigh6 = []byte{
		0x0a, 0x00, 0x00, 0x00, // family AF_INET6, pad
		0x05, 0x00, 0x00, 0x00, // ifindex 5
		0x80, 0x00, // state NUD_PERMANENT
		0x00,                   // flags
		0x01,                   // type RTN_UNICAST
		0x14, 0x00, 0x01, 0x00, // NDA_DST, len 20
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05,
		0x0a, 0x00, 0x02, 0x00, // NDA_LLADDR, len 10
		0x02, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
	}
	// fdb entry whose NDA_DST is an IPv4-mapped IPv6 address, and no NDA_VNI
	msgFDBMapped = []byte{
		0x07, 0x00, 0x00, 0x00, // family AF_BRIDGE, pad
		0x05, 0x00, 0x00, 0x00, // ifindex 5
		0x80, 0x00, // state NUD_PERMANENT
		0x02,                   // flags NTF_SELF
		0x00,                   // type
		0x0a, 0x00, 0x02, 0x00, // NDA_LLADDR, len 10
		0, 0, 0, 0, 0, 0, 0, 0, // 00:00:00:00:00:00 (flood)
		0x14, 0x00, 0x01, 0x00, // NDA_DST, len 20
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x0a, 0x00, 0x00, 0x03, // ::ffff:10.0.0.3
	}
	// ip neigh 10.0.0.9 dev vxlan(5) incomplete: no NDA_LLADDR
	msgNeigh4NoMAC = []byte{
		0x02, 0x00, 0x00, 0x00, // family AF_INET, pad
		0x05, 0x00, 0x00, 0x00, // ifindex 5
		0x01, 0x00, // state NUD_INCOMPLETE
		0x00,                   // flags
		0x01,                   // type
		0x08, 0x00, 0x01, 0x00, // NDA_DST, len 8
		0x0a, 0x00, 0x00, 0x09, // 10.0.0.9
	}
)

func TestParseNeigh(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Fatal("the test messages are little-endian; this host is big-endian: byte-swap them")
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		ok   bool
		want ndEntry
	}{
		{"remote fdb entry", msgFDBRemote, true, ndEntry{index: 5, state: netlink.NUD_PERMANENT, flags: netlink.NTF_SELF,
			dst: netip.MustParseAddr("10.0.0.2"), lladdr: []byte{2, 0, 0, 0, 0, 1}, vni: 100}},
		{"bridge entry", msgFDBBridge, true, ndEntry{index: 7, state: netlink.NUD_NOARP,
			lladdr: []byte{2, 0, 0, 0, 0, 9}, master: true}},
		{"IPv6 neighbour", msgNeigh6, true, ndEntry{index: 5, state: netlink.NUD_PERMANENT,
			dst: netip.MustParseAddr("2001:db8::5"), lladdr: []byte{2, 0, 0, 0, 0, 5}}},
		{"IPv4-mapped destination unmapped", msgFDBMapped, true, ndEntry{index: 5, state: netlink.NUD_PERMANENT, flags: netlink.NTF_SELF,
			dst: netip.MustParseAddr("10.0.0.3"), lladdr: []byte{0, 0, 0, 0, 0, 0}}},
		{"neighbour without MAC", msgNeigh4NoMAC, true, ndEntry{index: 5, state: netlink.NUD_INCOMPLETE,
			dst: netip.MustParseAddr("10.0.0.9")}},
		{"shorter than ndmsg", msgFDBRemote[:11], false, ndEntry{}},
		{"attribute longer than the message", msgFDBRemote[:20], false, ndEntry{}},
		{"attribute length under 4", append(bytes.Clone(msgNeigh4NoMAC[:12]), 0x02, 0x00, 0x01, 0x00), false, ndEntry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseNeigh(tc.msg)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if got.index != tc.want.index || got.state != tc.want.state || got.flags != tc.want.flags ||
				got.dst != tc.want.dst || !bytes.Equal(got.lladdr, tc.want.lladdr) || got.vni != tc.want.vni || got.master != tc.want.master {
				t.Fatalf("parseNeigh = %+v, want %+v", got, tc.want)
			}
			// The fields agree with the netlink library's decoding.
			n, err := netlink.NeighDeserialize(tc.msg)
			if err != nil {
				t.Fatalf("netlink.NeighDeserialize: %v", err)
			}
			ip, _ := netip.AddrFromSlice(n.IP)
			if n.LinkIndex != got.index || n.State != int(got.state) || n.Flags != int(got.flags) || ip.Unmap() != got.dst ||
				!bytes.Equal(n.HardwareAddr, got.lladdr) || n.VNI != int(got.vni) || (n.MasterIndex != 0) != got.master {
				t.Fatalf("netlink.NeighDeserialize = %+v, parseNeigh = %+v", n, got)
			}
		})
	}
}

// TestParseNeighAllocates nothing: the reconcile decodes a million
// entries per table and round.
func TestParseNeighAllocates(t *testing.T) {
	var sink ndEntry
	if n := testing.AllocsPerRun(100, func() { sink, _ = parseNeigh(msgFDBRemote) }); n != 0 {
		t.Fatalf("parseNeigh: %v allocations per message, want 0", n)
	}
	_ = sink
}

func BenchmarkParseNeigh(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		parseNeigh(msgFDBRemote)
	}
}

func BenchmarkNeighDeserialize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		netlink.NeighDeserialize(msgFDBRemote)
	}
}

// TestCmpFDBRec: the reconcile sorts the dumped fdb entries with it and
// looks the desired ones up by binary search, so it must order by MAC,
// then VTEP, then VNI, and be 0 only for equal keys.
func TestCmpFDBRec(t *testing.T) {
	r := func(m byte, vtep string, vni uint32) fdbRec {
		return fdbRec{mac: [6]byte{2, 0, 0, 0, 0, m}, vtep: netip.MustParseAddr(vtep), vni: vni}
	}
	for _, tc := range []struct {
		a, b fdbRec
		want int
	}{
		{r(1, "10.0.0.2", 5), r(1, "10.0.0.2", 5), 0},
		{r(1, "10.0.0.9", 9), r(2, "10.0.0.1", 1), -1}, // MAC first
		{r(2, "10.0.0.1", 9), r(2, "10.0.0.2", 1), -1}, // then VTEP
		{r(2, "10.0.0.2", 7), r(2, "10.0.0.2", 6), 1},  // then VNI
		{r(2, "10.0.0.2", 7), r(2, "2001:db8::1", 7), -1},
		{fdbRec{state: 1, flags: 2}, fdbRec{master: true}, 0}, // other fields ignored
	} {
		if got := cmpFDBRec(tc.a, tc.b); got != tc.want {
			t.Errorf("cmpFDBRec(%v, %v) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := cmpFDBRec(tc.b, tc.a); got != -tc.want {
			t.Errorf("cmpFDBRec(%v, %v) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
