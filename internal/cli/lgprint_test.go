package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLGPrintGolden: testdata/lg/<name>.golden is what upstream's
// looking_glass.pretty_print_recurse (python3-networking-bagpipe 17.0.0,
// called as its main does: indent 0, already on a new line, no recursion)
// printed for <name>.json; the Go printer must print the same bytes.
func TestLGPrintGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/lg/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/lg/*.json (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".golden")
			if err != nil {
				t.Fatal(err)
			}
			v, err := DecodeOrdered(in)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			(&LGPrinter{W: &b}).Print(v, "http://x/")
			if b.String() != string(want) {
				t.Errorf("output\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}

// TestDecodeOrdered: member order kept, repeated keys keep their first
// place with the last value, numbers kept as written.
func TestDecodeOrdered(t *testing.T) {
	v, err := DecodeOrdered([]byte(`{"z": 1, "a": [true, null, 1.50], "z": "again", "m": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	o := v.(*Object)
	var keys []string
	for _, m := range o.Members {
		keys = append(keys, m.Key)
	}
	if strings.Join(keys, ",") != "z,a,m" {
		t.Errorf("keys %v, want z,a,m", keys)
	}
	if z, _ := o.Get("z"); z != "again" {
		t.Errorf("z = %v, want the last value", z)
	}
	a, _ := o.Get("a")
	if l := a.([]any); len(l) != 3 || l[0] != true || l[1] != nil || l[2] != json.Number("1.50") {
		t.Errorf("a = %#v", a)
	}
	for _, bad := range []string{``, `{`, `{"a" 1}`, `[1,]`, `{} {}`} {
		if _, err := DecodeOrdered([]byte(bad)); err == nil {
			t.Errorf("DecodeOrdered(%q) succeeded", bad)
		}
	}
}

// TestPyStr: Python's str() of json.load values.
func TestPyStr(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "None"}, {true, "True"}, {false, "False"}, {"s", "s"},
		{json.Number("12345678901234567890123"), "12345678901234567890123"},
		{json.Number("-3"), "-3"},
		{json.Number("1.0"), "1.0"}, {json.Number("0.5"), "0.5"}, {json.Number("1e3"), "1000.0"},
		{json.Number("1e16"), "1e+16"}, {json.Number("1.5e-5"), "1.5e-05"}, {json.Number("0.0001"), "0.0001"},
		{json.Number("123456789012345.6"), "123456789012345.6"}, {json.Number("-2.50"), "-2.5"},
	}
	for _, tt := range tests {
		if got := PyStr(tt.in); got != tt.want {
			t.Errorf("PyStr(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
