package vpn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// portsOf renders InstanceInfo.Ports as "port: mac/ip ..." lines, sorted.
func portsOf(info InstanceInfo) []string {
	var out []string
	for p, eps := range info.Ports {
		s := p + ":"
		for _, ep := range eps {
			ip := "-"
			if ep.IP.IsValid() {
				ip = ep.IP.String()
			}
			s += fmt.Sprintf(" %02x/%s", ep.MAC[5], ip)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// TestSnapshotFollowsRequests: the Ports of Instance() (built when read,
// cached between requests) and the advertised count (kept incrementally)
// follow every attach and detach, including a MAC with several IPs, a
// wildcard detach and an export RT change that withdraws every route.
func TestSnapshotFollowsRequests(t *testing.T) {
	te := newTestEnv(t)
	steps := []struct {
		name      string
		do        func() error
		wantPorts []string
		wantAdv   int // endpoint routes + the multicast route
	}{
		{"first endpoint", func() error { return te.m.Attach(ctx(), evReq("s", 1, "10.0.0.1", "t1", rts(rtA), rts(rtA))) },
			[]string{"t1: 01/10.0.0.1/32"}, 2},
		{"second IP of the MAC", func() error { return te.m.Attach(ctx(), evReq("s", 1, "10.0.0.9", "t1", rts(rtA), rts(rtA))) },
			[]string{"t1: 01/10.0.0.1/32 01/10.0.0.9/32"}, 3},
		{"other port", func() error { return te.m.Attach(ctx(), evReq("s", 2, "10.0.0.2", "t2", rts(rtA), rts(rtA))) },
			[]string{"t1: 01/10.0.0.1/32 01/10.0.0.9/32", "t2: 02/10.0.0.2/32"}, 4},
		{"refresh is no change", func() error { return te.m.Attach(ctx(), evReq("s", 2, "10.0.0.2", "t2", rts(rtA), rts(rtA))) },
			[]string{"t1: 01/10.0.0.1/32 01/10.0.0.9/32", "t2: 02/10.0.0.2/32"}, 4},
		{"one IP of the MAC", func() error { return te.detach("s", testMAC(1), "10.0.0.1", "t1") },
			[]string{"t1: 01/10.0.0.9/32", "t2: 02/10.0.0.2/32"}, 3},
		{"no export RT withdraws all", func() error { return te.m.Attach(ctx(), evReq("s", 2, "10.0.0.2", "t2", rts(rtA), nil)) },
			[]string{"t1: 01/10.0.0.9/32", "t2: 02/10.0.0.2/32"}, 0},
		{"export RT back", func() error { return te.m.Attach(ctx(), evReq("s", 2, "10.0.0.2", "t2", rts(rtA), rts(rtB))) },
			[]string{"t1: 01/10.0.0.9/32", "t2: 02/10.0.0.2/32"}, 3},
		{"wildcard detach of the MAC", func() error { return te.detach("s", testMAC(1), "", "t1") },
			[]string{"t2: 02/10.0.0.2/32"}, 2},
		// The MAC is free again: it may go to another port.
		{"MAC on another port", func() error { return te.m.Attach(ctx(), evReq("s", 1, "10.0.0.1", "t3", rts(rtA), rts(rtB))) },
			[]string{"t2: 02/10.0.0.2/32", "t3: 01/10.0.0.1/32"}, 3},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		for read := range 2 { // the second read comes from the cache
			info, ok := te.m.Instance("s")
			if !ok {
				t.Fatalf("%s: instance gone", s.name)
			}
			if got := portsOf(info); !slices.Equal(got, s.wantPorts) {
				t.Errorf("%s (read %d): ports %q, want %q", s.name, read, got, s.wantPorts)
			}
			if info.Routes.Advertised != s.wantAdv {
				t.Errorf("%s (read %d): advertised %d, want %d", s.name, read, info.Routes.Advertised, s.wantAdv)
			}
		}
		if all := te.m.Instances(); len(all) != 1 || !slices.Equal(portsOf(all[0]), s.wantPorts) {
			t.Errorf("%s: Instances() ports %v, want %q", s.name, all, s.wantPorts)
		}
	}
	// The MAC's port binding went with its last endpoint: re-plugging MAC 2
	// elsewhere is refused while 10.0.0.2 is plugged, accepted after.
	if err := te.m.Attach(ctx(), evReq("s", 2, "10.0.0.3", "t9", rts(rtA), rts(rtB))); err == nil {
		t.Errorf("MAC 2 on a second port was accepted")
	}
	if err := te.detach("s", testMAC(2), "10.0.0.2", "t2"); err != nil {
		t.Fatal(err)
	}
	te.attach(evReq("s", 2, "10.0.0.3", "t9", rts(rtA), rts(rtB)))
	info, _ := te.m.Instance("s")
	if got, want := portsOf(info), []string{"t3: 01/10.0.0.1/32", "t9: 02/10.0.0.3/32"}; !slices.Equal(got, want) {
		t.Errorf("after moving MAC 2: ports %q, want %q", got, want)
	}
	// The last detach stops the instance; its final snapshot has no ports.
	for _, d := range []struct {
		mac  route.MAC
		ip   string
		port string
	}{{testMAC(1), "10.0.0.1", "t3"}, {testMAC(2), "10.0.0.3", "t9"}} {
		if err := te.detach("s", d.mac, d.ip, d.port); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := te.m.Instance("s"); ok {
		t.Errorf("instance s still listed after its last detach")
	}
}

// TestSortedEndpointsOrder pins the endpoint order (MAC, then IP as
// text, as before the comparison stopped formatting keys of different
// MACs).
func TestSortedEndpointsOrder(t *testing.T) {
	b := &instanceBase{endpoints: map[epKey]*endpoint{}}
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	keys := []epKey{
		{mac: testMAC(2), ip: p("10.0.0.1/32")},
		{mac: testMAC(1), ip: p("10.0.0.9/32")},
		{mac: testMAC(1), ip: p("10.0.0.10/32")}, // "10.0.0.10" < "10.0.0.9" as text
		{mac: testMAC(1)},                        // "invalid Prefix" sorts after digits
	}
	for _, k := range keys {
		b.endpoints[k] = &endpoint{}
	}
	want := []epKey{keys[2], keys[1], keys[3], keys[0]}
	if got := b.sortedEndpoints(); !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func ctx() context.Context { return context.Background() }
