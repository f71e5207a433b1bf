package engine

import (
	"hash/maphash"
	"iter"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// routeSet is a compact open-addressing hash set of routes, used for the
// per-route indexes instead of Go maps: a slot is one pointer plus one
// control byte (a map[string]*route.Route slot is 24 bytes plus control,
// and the key is already in the route). Lookups hash Route.Key; a set is
// used either keyed (one source's routes of one family: at most one route
// per Key, see get/put/deleteKey) or by identity (routes of one RT from
// several sources, which may share a Key: see add/remove).
//
// Layout: groups of 8 control bytes followed by their 8 slots (72 bytes,
// so a probe usually touches one cache line before the route itself).
// Linear probing; a control byte is empty, deleted (tombstone) or
// 0x80|7 bits of the hash, compared before dereferencing a slot. The
// load (live + tombstones) stays ≤ 13/16; tables are rebuilt at half load
// when they grow, and shrunk when under 1/16 full, so memory follows the
// number of routes (about 9 to 18 bytes per route).
type routeSet struct {
	groups []rsGroup // len is 0 or a power of two
	n      int       // live routes
	dead   int       // tombstones
}

type rsGroup struct {
	ctrl  [8]uint8
	slots [8]*route.Route
}

const (
	ctrlEmpty   = 0
	ctrlDeleted = 1
	rsMinGroups = 1
)

var rsSeed = maphash.MakeSeed()

func rsHash(key string) uint64 { return maphash.String(rsSeed, key) }

// fingerprint is the control byte of a full slot for hash h.
func fingerprint(h uint64) uint8 { return uint8(h>>57) | 0x80 }

// Len returns the number of routes.
func (s *routeSet) Len() int { return s.n }

func (s *routeSet) slotCount() int { return len(s.groups) * 8 }

// lookup probes for the route with that key (if r is nil) or for r
// itself. It returns the slot index of the match or -1, and the first
// free (empty or deleted) slot met, or -1 when the set is empty.
func (s *routeSet) lookup(h uint64, key string, r *route.Route) (found, free int) {
	free = -1
	if len(s.groups) == 0 {
		return -1, -1
	}
	fp := fingerprint(h)
	mask := s.slotCount() - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		g := &s.groups[i>>3]
		switch c := g.ctrl[i&7]; c {
		case ctrlEmpty:
			if free < 0 {
				free = i
			}
			return -1, free
		case ctrlDeleted:
			if free < 0 {
				free = i
			}
		case fp:
			x := g.slots[i&7]
			if x == r || (r == nil && x.Key == key) {
				return i, free
			}
		}
	}
}

// get returns the route with that key, or nil (keyed use).
func (s *routeSet) get(key string) *route.Route {
	if s.n == 0 {
		return nil
	}
	i, _ := s.lookup(rsHash(key), key, nil)
	if i < 0 {
		return nil
	}
	return s.groups[i>>3].slots[i&7]
}

// put stores r, replacing and returning the route with the same key if
// any (keyed use).
func (s *routeSet) put(r *route.Route) (old *route.Route) {
	h := rsHash(r.Key)
	i, free := s.lookup(h, r.Key, nil)
	if i >= 0 {
		g := &s.groups[i>>3]
		old, g.slots[i&7] = g.slots[i&7], r
		return old
	}
	s.insert(h, r, free)
	return nil
}

// at returns the route in slot i (from lookup).
func (s *routeSet) at(i int) *route.Route { return s.groups[i>>3].slots[i&7] }

// setAt replaces the route in slot i by r, which must have the same Key.
func (s *routeSet) setAt(i int, r *route.Route) { s.groups[i>>3].slots[i&7] = r }

// add stores r unless it is already there (identity use).
func (s *routeSet) add(r *route.Route) { s.addH(rsHash(r.Key), r) }

// addH is add with h = rsHash(r.Key) already computed.
func (s *routeSet) addH(h uint64, r *route.Route) {
	i, free := s.lookup(h, r.Key, r)
	if i < 0 {
		s.insert(h, r, free)
	}
}

// insert puts r (known absent; h = rsHash(r.Key)) at free, a slot
// returned by lookup with no modification since, or wherever it goes after
// growing.
func (s *routeSet) insert(h uint64, r *route.Route, free int) {
	if free < 0 || (s.n+s.dead+1)*16 > s.slotCount()*13 {
		s.rehash(s.n + 1)
		_, free = s.lookup(h, r.Key, r)
	}
	g := &s.groups[free>>3]
	if g.ctrl[free&7] == ctrlDeleted {
		s.dead--
	}
	g.ctrl[free&7] = fingerprint(h)
	g.slots[free&7] = r
	s.n++
}

// deleteKey removes and returns the route with that key, or nil (keyed use).
func (s *routeSet) deleteKey(key string) *route.Route {
	if s.n == 0 {
		return nil
	}
	i, _ := s.lookup(rsHash(key), key, nil)
	if i < 0 {
		return nil
	}
	r := s.groups[i>>3].slots[i&7]
	s.deleteAt(i)
	return r
}

// remove removes r if present (identity use).
func (s *routeSet) remove(r *route.Route) { s.removeH(rsHash(r.Key), r) }

// removeH is remove with h = rsHash(r.Key) already computed.
func (s *routeSet) removeH(h uint64, r *route.Route) {
	if s.n == 0 {
		return
	}
	if i, _ := s.lookup(h, r.Key, r); i >= 0 {
		s.deleteAt(i)
	}
}

func (s *routeSet) deleteAt(i int) {
	g := &s.groups[i>>3]
	g.slots[i&7] = nil
	next := (i + 1) & (s.slotCount() - 1)
	if s.groups[next>>3].ctrl[next&7] == ctrlEmpty {
		// No probe sequence continues past i: it can be empty again.
		g.ctrl[i&7] = ctrlEmpty
	} else {
		g.ctrl[i&7] = ctrlDeleted
		s.dead++
	}
	s.n--
	if s.n == 0 {
		*s = routeSet{}
		return
	}
	if len(s.groups) > rsMinGroups && s.n*16 < s.slotCount() {
		s.rehash(s.n)
	}
}

// rehash rebuilds the table for n routes at about half load, dropping
// tombstones.
func (s *routeSet) rehash(n int) {
	groups := rsMinGroups
	for groups*8 < 2*n {
		groups *= 2
	}
	old := s.groups
	s.groups = make([]rsGroup, groups)
	s.dead = 0
	mask := groups*8 - 1
	for gi := range old {
		og := &old[gi]
		for j, c := range og.ctrl {
			if c < 0x80 {
				continue
			}
			r := og.slots[j]
			i := int(rsHash(r.Key)) & mask
			for s.groups[i>>3].ctrl[i&7] != ctrlEmpty {
				i = (i + 1) & mask
			}
			s.groups[i>>3].ctrl[i&7] = c
			s.groups[i>>3].slots[i&7] = r
		}
	}
}

// all yields every route. The set must not be modified meanwhile.
func (s *routeSet) all() iter.Seq[*route.Route] {
	return func(yield func(*route.Route) bool) {
		for gi := range s.groups {
			g := &s.groups[gi]
			for j, c := range g.ctrl {
				if c >= 0x80 && !yield(g.slots[j]) {
					return
				}
			}
		}
	}
}
