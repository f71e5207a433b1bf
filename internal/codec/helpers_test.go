package codec

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// hx decodes commented hex: on each line, text after "//" is ignored, and
// so are spaces, "|" and line breaks.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.NewReplacer(" ", "", "\t", "", "|", "").Replace(line))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatalf("bad hex literal %q: %v", b.String(), err)
	}
	return out
}

// update frames path attributes (commented hex, lengths included) as a
// whole UPDATE: header, withdrawn length 0, total attribute length.
func update(t testing.TB, attrs string) []byte {
	t.Helper()
	a := hx(t, attrs)
	m := append(hx(t, "ffffffffffffffffffffffffffffffff 0000 02 0000 0000"), a...)
	binary.BigEndian.PutUint16(m[16:], uint16(len(m)))
	binary.BigEndian.PutUint16(m[21:], uint16(len(a)))
	return m
}

func mustRD(t testing.TB, s string) route.RD {
	t.Helper()
	var rd route.RD
	copy(rd[:], hx(t, s))
	return rd
}

func mustMAC(t testing.TB, s string) route.MAC {
	t.Helper()
	m, err := route.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	nh1   = netip.MustParseAddr("192.0.2.1")
	rt641 = route.NewRT(64, 1)
)

func allowAll(route.Family) bool { return true }
