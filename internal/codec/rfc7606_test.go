package codec

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestRFC7606 checks the error handling outcome of malformed UPDATEs
// (RFC 7606 §2 definitions, §7 per attribute).
func TestRFC7606(t *testing.T) {
	const (
		reset = iota
		withdraw
		discard
		ok
	)
	cases := []struct {
		name string
		msg  []byte
		want int
		// code/subcode for resets
		code, sub uint8
		// withdrawn routes expected with treat-as-withdraw
		withdrawn int
		discarded []string
	}{
		{
			name: "ORIGIN value 5 (§7.1)",
			msg: update(t, `40 01 01 05 // ORIGIN, undefined value 5
				`+asPathNil+"\n"+localPref+"\n"+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "ORIGIN of length 2 (§7.1)",
			msg: update(t, `40 01 02 0000 // ORIGIN, len 2
				`+asPathNil+"\n"+localPref+"\n"+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "LOCAL_PREF of length 3 (§7.5)",
			msg: update(t, originIGP+"\n"+asPathNil+`
				40 05 03 000064 // LOCAL_PREF, len 3
				`+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "MULTI_EXIT_DISC of length 2 is treat-as-withdraw (§7.4), not discard",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 04 02 0007 // MED, len 2
				`+localPref+"\n"+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "missing ORIGIN with NLRI (§3 d)",
			msg:  update(t, asPathNil+"\n"+localPref+"\n"+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "missing AS_PATH with NLRI (§3 d)",
			msg:  update(t, originIGP+"\n"+localPref+"\n"+reachType2IP),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "missing mandatory attributes on a pure withdrawal is fine",
			msg: update(t, `80 0f 2a 0019 46 // MP_UNREACH_NLRI l2vpn/evpn
				02 25 0001c00002010001 00000000000000000000 00000000 30 525400123456 20 0a000005 000064`),
			want: ok, withdrawn: 1,
		},
		{
			name: "attribute overrunning the attributes after MP_REACH (§4)",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+reachType2IP+`
				40 05 09 00000064 // LOCAL_PREF claiming 9 bytes, 4 present`),
			want: withdraw, withdrawn: 1,
		},
		{
			name: "attribute overrunning the attributes before MP_REACH (§4)",
			msg: update(t, originIGP+"\n"+asPathNil+`
				40 05 ff 00000064 // LOCAL_PREF claiming 255 bytes`+"\n"+reachType2IP),
			want: reset, code: 3, sub: 5,
		},
		{
			name: "AGGREGATOR of length 3 (§7.7)",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+localPref+`
				c0 07 03 000001 // AGGREGATOR, len 3
				`+reachType2IP),
			want: discard, discarded: []string{"AGGREGATOR"},
		},
		{
			name: "ATOMIC_AGGREGATE of length 1 (§7.6)",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+localPref+`
				40 06 01 00 // ATOMIC_AGGREGATE, len 1
				`+reachType2IP),
			want: discard, discarded: []string{"ATOMIC_AGGREGATE"},
		},
		{
			name: "repeated LOCAL_PREF (§3 g)",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+localPref+`
				40 05 04 000000c8 // LOCAL_PREF again
				`+reachType2IP),
			want: discard, discarded: []string{"LOCAL_PREF (repeated)"},
		},
		{
			name: "unknown optional transitive attribute",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+localPref+`
				e0 f1 02 abcd // attribute 241, optional transitive partial
				`+reachType2IP),
			want: ok,
		},
		{
			name: "unknown well-known attribute (RFC 4271 §6.3)",
			msg: update(t, originIGP+"\n"+asPathNil+"\n"+localPref+`
				40 f1 02 abcd // attribute 241, well-known
				`+reachType2IP),
			want: reset, code: 3, sub: 2,
		},
		{
			name: "MP_REACH_NLRI repeated (§3 g)",
			msg:  update(t, originIGP+"\n"+asPathNil+"\n"+reachType2IP+"\n"+reachType2IP),
			want: reset, code: 3, sub: 1,
		},
		{
			name: "MP_REACH_NLRI with a truncated E-VPN NLRI (§5.3)",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 0e 0d 0019 46 04 c0000201 00 // l2vpn/evpn
				02 25 0001 // type 2 claiming 37 bytes, 2 present`),
			want: reset, code: 3, sub: 9,
		},
		{
			name: "MP_REACH_NLRI with a bad next hop length",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 0e 0c 0019 46 05 c000020101 00 // next hop len 5
				00 00 // empty E-VPN route of type 0`),
			want: reset, code: 3, sub: 5,
		},
		{
			name: "MP_REACH_NLRI truncated before the next hop",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 0e 04 0019 46 10 // next hop len 16, absent`),
			want: reset, code: 3, sub: 9,
		},
		{
			name: "VPNv4 label stack without bottom of stack",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 0e 16 0001 80 0c 0000000000000000 c0000201 00
				28 000640 000640 // 40 bits, 2 labels without BoS`),
			want: reset, code: 3, sub: 9,
		},
		{
			name: "RTC prefix length 20 (RFC 4684 §4)",
			msg: update(t, originIGP+"\n"+asPathNil+`
				80 0e 0d 0001 84 04 c0000201 00
				14 0000fd // 20 bits`),
			want: reset, code: 3, sub: 9,
		},
		{
			name: "withdrawn routes length overruns",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 0017 02 | 0010 0000"),
			want: reset, code: 3, sub: 1,
		},
		{
			name: "total attribute length overruns",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 0019 02 | 0000 0010 0000"),
			want: reset, code: 3, sub: 1,
		},
		{
			name: "truncated message: length field larger than the bytes",
			msg:  update(t, originIGP)[:22],
			want: reset, code: 1, sub: 2,
		},
		{
			name: "shorter than a header",
			msg:  hx(t, "ffffffff"),
			want: reset, code: 1, sub: 2,
		},
		{
			name: "bad marker",
			msg:  hx(t, "fffffffffffffffffffffffffffffffe 0017 02 0000 0000"),
			want: reset, code: 1, sub: 1,
		},
		{
			name: "not an UPDATE",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 0013 04"),
			want: reset, code: 1, sub: 2,
		},
		{
			name: "KEEPALIVE-sized but type UPDATE",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 0015 02 0000"),
			want: reset, code: 1, sub: 2,
		},
		{
			name: "type OPEN",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 0017 01 00000000"),
			want: reset, code: 1, sub: 3,
		},
		{
			name: "IPv4 NLRI with prefix length 33",
			msg:  hx(t, "ffffffffffffffffffffffffffffffff 001d 02 0000 0000 21 0a000000 00"),
			want: reset, code: 3, sub: 10,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed(t, c.msg)
			u, err := NewDecoder().Decode(c.msg, nil)
			var (
				sr *SessionReset
				tw *TreatAsWithdraw
				ad *AttributeDiscard
			)
			switch c.want {
			case reset:
				if !errors.As(err, &sr) {
					t.Fatalf("err = %v, want SessionReset", err)
				}
				if sr.Code != c.code || sr.Subcode != c.sub {
					t.Errorf("NOTIFICATION %d/%d (%s), want %d/%d", sr.Code, sr.Subcode, sr.Reason, c.code, c.sub)
				}
			case withdraw:
				if !errors.As(err, &tw) {
					t.Fatalf("err = %v, want TreatAsWithdraw", err)
				}
				if len(u.Advertised) != 0 || len(u.Withdrawn) != c.withdrawn {
					t.Errorf("update %d advertised %d withdrawn, want 0 and %d", len(u.Advertised), len(u.Withdrawn), c.withdrawn)
				}
				for _, r := range u.Withdrawn {
					if r.Attrs != nil || r.Key == "" {
						t.Errorf("withdrawn route %+v", r)
					}
				}
			case discard:
				if !errors.As(err, &ad) {
					t.Fatalf("err = %v, want AttributeDiscard", err)
				}
				r := one(t, u.Advertised)
				if !slices.Equal(ad.Attrs, c.discarded) || !slices.Equal(r.Attrs.Discarded, c.discarded) {
					t.Errorf("discarded %v / %v, want %v", ad.Attrs, r.Attrs.Discarded, c.discarded)
				}
				if !r.Attrs.HasLocalPref || r.Attrs.LocalPref != 100 {
					t.Errorf("attrs %+v", r.Attrs)
				}
			case ok:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if len(u.Advertised)+len(u.Withdrawn) != 1 {
					t.Errorf("update %+v", u)
				}
			}
		})
	}
}

