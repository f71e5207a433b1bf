package codec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// FuzzDecode feeds arbitrary bytes to Decode. The seed corpus is committed
// under testdata/fuzz/FuzzDecode (valid UPDATEs of every family, upstream
// captures, and broken ones). Properties:
//   - no panic, and no panic recovered from inside the decoder either;
//   - when the Update is usable (no error, AttributeDiscard or
//     TreatAsWithdraw), every route has a requested Family and a non-empty
//     Key, advertised routes have Attrs and withdrawn ones do not;
//   - advertised routes re-encode, and decode back to the same routes.
func FuzzDecode(f *testing.F) {
	families := map[string]func(route.Family) bool{
		"all":  nil,
		"evpn": func(fam route.Family) bool { return fam == route.FamilyEVPN },
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		for name, fams := range families {
			u, err := NewDecoder().Decode(msg, fams)
			var sr *SessionReset
			if errors.As(err, &sr) {
				if strings.HasPrefix(sr.Reason, internalErrorReason) {
					t.Fatalf("decoder panicked: %s", sr.Reason)
				}
				continue
			}
			var tw *TreatAsWithdraw
			var ad *AttributeDiscard
			if err != nil && !errors.As(err, &tw) && !errors.As(err, &ad) {
				t.Fatalf("families %s: error of unexpected type %T: %v", name, err, err)
			}
			check := func(r *route.Route, adv bool) {
				if r.Key == "" || !supported(r.Family) || (fams != nil && !fams(r.Family)) {
					t.Fatalf("families %s: bad route %+v", name, r)
				}
				if adv != (r.Attrs != nil) {
					t.Fatalf("families %s: route %s advertised=%v with Attrs %v", name, r, adv, r.Attrs)
				}
			}
			for _, r := range u.Advertised {
				check(r, true)
			}
			for _, r := range u.Withdrawn {
				check(r, false)
			}
			if tw != nil && len(u.Advertised) != 0 {
				t.Fatalf("treat-as-withdraw with %d advertised routes", len(u.Advertised))
			}
			if len(u.Advertised) == 0 || name != "all" {
				continue
			}
			msgs, err := EncodeUpdates(u.Advertised)
			if err != nil {
				t.Fatalf("re-encoding %v: %v", u.Advertised, err)
			}
			var again []*route.Route
			d := NewDecoder()
			for _, m := range msgs {
				u2, err := d.Decode(m, nil)
				if err != nil {
					t.Fatalf("decoding re-encoded %x: %v", m, err)
				}
				again = append(again, u2.Advertised...)
			}
			if len(again) != len(u.Advertised) {
				t.Fatalf("re-encoded %d routes, decoded %d", len(u.Advertised), len(again))
			}
			for i, r := range again {
				want := u.Advertised[i]
				if r.Family != want.Family || r.Key != want.Key || r.Label != want.Label || r.Extra != want.Extra ||
					!equalAttrsRoundTrip(r.Attrs, want.Attrs) {
					t.Fatalf("round trip changed route %d:\n got %s %+v %+v\nwant %s %+v %+v", i, r, r, r.Attrs, want, want, want.Attrs)
				}
			}
		}
	})
}

// equalAttrsRoundTrip compares attributes as an encode/decode round trip
// preserves them: only the L (leaf information required) PMSI flag is
// encoded, and discarded attributes are not re-sent.
func equalAttrsRoundTrip(a, b *route.Attrs) bool {
	ca, cb := *a, *b
	ca.Discarded, cb.Discarded = nil, nil
	if ca.PMSI != nil && cb.PMSI != nil {
		pa, pb := *ca.PMSI, *cb.PMSI
		pa.Flags &= 1
		pb.Flags &= 1
		ca.PMSI, cb.PMSI = &pa, &pb
	}
	return ca.Equal(&cb)
}

var writeCorpus = flag.Bool("write-corpus", false, "write the messages of the table tests into testdata/fuzz/FuzzDecode")

// seed records msg, a message of the running table test, as a FuzzDecode
// seed when the -write-corpus flag is given.
func seed(t *testing.T, msg []byte) {
	t.Helper()
	if !*writeCorpus {
		return
	}
	name := strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, t.Name())
	p := filepath.Join("testdata", "fuzz", "FuzzDecode", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", msg), 0o644); err != nil {
		t.Fatal(err)
	}
}
