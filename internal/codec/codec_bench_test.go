package codec

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// type2Routes builds n type-2 routes sharing one upstream-like *Attrs.
func type2Routes(n int) []*route.Route {
	a := upEVPNAttrs(100)
	rd := route.NewRDIPv4(upLocal, 1)
	rs := make([]*route.Route, n)
	for i := range rs {
		mac := route.MAC{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		rs[i] = &route.Route{Family: route.FamilyEVPN, Key: route.EVPNMACIPKey(rd, 0, mac, ip), Label: 1001, Attrs: a}
	}
	return rs
}

// BenchmarkDecodeType2Single decodes UPDATEs carrying one type-2 NLRI each
// (as upstream and GoBGP send them), all with the same attributes but
// different MACs: the attribute intern cache hits, NLRI differ.
func BenchmarkDecodeType2Single(b *testing.B) {
	const n = 1024
	msgs := make([][]byte, n)
	for i, r := range type2Routes(n) {
		m, err := EncodeUpdate([]*route.Route{r})
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = m
	}
	d := NewDecoder()
	b.ReportAllocs()
	b.SetBytes(int64(len(msgs[0])))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		u, err := d.Decode(msgs[i%n], nil)
		if err != nil || len(u.Advertised) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeType2Batch100 decodes UPDATEs of 100 type-2 NLRI each.
func BenchmarkDecodeType2Batch100(b *testing.B) {
	rs := type2Routes(100)
	m, err := EncodeUpdate(rs)
	if err != nil {
		b.Fatal(err)
	}
	d := NewDecoder()
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	b.ResetTimer()
	for b.Loop() {
		u, err := d.Decode(m, nil)
		if err != nil || len(u.Advertised) != 100 {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeType2Miss decodes single-NLRI UPDATEs whose attributes all
// differ (LOCAL_PREF changes), so every message is parsed by gobgp.
func BenchmarkDecodeType2Miss(b *testing.B) {
	m, err := EncodeUpdate(type2Routes(1))
	if err != nil {
		b.Fatal(err)
	}
	lp := 19 + 4 + 4 + 3 + 3 // offset of the LOCAL_PREF value
	d := NewDecoder()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		binary.BigEndian.PutUint32(m[lp:], uint32(i))
		if _, err := d.Decode(m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeType2 encodes one single-NLRI type-2 UPDATE.
func BenchmarkEncodeType2(b *testing.B) {
	rs := type2Routes(1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeUpdate(rs); err != nil {
			b.Fatal(err)
		}
	}
}
