package testenv

import (
	"net/netip"
	"strings"
	"testing"
)

// TestRunCLI checks the output and error wording of the client runner
// both daemons use (vtysh, gobgp).
func TestRunCLI(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string
		wantOut string
		wantErr string // "" for success
	}{
		{"ok", "echo hello", "hello\n", ""},
		{"fails", "echo oops >&2; exit 3", "oops\n", "tool -x: exit status 3: oops"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI("tool -x", "/bin/sh", "-c", tc.script)
			if out != tc.wantOut {
				t.Errorf("output %q, want %q", out, tc.wantOut)
			}
			if got := errString(err); got != tc.wantErr {
				t.Errorf("error %q, want %q", got, tc.wantErr)
			}
		})
	}
}

// TestDecodeCLIJSON checks the decoding of a client's JSON output.
func TestDecodeCLIJSON(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    int
		wantErr string // prefix; "" for success
	}{
		{"ok", `{"asn": 64512}`, 64512, ""},
		{"not json", "% Unknown command", 0, "gobgp -j global printed unexpected JSON ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v struct {
				ASN int `json:"asn"`
			}
			err := decodeCLIJSON(&v, "gobgp -j global", tc.out)
			if got := errString(err); !strings.HasPrefix(got, tc.wantErr) || (tc.wantErr == "") != (err == nil) {
				t.Errorf("error %q, want prefix %q", got, tc.wantErr)
			}
			if err != nil && !strings.HasSuffix(err.Error(), tc.out) {
				t.Errorf("error %q does not quote the output", err)
			}
			if v.ASN != tc.want {
				t.Errorf("asn %d, want %d", v.ASN, tc.want)
			}
		})
	}
}

// TestFillIdentity checks the identity defaults of both daemon configs.
func TestFillIdentity(t *testing.T) {
	lo2 := netip.MustParseAddr("127.0.0.2")
	lo3 := netip.MustParseAddr("127.0.0.3")
	for _, tc := range []struct {
		name               string
		id, listen         netip.Addr
		as                 uint32
		port               int
		wantID, wantListen netip.Addr
		wantAS             uint32
	}{
		{"defaults", netip.Addr{}, netip.Addr{}, 0, 0, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1"), 64512},
		{"listen follows id", lo2, netip.Addr{}, 65000, 1179, lo2, lo2, 65000},
		{"all given", lo2, lo3, 65000, 1179, lo2, lo3, 65000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, listen, as, port := tc.id, tc.listen, tc.as, tc.port
			fillIdentity(t, &id, &as, &listen, &port)
			if id != tc.wantID || listen != tc.wantListen || as != tc.wantAS {
				t.Errorf("got id %s listen %s AS %d, want %s %s %d", id, listen, as, tc.wantID, tc.wantListen, tc.wantAS)
			}
			if tc.port != 0 && port != tc.port || port <= 0 {
				t.Errorf("port %d (given %d)", port, tc.port)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
