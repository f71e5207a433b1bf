package linux

import (
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// The desired remote state of an EVI holds one entry per remote MAC and
// per remote IP: a million of each for bagpipe-scale ingest --routes
// 1000000. As map[route.MAC]dest and map[netip.Addr][]route.MAC they took
// 66 and 79 bytes per entry (heap profile, 145 MB of the daemon's 351 MB
// live heap); these tables take about a third. Go maps never shrink, so a
// table that empties drops its maps (a withdraw of everything gives the
// memory back).

// fdbTable maps remote MACs to their destination, interned: an EVI has
// few distinct (VTEP, VNI) pairs and many MACs.
type fdbTable struct {
	macs  map[route.MAC]uint32 // MAC → index in dests
	dests []dest
	ids   map[dest]uint32
}

func (t *fdbTable) get(m route.MAC) (dest, bool) {
	i, ok := t.macs[m]
	if !ok {
		return dest{}, false
	}
	return t.dests[i], true
}

func (t *fdbTable) set(m route.MAC, d dest) {
	id, ok := t.ids[d]
	if !ok {
		if t.ids == nil {
			t.ids = map[dest]uint32{}
		}
		id = uint32(len(t.dests))
		t.dests = append(t.dests, d)
		t.ids[d] = id
	}
	if t.macs == nil {
		t.macs = map[route.MAC]uint32{}
	}
	t.macs[m] = id
}

func (t *fdbTable) del(m route.MAC) {
	delete(t.macs, m)
	if len(t.macs) == 0 {
		*t = fdbTable{}
	}
}

func (t *fdbTable) len() int { return len(t.macs) }

// all iterates over the entries.
func (t *fdbTable) all(yield func(route.MAC, dest) bool) {
	for m, i := range t.macs {
		if !yield(m, t.dests[i]) {
			return
		}
	}
}

// neighTable maps remote IPs to their MACs. An IP normally has one MAC
// (the active one, whose neighbour entry is programmed); during a move it
// may briefly have several, the older ones kept in more, oldest first.
type neighTable struct {
	v4   map[[4]byte]route.MAC
	v6   map[[16]byte]route.MAC
	more map[netip.Addr][]route.MAC
}

// active returns the programmed MAC of an IP.
func (t *neighTable) active(ip netip.Addr) (route.MAC, bool) {
	var m route.MAC
	var ok bool
	if ip.Is4() {
		m, ok = t.v4[ip.As4()]
	} else {
		m, ok = t.v6[ip.As16()]
	}
	return m, ok
}

// list returns the MACs of an IP, the active one last (a new slice).
func (t *neighTable) list(ip netip.Addr) []route.MAC {
	a, ok := t.active(ip)
	if !ok {
		return nil
	}
	return append(slices.Clone(t.more[ip]), a)
}

// setList replaces the MACs of an IP (the active one last; empty: none).
func (t *neighTable) setList(ip netip.Addr, l []route.MAC) {
	if len(l) == 0 {
		if ip.Is4() {
			delete(t.v4, ip.As4())
		} else {
			delete(t.v6, ip.As16())
		}
		delete(t.more, ip)
		if t.len() == 0 {
			*t = neighTable{}
		}
		return
	}
	a := l[len(l)-1]
	if ip.Is4() {
		if t.v4 == nil {
			t.v4 = map[[4]byte]route.MAC{}
		}
		t.v4[ip.As4()] = a
	} else {
		if t.v6 == nil {
			t.v6 = map[[16]byte]route.MAC{}
		}
		t.v6[ip.As16()] = a
	}
	if len(l) == 1 {
		delete(t.more, ip)
		return
	}
	if t.more == nil {
		t.more = map[netip.Addr][]route.MAC{}
	}
	t.more[ip] = slices.Clone(l[:len(l)-1])
}

func (t *neighTable) len() int { return len(t.v4) + len(t.v6) }

// all iterates over the IPs and their active MAC.
func (t *neighTable) all(yield func(netip.Addr, route.MAC) bool) {
	for k, m := range t.v4 {
		if !yield(netip.AddrFrom4(k), m) {
			return
		}
	}
	for k, m := range t.v6 {
		if !yield(netip.AddrFrom16(k), m) {
			return
		}
	}
}
