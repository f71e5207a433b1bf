package flowspec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var pfx = netip.MustParsePrefix

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name string
		c    dataplane.Classifier
		hex  string
		back *dataplane.Classifier // what Decode returns when not c
	}{
		{"upstream sample: tcp dst port 80 from 11.0.0.1/32 to 12.0.0.0/24",
			dataplane.Classifier{SourcePrefix: pfx("11.0.0.1/32"), DestinationPrefix: pfx("12.0.0.0/24"), Protocol: 6, DestinationPort: dataplane.PortRange{Min: 80, Max: 80}},
			"01 18 0c0000" + // type 1 dst prefix, 24 bits, 12.0.0
				" 02 20 0b000001" + // type 2 src prefix, 32 bits, 11.0.0.1
				" 03 81 06" + // type 3 protocol, op end|eq len 1, tcp
				" 05 81 50", // type 5 dst port, op end|eq, 80
			nil},
		{"default route destination, 2-byte port",
			dataplane.Classifier{DestinationPrefix: pfx("0.0.0.0/0"), SourcePort: dataplane.PortRange{Min: 8080, Max: 8080}},
			"01 00" + // type 1, 0 bits, no bytes
				" 06 91 1f90", // type 6 src port, op end|len2|eq, 8080
			nil},
		{"range min 0: < max (upper bound comes back one less)",
			dataplane.Classifier{Protocol: 17, DestinationPort: dataplane.PortRange{Min: 0, Max: 1024}},
			"03 81 11" + // protocol udp
				" 05 94 0400", // dst port, op end|len2|lt, 1024
			&dataplane.Classifier{Protocol: 17, DestinationPort: dataplane.PortRange{Min: 0, Max: 1023}}},
		{"range max 65535: > min",
			dataplane.Classifier{SourcePort: dataplane.PortRange{Min: 1024, Max: 65535}},
			"06 92 0400", // src port, op end|len2|gt, 1024
			&dataplane.Classifier{SourcePort: dataplane.PortRange{Min: 1025, Max: 65535}}},
		{"closed range: >= min AND <= max",
			dataplane.Classifier{DestinationPort: dataplane.PortRange{Min: 100, Max: 2000}},
			"05 03 64" + // op gt|eq len1, 100
				" d5 07d0", // op end|and|len2|lt|eq, 2000
			nil},
		{"odd prefix length /20",
			dataplane.Classifier{SourcePrefix: pfx("10.1.16.0/20")},
			"02 14 0a0110", // type 2, 20 bits, 3 bytes
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Encode(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.hex); !bytes.Equal(b, want) {
				t.Fatalf("Encode = %x, want %x", b, want)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.c
			if tt.back != nil {
				want = *tt.back
			}
			if got != want {
				t.Fatalf("Decode = %+v, want %+v", got, want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want error
	}{
		{"port component 4", "04 81 50", ErrUnsupported},
		{"fragment component 12", "0c 81 01", ErrUnsupported},
		{"types out of order", "05 81 50 03 81 06", ErrMalformed},
		{"repeated type", "05 81 50 05 81 51", ErrMalformed},
		{"no end bit", "05 01 50", ErrMalformed},
		{"value truncated", "05 91 50", ErrMalformed},
		{"prefix too long", "01 21 0a000000 00", ErrMalformed},
		{"prefix truncated", "01 18 0a00", ErrMalformed},
		{"host bits", "01 08 0a01", ErrMalformed},
		{"ored ports", "05 01 50 81 51", ErrUnsupported},
		{"protocol range", "03 03 06 c5 11", ErrUnsupported},
		{"reserved op bit", "05 89 50", ErrMalformed},
		{"less than zero", "05 84 00", ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(unhex(t, tt.hex))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%s) error = %v, want %v", tt.hex, err, tt.want)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		raw  string
		want dataplane.Classifier
		err  bool
	}{
		{`{"destinationPort": "80", "protocol": "tcp", "sourcePrefix": "11.0.0.1/32"}`,
			dataplane.Classifier{SourcePrefix: pfx("11.0.0.1/32"), Protocol: 6, DestinationPort: dataplane.PortRange{Min: 80, Max: 80}}, false},
		{`{}`, dataplane.Classifier{Protocol: 6}, false}, // tcp by default, as upstream
		{`{"sourcePort": "1000:2000", "protocol": "udp", "destinationPrefix": "12.0.0.5"}`,
			dataplane.Classifier{DestinationPrefix: pfx("12.0.0.5/32"), Protocol: 17, SourcePort: dataplane.PortRange{Min: 1000, Max: 2000}}, false},
		{`{"destinationPort": 443, "protocol": 132}`, dataplane.Classifier{Protocol: 132, DestinationPort: dataplane.PortRange{Min: 443, Max: 443}}, false},
		{`{"protocol": "bogus"}`, dataplane.Classifier{}, true},
		{`{"sourcePort": "2000:1000"}`, dataplane.Classifier{}, true},
		{`{"sourcePrefix": "fe80::/64"}`, dataplane.Classifier{}, true},
		{`[1]`, dataplane.Classifier{}, true},
	}
	for _, tt := range tests {
		got, err := ParseJSON([]byte(tt.raw))
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseJSON(%s) = %+v, %v; want %+v, error %v", tt.raw, got, err, tt.want, tt.err)
		}
	}
}

// FuzzDecode: Decode never panics, and what it accepts re-encodes to rules
// that decode to the same classifier.
func FuzzDecode(f *testing.F) {
	f.Add(unhex(f, "01180c0000 02200b000001 038106 058150"))
	f.Add(unhex(f, "050364 d507d0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode(Decode(%x) = %+v): %v", b, c, err)
		}
		c2, err := Decode(enc)
		if err != nil {
			t.Fatalf("Decode(Encode(%+v) = %x): %v", c, enc, err)
		}
		// Encode turns an upper bound of Max into "< Max", one less.
		if c2.SourcePrefix != c.SourcePrefix || c2.DestinationPrefix != c.DestinationPrefix || c2.Protocol != c.Protocol {
			t.Fatalf("round trip %x → %+v → %x → %+v", b, c, enc, c2)
		}
	})
}
