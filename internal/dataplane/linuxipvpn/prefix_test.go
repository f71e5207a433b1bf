package linuxipvpn

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
)

func TestEndpointPrefix(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"10.1.1.10/32", "10.1.1.10/32"},       // a VM address (the VPN layer passes /32)
		{"20.1.0.5/24", "20.1.0.0/24"},         // advertise_subnet: the prefix, masked
		{"20.1.0.0/24", "20.1.0.0/24"},         // already masked
		{"::ffff:20.1.0.5/120", "20.1.0.0/24"}, // IPv4-mapped: the IPv4 prefix
		{"0.0.0.0/0", "0.0.0.0/0"},             // a default route via the port
	} {
		if got := endpointPrefix(pfx(tt.in)); got != pfx(tt.want) {
			t.Errorf("endpointPrefix(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestNeighAddr(t *testing.T) {
	for _, tt := range []struct{ p, mac, want string }{
		{"10.1.1.10/32", "02:00:00:00:00:0a", "10.1.1.10"}, // a /32: the address itself
		{"20.1.0.0/24", "02:00:00:00:00:0a", "169.254.1.11"},
		{"20.1.0.0/24", "02:00:00:00:fe:ff", "169.254.1.2"}, // 254%254 = 0, 255%254 = 1: never .0 nor .255
		{"0.0.0.0/0", "02:00:00:00:12:34", "169.254.19.53"},
	} {
		if got := neighAddr(pfx(tt.p), mac(tt.mac)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("neighAddr(%s, %s) = %s, want %s", tt.p, tt.mac, got, tt.want)
		}
	}
}

// TestPrefixEndpoint: a to-port endpoint of a prefix (advertise_subnet,
// reference §2.3.1) routes the whole prefix to the endpoint's MAC on its
// port, through a link-local next hop with a permanent neighbour, not to a
// /32 of its address; two prefixes of one MAC share that neighbour until
// the last goes.
func TestPrefixEndpoint(t *testing.T) {
	ns, vm := newNS(t), newNS(t)
	d := newDriver(t, ns, Options{})
	veth(t, ns, "tap-a", "eth0", vm)
	v := newVRF(t, d, 3, "10.1.1.1")
	m := mac("02:00:00:00:00:0a")
	plug := func(p string, dir dataplane.Direction) {
		t.Helper()
		if err := v.Plug(port("tap-a"), m, pfx(p), 300, dir); err != nil {
			t.Fatalf("Plug %s: %v", p, err)
		}
	}
	unplug := func(p string, dir dataplane.Direction) {
		t.Helper()
		if err := v.Unplug(port("tap-a"), m, pfx(p), 300, dir, false); err != nil {
			t.Fatalf("Unplug %s: %v", p, err)
		}
	}
	plug("10.1.1.10/32", dataplane.DirectionBoth)
	plug("20.1.0.0/24", dataplane.DirectionToPort)
	plug("20.2.0.0/16", dataplane.DirectionToPort)
	tap := itoa(link(t, ns, "tap-a").Attrs().Index)
	want := map[string]string{
		"0.0.0.0/0":    "table 1003 0.0.0.0/0 type 7",
		"10.1.1.1/32":  "table 1003 10.1.1.1/32 type 2",
		"10.1.1.10/32": "table 1003 10.1.1.10/32 type 1 [" + tap + " invalid IP 0 invalid IP]",
		"20.1.0.0/24":  "table 1003 20.1.0.0/24 type 1 [" + tap + " 169.254.1.11 0 invalid IP]",
		"20.2.0.0/16":  "table 1003 20.2.0.0/16 type 1 [" + tap + " 169.254.1.11 0 invalid IP]",
	}
	if got := tableRoutes(t, d, 1003); !mapsEqual(got, want) {
		t.Errorf("table 1003\n got %v\nwant %v", got, want)
	}
	wantNeigh := map[string]string{"10.1.1.10": "02:00:00:00:00:0a", "169.254.1.11": "02:00:00:00:00:0a"}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, wantNeigh) {
		t.Errorf("port neighbours %v, want %v", got, wantNeigh)
	}

	// The reconcile finds nothing to repair in what Plug installed, and
	// puts back the prefixes' neighbour when it goes.
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if v.repairs != 0 {
		t.Errorf("the reconcile repaired %d entries of a correct table", v.repairs)
	}
	if err := d.h.NeighDel(&netlink.Neigh{LinkIndex: link(t, ns, "tap-a").Attrs().Index, Family: netlink.FAMILY_V4, IP: net.ParseIP("169.254.1.11")}); err != nil {
		t.Fatal(err)
	}
	if err := d.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, wantNeigh) {
		t.Errorf("port neighbours after a reconcile %v, want %v", got, wantNeigh)
	}

	unplug("20.1.0.0/24", dataplane.DirectionToPort)
	delete(want, "20.1.0.0/24")
	if got := tableRoutes(t, d, 1003); !mapsEqual(got, want) {
		t.Errorf("table 1003 after one prefix unplug\n got %v\nwant %v", got, want)
	}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, wantNeigh) {
		t.Errorf("port neighbours after one prefix unplug %v, want %v (still used by 20.2.0.0/16)", got, wantNeigh)
	}
	unplug("20.2.0.0/16", dataplane.DirectionToPort)
	delete(want, "20.2.0.0/16")
	delete(wantNeigh, "169.254.1.11")
	if got := tableRoutes(t, d, 1003); !mapsEqual(got, want) {
		t.Errorf("table 1003 after both prefix unplugs\n got %v\nwant %v", got, want)
	}
	if got := neighbours(t, ns, "tap-a"); !mapsEqual(got, wantNeigh) {
		t.Errorf("port neighbours after both prefix unplugs %v, want %v", got, wantNeigh)
	}

	plug("20.1.0.0/24", dataplane.DirectionToPort)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if got := neighbours(t, ns, "tap-a"); len(got) != 0 {
		t.Errorf("port neighbours after Close %v", got)
	}
}