// TestRFC7606Cached checks that an interned outcome is reported again.
func TestRFC7606Cached(t *testing.T) {
	d := NewDecoder()
	for _, tc := range []struct {
		attrs string
		check func(error) bool
	}{
		{`40 01 01 05` + "\n" + asPathNil, func(err error) bool { var e *TreatAsWithdraw; return errors.As(err, &e) }},
		{originIGP + "\n" + asPathNil + "\nc0 07 03 000001", func(err error) bool { var e *AttributeDiscard; return errors.As(err, &e) }},
	} {
		for i := range 2 {
			m := update(t, tc.attrs+"\n"+reachType2IP)
			binary.BigEndian.PutUint16(m[len(m)-5:], uint16(i)) // another IP each time
			u, err := d.Decode(m, nil)
			if !tc.check(err) {
				t.Errorf("message %d of %q: err = %v", i, tc.attrs, err)
			}
			if len(u.Advertised)+len(u.Withdrawn) != 1 {
				t.Errorf("message %d: update %+v", i, u)
			}
		}
	}
}

// TestDecodeIgnoresOtherFamilies checks NLRI of families not negotiated and
// IPv4 unicast are counted, not decoded.
func TestDecodeIgnoresOtherFamilies(t *testing.T) {
	msg := hx(t, `ffffffffffffffffffffffffffffffff 0047 02 // length 71
		0006 18 0a0102 08 0b // withdrawn: 10.1.2.0/24, 11.0.0.0/8
		0026 // attributes, 38 bytes
		40 01 01 00 // ORIGIN
		40 02 00 // AS_PATH
		40 03 04 c0000201 // NEXT_HOP
		80 0e 15 0002 01 10 20010db8000000000000000000000001 00 // ipv6 unicast, no NLRI
		18 0a0203 // NLRI 10.2.3.0/24`)
	u, err := NewDecoder().Decode(msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.Ignored != 4 || len(u.Advertised)+len(u.Withdrawn) != 0 {
		t.Errorf("update %+v, want 4 ignored (2 withdrawn, 1 NLRI, 1 MP_REACH)", u)
	}
	if f := route.NewFamily(2, 1); slices.Contains(u.EndOfRIB, f) {
		t.Errorf("unexpected EoR")
	}
}
