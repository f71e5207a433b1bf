package engine

import (
	"reflect"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

func TestTableStats(t *testing.T) {
	f := newFixture(t)
	f.sub("EVI-1", evpn, anyRT)
	f.sub("EVI-1", evpn, rt1)
	f.sub("BGP-1", rtc, anyRT)

	tests := []struct {
		name string
		do   func()
		want Stats
	}{
		{"peer and local routes, RTC excluded from totals", func() {
			f.pub("BGP-1",
				adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)),
				adv(f.mk("r2", "BGP-1", evpn, 2, 10, rt1)),
				adv(f.mk("r3", "BGP-1", vpnv4, 3, 10, rt1)),
				adv(f.mk("c1", "BGP-1", rtc, 1, 0)))
			f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 4, 10, rt1)))
			f.pub("BGPManager", adv(f.mk("c2", "BGPManager", rtc, 2, 0)))
		}, Stats{
			LocalRoutes: 1, ReceivedRoutes: 3,
			Families: map[route.Family]int64{evpn: 3, vpnv4: 1, rtc: 2},
			Workers:  3, Subscriptions: 3, Events: 6,
		}},
		{"replacement, duplicate and unknown withdraw do not change counts", func() {
			f.pub("BGP-1",
				adv(f.mk("r1b", "BGP-1", evpn, 1, 11, rt1)),
				adv(f.mk("r1c", "BGP-1", evpn, 1, 11, rt1)),
				f.wdKey("BGP-1", evpn, 99))
		}, Stats{
			LocalRoutes: 1, ReceivedRoutes: 3,
			Families: map[route.Family]int64{evpn: 3, vpnv4: 1, rtc: 2},
			Workers:  3, Subscriptions: 3, Events: 9, UnknownWithdraws: 1, Duplicates: 1,
		}},
		{"withdraw", func() { f.pub("BGP-1", f.wdKey("BGP-1", evpn, 2)) }, Stats{
			LocalRoutes: 1, ReceivedRoutes: 2,
			Families: map[route.Family]int64{evpn: 2, vpnv4: 1, rtc: 2},
			Workers:  3, Subscriptions: 3, Events: 10, UnknownWithdraws: 1, Duplicates: 1,
		}},
		{"peer cleanup", func() { f.tab.Cleanup(f.w("BGP-1")) }, Stats{
			LocalRoutes: 1, ReceivedRoutes: 0,
			Families: map[route.Family]int64{evpn: 1, vpnv4: 0, rtc: 1},
			Workers:  2, Subscriptions: 2, Events: 10, UnknownWithdraws: 1, Duplicates: 1,
		}},
		{"instance cleanup", func() { f.tab.Cleanup(f.w("EVI-1")) }, Stats{
			Families: map[route.Family]int64{evpn: 0, vpnv4: 0, rtc: 1},
			Workers:  1, Events: 10, UnknownWithdraws: 1, Duplicates: 1,
		}},
	}
	for _, tc := range tests {
		tc.do()
		got := f.tab.Stats()
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Stats = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestTableRoutes(t *testing.T) {
	f := newFixture(t)
	f.pub("BGP-1", adv(f.mk("r1", "BGP-1", evpn, 1, 10, rt1)), adv(f.mk("r2", "BGP-1", vpnv4, 2, 10, rt1)))
	f.pub("EVI-1", adv(f.mk("l1", "EVI-1", evpn, 3, 10, rt1)))
	tests := []struct {
		fam  route.Family
		want []string
	}{
		{evpn, []string{"l1", "r1"}},
		{vpnv4, []string{"r2"}},
		{rtc, nil},
		{anyF, []string{"l1", "r1", "r2"}},
	}
	for _, tc := range tests {
		var got []string
		for _, r := range f.tab.Routes(tc.fam) {
			got = append(got, f.names[r])
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Routes(%s) = %q, want %q", tc.fam, got, tc.want)
		}
	}
}
