package engine

import (
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

const (
	evpn  = route.FamilyEVPN
	vpnv4 = route.FamilyVPNv4
	rtc   = route.FamilyRTC
	anyF  = route.FamilyAny
	anyRT = route.RTAny
)

// step is one action on the table and what it must produce.
type step struct {
	name      string
	do        func(f *fixture)
	want      map[string][]string // events per worker; others get none
	hooks     []string
	unordered bool // compare each worker's events as a set (replays)
}

func TestTableScenarios(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"subscribe then publish", []step{
			{name: "subscribe", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) },
				hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "publish matching", do: func(f *fixture) {
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1"}}},
			{name: "publish other RT", do: func(f *fixture) {
				f.pub("BGP-1", adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt2)))
			}},
			{name: "publish other family same RT", do: func(f *fixture) {
				f.pub("BGP-1", adv(f.mk("r3", "BGP-1", vpnv4, 3, 10, rt1)))
			}},
		}},
		{"publish then subscribe replays", []step{
			{name: "publish", do: func(f *fixture) {
				f.pub("BGP-1",
					adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)),
					adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt2)),
					adv(f.mk("r3", "BGP-1", vpnv4, 3, 10, rt1)),
					adv(f.mk("r4", "BGP-1", evpn, 4, 10, rt1)))
				f.pub("EVI-2", adv(f.mk("l1", "EVI-2", evpn, 5, 10, rt1)))
			}},
			{name: "subscribe", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) },
				want:  map[string][]string{"EVI-1": {"+r1", "+r4", "+l1"}},
				hooks: []string{"first match:l2vpn/evpn,64512:1"}, unordered: true},
			{name: "subscribe again is a no-op", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) }},
		}},
		{"resend replays without withdrawals", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("BGP-9", evpn, rt1)
				f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 1, 10, rt1)), adv(f.mk("l2", "EVI-1", evpn, 2, 10, rt2)))
			}, want: map[string][]string{"BGP-9": {"+l1"}}, hooks: []string{}},
			{name: "resend", do: func(f *fixture) { f.tab.Resend(f.w("BGP-9"), Match{Family: evpn, RT: rt1}) },
				want: map[string][]string{"BGP-9": {"+l1"}}},
			{name: "resend of a match not subscribed does nothing", do: func(f *fixture) {
				f.tab.Resend(f.w("BGP-9"), Match{Family: evpn, RT: rt2})
			}},
		}},
		{"unsubscribe synthesizes withdraws", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)), adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt1, rt2)))
			}, want: map[string][]string{"EVI-1": {"+r1", "+r2"}}, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "unsubscribe", do: func(f *fixture) { f.unsub("EVI-1", evpn, rt1) },
				want:  map[string][]string{"EVI-1": {"-r1", "-r2"}},
				hooks: []string{"last match:l2vpn/evpn,64512:1"}, unordered: true},
			{name: "unsubscribe again is a no-op", do: func(f *fixture) { f.unsub("EVI-1", evpn, rt1) }},
			{name: "withdraw after unsubscribe goes nowhere", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1)) }},
		}},
		{"wildcard matches", []step{
			{name: "subscribe", do: func(f *fixture) {
				f.sub("EVI-A", evpn, anyRT)
				f.sub("EVI-B", anyF, rt1)
				f.sub("EVI-C", anyF, anyRT)
				f.sub("VRF-D", vpnv4, anyRT)
			}, hooks: []string{"first match:*,64512:1"}},
			{name: "evpn rt1", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1))) },
				want: map[string][]string{"EVI-A": {"+r1"}, "EVI-B": {"+r1"}, "EVI-C": {"+r1"}}},
			{name: "vpnv4 rt2", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r2", "BGP-1", vpnv4, 2, 10, rt2))) },
				want: map[string][]string{"EVI-C": {"+r2"}, "VRF-D": {"+r2"}}},
			{name: "route without RT", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r3", "BGP-1", evpn, 3, 10))) },
				want: map[string][]string{"EVI-A": {"+r3"}, "EVI-C": {"+r3"}}},
			{name: "late (*,rt1) replays both families", do: func(f *fixture) {
				f.pub("BGP-1", adv(f.mk("r4", "BGP-1", vpnv4, 4, 10, rt1)))
				f.sub("VRF-E", anyF, rt1)
			}, want: map[string][]string{"EVI-B": {"+r4"}, "EVI-C": {"+r4"}, "VRF-D": {"+r4"}, "VRF-E": {"+r1", "+r4"}}, unordered: true},
			{name: "late (*,*) replays all", do: func(f *fixture) { f.sub("EVI-F", anyF, anyRT) },
				want: map[string][]string{"EVI-F": {"+r1", "+r2", "+r3", "+r4"}}, unordered: true},
			{name: "late (evpn,*) replays evpn", do: func(f *fixture) { f.sub("EVI-G", evpn, anyRT) },
				want: map[string][]string{"EVI-G": {"+r1", "+r3"}}, unordered: true},
		}},
		{"two RTs delivered once", []step{
			{name: "subscribe both", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.sub("EVI-1", evpn, rt2)
				f.sub("EVI-1", anyF, rt1)
			}, hooks: []string{"first match:l2vpn/evpn,64512:1", "first match:l2vpn/evpn,64512:2", "first match:*,64512:1"}},
			{name: "publish", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1, rt2))) },
				want: map[string][]string{"EVI-1": {"+r1"}}},
			{name: "other worker subscribes one by one", do: func(f *fixture) {
				f.sub("EVI-2", evpn, rt2)
				f.sub("EVI-2", evpn, rt1)
			}, want: map[string][]string{"EVI-2": {"+r1"}}},
			{name: "unsubscribe one keeps it", do: func(f *fixture) { f.unsub("EVI-2", evpn, rt2) }},
			{name: "unsubscribe the other withdraws", do: func(f *fixture) { f.unsub("EVI-2", evpn, rt1) },
				want: map[string][]string{"EVI-2": {"-r1"}}},
			{name: "withdraw", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1)) },
				want: map[string][]string{"EVI-1": {"-r1"}}},
		}},
		{"replacement with same RTs", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1"}}, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "new label", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1b", "BGP-1", evpn, 1, 11, rt1))) },
				want: map[string][]string{"EVI-1": {"+r1b~r1"}}},
			{name: "withdraw carries stored route", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1)) },
				want: map[string][]string{"EVI-1": {"-r1b"}}},
		}},
		{"replacement with changed RTs", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.sub("EVI-2", evpn, rt2)
				f.sub("EVI-3", evpn, anyRT)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1"}, "EVI-3": {"+r1"}},
				hooks: []string{"first match:l2vpn/evpn,64512:1", "first match:l2vpn/evpn,64512:2"}},
			{name: "RT 1 → 2", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1b", "BGP-1", evpn, 1, 10, rt2))) },
				want: map[string][]string{"EVI-1": {"-r1"}, "EVI-2": {"+r1b"}, "EVI-3": {"+r1b~r1"}}},
			{name: "index follows: new (evpn,rt2) subscriber gets r1b", do: func(f *fixture) { f.sub("EVI-4", evpn, rt2) },
				want: map[string][]string{"EVI-4": {"+r1b"}}},
			{name: "index follows: new (evpn,rt1) subscriber gets nothing", do: func(f *fixture) { f.sub("EVI-5", evpn, rt1) }},
			{name: "withdraw", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1)) },
				want: map[string][]string{"EVI-2": {"-r1b"}, "EVI-3": {"-r1b"}, "EVI-4": {"-r1b"}}},
		}},
		{"identical re-advertise ignored", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1"}}, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "same content, new pointer", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1copy", "BGP-1", evpn, 1, 10, rt1))) }},
			{name: "stored route kept", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1)) },
				want: map[string][]string{"EVI-1": {"-r1"}}},
		}},
		{"unknown withdraw ignored", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, anyRT)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1"}}},
			{name: "unknown key", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 9)) }},
			{name: "unknown family", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", vpnv4, 1)) }},
			{name: "other source's key", do: func(f *fixture) { f.pub("BGP-2", f.wdKey("BGP-2", evpn, 1)) }},
			{name: "known, then again", do: func(f *fixture) { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 1), f.wdKey("BGP-1", evpn, 1)) },
				want: map[string][]string{"EVI-1": {"-r1"}}},
		}},
		{"peer to peer never", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("BGP-2", evpn, anyRT)
				f.sub("BGP-2", evpn, rt1)
			}},
			{name: "from a peer", do: func(f *fixture) { f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1))) }},
			{name: "from a local worker", do: func(f *fixture) { f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 2, 10, rt1))) },
				want: map[string][]string{"BGP-2": {"+l1"}}},
			{name: "peer replay skips peer routes", do: func(f *fixture) {
				f.sub("BGP-3", anyF, anyRT)
				f.sub("BGP-4", evpn, rt1)
			}, want: map[string][]string{"BGP-3": {"+l1"}, "BGP-4": {"+l1"}}},
			{name: "peer unsubscribe withdraws only local routes", do: func(f *fixture) { f.unsub("BGP-3", anyF, anyRT) },
				want: map[string][]string{"BGP-3": {"-l1"}}},
		}},
		{"own routes never", []step{
			{name: "subscribe", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) }, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "publish own", do: func(f *fixture) { f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 1, 10, rt1))) }},
			{name: "subscribe more does not replay own", do: func(f *fixture) {
				f.sub("EVI-1", anyF, anyRT)
				f.sub("EVI-1", evpn, anyRT)
			}},
			{name: "unsubscribe does not withdraw own", do: func(f *fixture) { f.unsub("EVI-1", anyF, anyRT) }},
			{name: "replace own", do: func(f *fixture) { f.pub("EVI-1", adv(f.mk("l1b", "EVI-1", evpn, 1, 11, rt1))) }},
		}},
		{"cleanup", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("EVI-1", evpn, rt1)
				f.sub("EVI-1", evpn, rt2)
				f.sub("EVI-2", evpn, rt1)
				f.sub("BGP-2", evpn, anyRT)
				f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)), adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt2)))
				f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 3, 10, rt1)))
			}, want: map[string][]string{"EVI-1": {"+r1", "+r2"}, "EVI-2": {"+r1", "+l1"}, "BGP-2": {"+l1"}},
				hooks: []string{"first match:l2vpn/evpn,64512:1", "first match:l2vpn/evpn,64512:2"}},
			{name: "peer session down", do: func(f *fixture) { f.tab.Cleanup(f.w("BGP-1")) },
				want: map[string][]string{"EVI-1": {"-r1", "-r2"}, "EVI-2": {"-r1"}}, unordered: true},
			{name: "instance stops", do: func(f *fixture) { f.tab.Cleanup(f.w("EVI-1")) },
				want:  map[string][]string{"EVI-2": {"-l1"}, "BGP-2": {"-l1"}},
				hooks: []string{"last match:l2vpn/evpn,64512:2"}},
			{name: "late publish from cleaned-up source dropped", do: func(f *fixture) {
				old := f.route("l1").Source
				r := &route.Route{Family: evpn, Key: key(evpn, 4), Attrs: &route.Attrs{RTs: []route.RT{rt1}}, Source: old}
				f.tab.Publish(old, []Event{adv(r)})
			}},
			{name: "last subscriber goes", do: func(f *fixture) { f.tab.Cleanup(f.w("EVI-2")) },
				hooks: []string{"last match:l2vpn/evpn,64512:1"}},
			{name: "cleanup twice", do: func(f *fixture) { f.tab.Cleanup(f.w("EVI-2")) }},
		}},
		{"local subscriber hooks", []step{
			{name: "first local", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) }, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
			{name: "second local", do: func(f *fixture) { f.sub("EVI-2", evpn, rt1) }},
			{name: "peer", do: func(f *fixture) { f.sub("BGP-1", evpn, rt1) }},
			{name: "peer on new match", do: func(f *fixture) { f.sub("BGP-1", evpn, rt3) }},
			{name: "wildcard RT", do: func(f *fixture) { f.sub("EVI-1", evpn, anyRT) }},
			{name: "same RT other family", do: func(f *fixture) { f.sub("VRF-1", vpnv4, rt1) }, hooks: []string{"first match:ipv4/mpls-vpn,64512:1"}},
			{name: "resubscribe", do: func(f *fixture) { f.sub("EVI-1", evpn, rt1) }},
			{name: "first local leaves", do: func(f *fixture) { f.unsub("EVI-1", evpn, rt1) }},
			{name: "peer leaves", do: func(f *fixture) { f.unsub("BGP-1", evpn, rt1) }},
			{name: "last local leaves", do: func(f *fixture) { f.unsub("EVI-2", evpn, rt1) }, hooks: []string{"last match:l2vpn/evpn,64512:1"}},
			{name: "wildcard leaves", do: func(f *fixture) { f.unsub("EVI-1", evpn, anyRT) }},
			{name: "peer cleanup", do: func(f *fixture) { f.tab.Cleanup(f.w("BGP-1")) }},
			{name: "again first", do: func(f *fixture) { f.sub("EVI-3", evpn, rt1) }, hooks: []string{"first match:l2vpn/evpn,64512:1"}},
		}},
		{"RTC routes match only family and full wildcards", []step{
			{name: "setup", do: func(f *fixture) {
				f.sub("BGP-1", rtc, anyRT)
				f.sub("EVI-1", anyF, rt1)
				f.sub("EVI-2", rtc, rt1)
				f.sub("EVI-3", anyF, anyRT)
			}, hooks: []string{"first match:*,64512:1", "first match:ipv4/rtc,64512:1"}},
			{name: "RTC route for RT 1 (even with an RT attribute)", do: func(f *fixture) {
				f.pub("BGPManager", adv(f.mk("c1", "BGPManager", rtc, 1, 0, rt1)))
			}, want: map[string][]string{"BGP-1": {"+c1"}, "EVI-3": {"+c1"}}},
		}},
		{"batch order and single delivery", []step{
			{name: "setup", do: func(f *fixture) { f.sub("EVI-1", evpn, anyRT) }},
			{name: "advertise, replace, withdraw, advertise in one batch", do: func(f *fixture) {
				r1 := f.mk("r1", "BGP-1", evpn, 1, 10, rt1)
				f.pub("BGP-1", adv(r1), adv(f.mk("r1b", "BGP-1", evpn, 1, 11, rt1)), wd(r1), adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt1)))
				if calls := f.workers["EVI-1"].callCount(); calls != 1 {
					f.t.Errorf("batch delivered in %d Deliver calls, want 1", calls)
				}
			}, want: map[string][]string{"EVI-1": {"+r1", "+r1b~r1", "-r1b", "+r2"}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			for _, s := range tc.steps {
				s.do(f)
				f.check(s.name, s.want, s.hooks, s.unordered)
			}
		})
	}
}
