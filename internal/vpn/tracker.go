package vpn

import (
	"hash/maphash"
	"iter"
	"net/netip"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/engine"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// This file is the received-route side of an EVI (reference §4.6, §5.5):
// routes are tracked per destination, a best path is selected per
// destination, and only differences of the derived dataplane state are
// handed to the dataplane.
//
// Destinations (upstream's "tracked entries"):
//   - type 2 (RFC 7432 §7.2): (MAC, IP) — routes for the same MAC and IP
//     from every RD and source compete;
//   - type 3 (RFC 7432 §7.3): (originator IP, RD).
//
// Derived dataplane state:
//   - fdb: per MAC, the VTEP (next hop) and VNI (label) of the best of the
//     best routes of the MAC's destinations;
//   - neigh: per (MAC, IP) destination with a best route, IP → MAC;
//   - flood: per type-3 best route with an ingress-replication PMSI
//     (RFC 6514 §5, RFC 7432 §11.2), (PMSI tunnel id, PMSI label),
//     reference-counted.
//
// Memory: the type-2 tables are keyed by MAC only. A MAC with a single
// route (the common case) is one slot of 9 bytes (route pointer, control
// byte) in macs, an open-addressing set whose key, the MAC, is read from
// the route's NLRI key, and costs no other allocation; MACs with several
// routes (several destinations, or several routes for one destination)
// live in multi, with a side structure (macMany). A MAC is in at most one
// of the two tables.

// Best path selection (reference §4.6, E-VPN drivers have no ECMP):
//  1. highest LOCAL_PREF (missing = 100) wins;
//  2. then the lowest tie-break hash wins. The hash is 64-bit FNV-1a of a
//     salt (hostname, NUL, worker name, NUL) followed by the route's source
//     name, NUL, and NLRI key bytes. It is stable across runs (no random
//     seed, no pointer or registration-order input) and differs between
//     hosts and instances, as upstream's salted hash does;
//  3. on a hash collision, the lower source name, then the lower key wins,
//     so two different routes (they always differ in source or key, since a
//     source's route with the same key replaces the earlier one) never
//     compare equal.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func srcName(r *route.Route) string {
	if r.Source == nil {
		return ""
	}
	return r.Source.Name
}

// sameRoute reports whether a and b are the same route of the same source
// (same NLRI key): one replaces or withdraws the other.
func sameRoute(a, b *route.Route) bool {
	return a.Source == b.Source && a.Key == b.Key
}

// macKey packs a MAC into a uint64 (the map's fast path for 8-byte keys).
func macKey(m route.MAC) uint64 {
	return uint64(m[0])<<40 | uint64(m[1])<<32 | uint64(m[2])<<24 | uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
}

// macRoutes is the working form of a MAC's type-2 routes (see
// tracker.entry): either one route, or many.
type macRoutes struct {
	one  *route.Route
	many *macMany
}

// macMany holds the destinations of a MAC when it has more than one route.
type macMany struct {
	dests []destRoutes
}

// destRoutes is one (MAC, IP) destination with its routes.
type destRoutes struct {
	ip     netip.Addr
	routes []*route.Route
	best   *route.Route
}

type mcKey struct {
	orig netip.Addr
	rd   route.RD
}

type mcDest struct {
	routes []*route.Route
	best   *route.Route
}

type floodKey struct {
	vtep netip.Addr
	vni  uint32
}

// trackerStats are the received-route counters.
type trackerStats struct {
	Type2Routes     int    // type-2 routes stored
	Type3Routes     int    // type-3 routes stored
	MACs            int    // MACs with at least one route
	Type2Dests      int    // (MAC, IP) destinations with a best route
	IgnoredType     uint64 // events for E-VPN route types 1, 4, 5… (or other families)
	IgnoredRT       uint64 // advertisements without an imported RT
	IgnoredEncap    uint64 // advertisements without a usable encapsulation
	DataplaneErrors uint64 // failed Apply batches
}

// tracker is the received-route state of one EVI. It is owned by the
// instance goroutine (or a test) and is not safe for concurrent use.
type tracker struct {
	salt     uint64
	encaps   []route.Encap // driver encapsulations
	imports  []route.RT
	macs     macSet              // MACs with one route
	multi    map[uint64]*macMany // MACs with several routes, by macKey
	mcast    map[mcKey]*mcDest
	flood    map[floodKey]int32
	stats    trackerStats
	onIgnore func(reason string, r *route.Route) // rate-limited warning, may be nil
}

func newTracker(hostname, worker string, encaps []route.Encap) *tracker {
	h := fnvString(fnvOffset, hostname)
	h = fnvString(h, "\x00"+worker+"\x00")
	return &tracker{
		salt:   h,
		encaps: encaps,
		multi:  map[uint64]*macMany{},
		mcast:  map[mcKey]*mcDest{},
		flood:  map[floodKey]int32{},
	}
}

func (t *tracker) hash(r *route.Route) uint64 {
	h := fnvString(t.salt, srcName(r))
	h = fnvString(h, "\x00")
	return fnvString(h, r.Key)
}

// better reports whether a is preferred over b (see the rules above).
func (t *tracker) better(a, b *route.Route) bool {
	if b == nil {
		return true
	}
	if la, lb := a.Attrs.LocalPrefOrDefault(), b.Attrs.LocalPrefOrDefault(); la != lb {
		return la > lb
	}
	if ha, hb := t.hash(a), t.hash(b); ha != hb {
		return ha < hb
	}
	if sa, sb := srcName(a), srcName(b); sa != sb {
		return sa < sb
	}
	return a.Key < b.Key
}

func (t *tracker) bestOf(rs []*route.Route) *route.Route {
	var best *route.Route
	for _, r := range rs {
		if best == nil || t.better(r, best) {
			best = r
		}
	}
	return best
}

// importable reports whether an advertised route may be used: it carries
// an imported RT (the engine may deliver more, e.g. through wildcard
// subscriptions) and an encapsulation the driver supports (reference §5.2:
// advertised encaps, or "default" if none, ∩ driver encaps ≠ ∅).
func (t *tracker) importable(r *route.Route) bool {
	a := r.Attrs
	if a == nil || !slices.ContainsFunc(a.RTs, func(rt route.RT) bool { return slices.Contains(t.imports, rt) }) {
		t.stats.IgnoredRT++
		return false
	}
	if !slices.ContainsFunc(a.EncapsOrDefault(), func(e route.Encap) bool { return slices.Contains(t.encaps, e) }) {
		t.stats.IgnoredEncap++
		if t.onIgnore != nil {
			t.onIgnore("no encapsulation supported by the dataplane driver", r)
		}
		return false
	}
	return true
}

// handle processes a batch of engine events and returns the dataplane
// changes they cause, in order (make-before-break within a destination).
func (t *tracker) handle(events []engine.Event, out []dataplane.EVIChange) []dataplane.EVIChange {
	for i := range events {
		ev := &events[i]
		r := ev.Route
		if r == nil || r.Family != route.FamilyEVPN {
			t.stats.IgnoredType++
			continue
		}
		switch r.EVPNType() {
		case route.EVPNMACIP:
			out = t.handleMACIP(ev, out)
		case route.EVPNMulticast:
			out = t.handleMulticast(ev, out)
		default:
			t.stats.IgnoredType++
		}
	}
	return out
}

// ---- type 2 ----

func (e *macRoutes) empty() bool { return e.one == nil && e.many == nil }

// entry returns the routes of the MAC with key mk (from macs or multi).
func (t *tracker) entry(mk uint64) macRoutes {
	if r := t.macs.get(mk); r != nil {
		return macRoutes{one: r}
	}
	if len(t.multi) > 0 {
		if m := t.multi[mk]; m != nil {
			return macRoutes{many: m}
		}
	}
	return macRoutes{}
}

// store records e as the routes of the MAC with key mk, old being what
// entry returned before the change.
func (t *tracker) store(mk uint64, old, e macRoutes) {
	switch {
	case e.one != nil:
		if old.many != nil {
			delete(t.multi, mk)
		}
		t.macs.put(mk, e.one)
	case e.many != nil:
		if old.one != nil {
			t.macs.remove(mk)
		}
		if old.many != e.many {
			t.multi[mk] = e.many
		}
	default:
		if old.one != nil {
			t.macs.remove(mk)
		}
		if old.many != nil {
			delete(t.multi, mk)
		}
	}
}

// destBest returns the best route of destination (mac, ip).
func (e *macRoutes) destBest(ip netip.Addr) *route.Route {
	if e.one != nil {
		if _, rip, _ := e.one.MACIP(); rip == ip {
			return e.one
		}
		return nil
	}
	if e.many != nil {
		for i := range e.many.dests {
			if e.many.dests[i].ip == ip {
				return e.many.dests[i].best
			}
		}
	}
	return nil
}

// macBest returns the route that programs the MAC's fdb entry.
func (t *tracker) macBest(e *macRoutes) *route.Route {
	if e.one != nil {
		return e.one
	}
	if e.many == nil {
		return nil
	}
	var best *route.Route
	for i := range e.many.dests {
		if b := e.many.dests[i].best; b != nil && t.better(b, best) {
			best = b
		}
	}
	return best
}

// remove drops the route of r's source with r's key from e, if stored.
func (t *tracker) remove(e *macRoutes, ip netip.Addr, r *route.Route) bool {
	if e.one != nil {
		if sameRoute(e.one, r) {
			e.one = nil
			return true
		}
		return false
	}
	if e.many == nil {
		return false
	}
	ds := e.many.dests
	for i := range ds {
		if ds[i].ip != ip {
			continue
		}
		j := slices.IndexFunc(ds[i].routes, func(x *route.Route) bool { return sameRoute(x, r) })
		if j < 0 {
			return false
		}
		ds[i].routes = slices.Delete(ds[i].routes, j, j+1)
		if len(ds[i].routes) == 0 {
			e.many.dests = slices.Delete(ds, i, i+1)
		} else {
			ds[i].best = t.bestOf(ds[i].routes)
		}
		// Back to the compact forms when possible.
		switch {
		case len(e.many.dests) == 0:
			e.many = nil
		case len(e.many.dests) == 1 && len(e.many.dests[0].routes) == 1:
			e.one, e.many = e.many.dests[0].routes[0], nil
		}
		return true
	}
	return false
}

func (t *tracker) add(e *macRoutes, ip netip.Addr, r *route.Route) {
	if e.empty() {
		e.one = r
		return
	}
	if e.one != nil {
		_, oip, _ := e.one.MACIP()
		e.many = &macMany{dests: []destRoutes{{ip: oip, routes: []*route.Route{e.one}, best: e.one}}}
		e.one = nil
	}
	ds := e.many.dests
	for i := range ds {
		if ds[i].ip == ip {
			ds[i].routes = append(ds[i].routes, r)
			if t.better(r, ds[i].best) {
				ds[i].best = r
			}
			return
		}
	}
	e.many.dests = append(ds, destRoutes{ip: ip, routes: []*route.Route{r}, best: r})
}

func (t *tracker) handleMACIP(ev *engine.Event, out []dataplane.EVIChange) []dataplane.EVIChange {
	r := ev.Route
	mac, ip, ok := r.MACIP()
	if !ok {
		t.stats.IgnoredType++
		return out
	}
	mk := macKey(mac)
	orig := t.entry(mk)
	e := orig
	oldMAC, oldDest := t.macBest(&e), e.destBest(ip)
	wasEmpty := e.empty()
	// A replaced route (Event.Replaced, or any earlier route of the same
	// source and key) goes first.
	if ev.Replaced != nil && t.remove(&e, ip, ev.Replaced) {
		t.stats.Type2Routes--
	}
	if t.remove(&e, ip, r) {
		t.stats.Type2Routes--
	}
	if ev.Kind == engine.Advertise && t.importable(r) {
		t.add(&e, ip, r)
		t.stats.Type2Routes++
	}
	t.store(mk, orig, e)
	switch {
	case e.empty() && !wasEmpty:
		t.stats.MACs--
	case !e.empty() && wasEmpty:
		t.stats.MACs++
	}
	newMAC, newDest := t.macBest(&e), e.destBest(ip)
	if (oldDest == nil) != (newDest == nil) {
		if newDest != nil {
			t.stats.Type2Dests++
		} else {
			t.stats.Type2Dests--
		}
	}

	// fdb (make-before-break: the new entry first).
	oldF, oldOK := fdbOf(oldMAC)
	newF, newOK := fdbOf(newMAC)
	if newOK && (!oldOK || oldF != newF) {
		out = append(out, dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: mac, VTEP: newF.vtep, VNI: newF.vni})
	}
	if ip.IsValid() && newDest != nil && oldDest == nil {
		out = append(out, dataplane.EVIChange{Kind: dataplane.AddRemoteIP, MAC: mac, IP: ip})
	}
	if ip.IsValid() && newDest == nil && oldDest != nil {
		out = append(out, dataplane.EVIChange{Kind: dataplane.RemoveRemoteIP, MAC: mac, IP: ip})
	}
	if oldOK && (!newOK || oldF != newF) {
		out = append(out, dataplane.EVIChange{Kind: dataplane.RemoveRemoteMAC, MAC: mac, VTEP: oldF.vtep, VNI: oldF.vni})
	}
	return out
}

// fdbOf is the (VTEP, VNI) a best type-2 route programs: the BGP next hop
// and the raw 24-bit label (a VNI for VXLAN, RFC 8365 §5.1.3).
func fdbOf(r *route.Route) (floodKey, bool) {
	if r == nil {
		return floodKey{}, false
	}
	return floodKey{vtep: r.NextHop(), vni: r.Label}, true
}

// ---- type 3 ----

// floodOf is the ingress-replication flood target of a type-3 route: the
// PMSI tunnel identifier and the PMSI label (the VNI, RFC 8365 §5.1.3).
// Other PMSI tunnel types are ignored (reference §5.5).
func floodOf(r *route.Route) (floodKey, bool) {
	if r == nil || r.Attrs == nil || r.Attrs.PMSI == nil || r.Attrs.PMSI.TunnelType != route.PMSIIngressReplication {
		return floodKey{}, false
	}
	return floodKey{vtep: r.Attrs.PMSI.TunnelID, vni: r.Attrs.PMSI.Label}, true
}

func (t *tracker) handleMulticast(ev *engine.Event, out []dataplane.EVIChange) []dataplane.EVIChange {
	r := ev.Route
	orig, ok := r.Originator()
	rd, _ := r.RD()
	if !ok {
		t.stats.IgnoredType++
		return out
	}
	k := mcKey{orig: orig, rd: rd}
	d := t.mcast[k]
	var old *route.Route
	if d != nil {
		old = d.best
		for _, x := range []*route.Route{ev.Replaced, r} {
			if x == nil {
				continue
			}
			if j := slices.IndexFunc(d.routes, func(y *route.Route) bool { return sameRoute(x, y) }); j >= 0 {
				d.routes = slices.Delete(d.routes, j, j+1)
				t.stats.Type3Routes--
			}
		}
	}
	if ev.Kind == engine.Advertise && t.importable(r) {
		if d == nil {
			d = &mcDest{}
			t.mcast[k] = d
		}
		d.routes = append(d.routes, r)
		t.stats.Type3Routes++
	}
	var best *route.Route
	if d != nil {
		if len(d.routes) == 0 {
			delete(t.mcast, k)
		} else {
			d.best = t.bestOf(d.routes)
			best = d.best
		}
	}
	oldF, oldOK := floodOf(old)
	newF, newOK := floodOf(best)
	if newOK && (!oldOK || oldF != newF) {
		t.flood[newF]++
		if t.flood[newF] == 1 {
			out = append(out, dataplane.EVIChange{Kind: dataplane.AddFlood, VTEP: newF.vtep, VNI: newF.vni})
		}
	}
	if oldOK && (!newOK || oldF != newF) {
		t.flood[oldF]--
		if t.flood[oldF] <= 0 {
			delete(t.flood, oldF)
			out = append(out, dataplane.EVIChange{Kind: dataplane.RemoveFlood, VTEP: oldF.vtep, VNI: oldF.vni})
		}
	}
	return out
}

// routes lists every stored route and every best route (looking glass).
func (t *tracker) routes() (received, best []*route.Route) {
	for r := range t.macs.all() {
		received = append(received, r)
		best = append(best, r)
	}
	for _, m := range t.multi {
		for _, d := range m.dests {
			received = append(received, d.routes...)
			best = append(best, d.best)
		}
	}
	for _, d := range t.mcast {
		received = append(received, d.routes...)
		best = append(best, d.best)
	}
	return received, best
}

// reconcile returns the changes that bring the dataplane entries touched
// by failed changes (an Apply that returned an error) to the current
// derived state. Retrying the failed batch as-is could resurrect stale
// entries when later batches changed the same MAC, IP or flood target.
func (t *tracker) reconcile(failed []dataplane.EVIChange) []dataplane.EVIChange {
	var out []dataplane.EVIChange
	doneMAC := map[route.MAC]bool{}
	type macIP struct {
		mac route.MAC
		ip  netip.Addr
	}
	doneIP := map[macIP]bool{}
	doneFlood := map[floodKey]bool{}
	for _, c := range failed {
		switch c.Kind {
		case dataplane.AddRemoteMAC, dataplane.RemoveRemoteMAC:
			if doneMAC[c.MAC] {
				continue
			}
			doneMAC[c.MAC] = true
			e := t.entry(macKey(c.MAC))
			cur, ok := fdbOf(t.macBest(&e))
			if ok {
				out = append(out, dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: c.MAC, VTEP: cur.vtep, VNI: cur.vni})
			}
			// Entries the failed changes may have left behind.
			stale := map[floodKey]bool{}
			for _, f := range failed {
				if (f.Kind == dataplane.AddRemoteMAC || f.Kind == dataplane.RemoveRemoteMAC) && f.MAC == c.MAC {
					if k := (floodKey{vtep: f.VTEP, vni: f.VNI}); (!ok || k != cur) && !stale[k] {
						stale[k] = true
						out = append(out, dataplane.EVIChange{Kind: dataplane.RemoveRemoteMAC, MAC: c.MAC, VTEP: k.vtep, VNI: k.vni})
					}
				}
			}
		case dataplane.AddRemoteIP, dataplane.RemoveRemoteIP:
			k := macIP{c.MAC, c.IP}
			if doneIP[k] {
				continue
			}
			doneIP[k] = true
			e := t.entry(macKey(c.MAC))
			kind := dataplane.RemoveRemoteIP
			if e.destBest(c.IP) != nil {
				kind = dataplane.AddRemoteIP
			}
			out = append(out, dataplane.EVIChange{Kind: kind, MAC: c.MAC, IP: c.IP})
		case dataplane.AddFlood, dataplane.RemoveFlood:
			k := floodKey{vtep: c.VTEP, vni: c.VNI}
			if doneFlood[k] {
				continue
			}
			doneFlood[k] = true
			kind := dataplane.RemoveFlood
			if t.flood[k] > 0 {
				kind = dataplane.AddFlood
			}
			out = append(out, dataplane.EVIChange{Kind: kind, VTEP: k.vtep, VNI: k.vni})
		}
	}
	return out
}

// ---- the single-route MAC table ----

// macSet is an open-addressing hash set of type-2 routes keyed by the MAC
// in their NLRI key (at most one route per MAC): a slot is one pointer
// plus one control byte, where a map[uint64]*route.Route slot is 16 bytes
// plus control. Layout and probing are those of the engine's route sets:
// groups of 8 control bytes and their 8 slots, linear probing, a control
// byte empty, deleted (tombstone) or 0x80|7 bits of the hash; the load
// (live + tombstones) stays ≤ 13/16, tables are rebuilt at half load when
// they grow and shrunk when under 1/16 full (after a large withdrawal).
type macSet struct {
	groups []msGroup // len is 0 or a power of two
	n      int       // live routes
	dead   int       // tombstones
}

type msGroup struct {
	ctrl  [8]uint8
	slots [8]*route.Route
}

const (
	msEmpty   = 0
	msDeleted = 1
)

var msSeed = maphash.MakeSeed()

func msHash(mk uint64) uint64 { return maphash.Comparable(msSeed, mk) }

// routeMACKey is the macKey of a stored (type-2) route's MAC.
func routeMACKey(r *route.Route) uint64 {
	k := r.Key[13:19] // [0]=2 | RD(8) | ETag(4) | MAC(6): see route.Route
	return uint64(k[0])<<40 | uint64(k[1])<<32 | uint64(k[2])<<24 | uint64(k[3])<<16 | uint64(k[4])<<8 | uint64(k[5])
}

func (s *macSet) len() int { return s.n }

// lookup returns the slot holding mk's route or -1, and the first free
// (empty or deleted) slot met, or -1 when the set is empty.
func (s *macSet) lookup(h, mk uint64) (found, free int) {
	free = -1
	if len(s.groups) == 0 {
		return -1, -1
	}
	fp := uint8(h>>57) | 0x80
	mask := len(s.groups)*8 - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		g := &s.groups[i>>3]
		switch c := g.ctrl[i&7]; c {
		case msEmpty:
			if free < 0 {
				free = i
			}
			return -1, free
		case msDeleted:
			if free < 0 {
				free = i
			}
		case fp:
			if routeMACKey(g.slots[i&7]) == mk {
				return i, free
			}
		}
	}
}

// get returns the route of MAC mk, or nil.
func (s *macSet) get(mk uint64) *route.Route {
	if s.n == 0 {
		return nil
	}
	if i, _ := s.lookup(msHash(mk), mk); i >= 0 {
		return s.groups[i>>3].slots[i&7]
	}
	return nil
}

// put stores r (whose MAC is mk), replacing the route of that MAC.
func (s *macSet) put(mk uint64, r *route.Route) {
	h := msHash(mk)
	i, free := s.lookup(h, mk)
	if i >= 0 {
		s.groups[i>>3].slots[i&7] = r
		return
	}
	if free < 0 || (s.n+s.dead+1)*16 > len(s.groups)*8*13 {
		s.rehash(s.n + 1)
		_, free = s.lookup(h, mk)
	}
	g := &s.groups[free>>3]
	if g.ctrl[free&7] == msDeleted {
		s.dead--
	}
	g.ctrl[free&7] = uint8(h>>57) | 0x80
	g.slots[free&7] = r
	s.n++
}

// remove drops the route of MAC mk, if any.
func (s *macSet) remove(mk uint64) {
	if s.n == 0 {
		return
	}
	i, _ := s.lookup(msHash(mk), mk)
	if i < 0 {
		return
	}
	g := &s.groups[i>>3]
	g.slots[i&7] = nil
	mask := len(s.groups)*8 - 1
	if next := (i + 1) & mask; s.groups[next>>3].ctrl[next&7] == msEmpty {
		// No probe sequence continues past i: it can be empty again.
		g.ctrl[i&7] = msEmpty
	} else {
		g.ctrl[i&7] = msDeleted
		s.dead++
	}
	s.n--
	switch {
	case s.n == 0:
		*s = macSet{}
	case len(s.groups) > 1 && s.n*16 < len(s.groups)*8:
		s.rehash(s.n)
	}
}

// rehash rebuilds the table for n routes at about half load, dropping
// tombstones.
func (s *macSet) rehash(n int) {
	groups := 1
	for groups*8 < 2*n {
		groups *= 2
	}
	old := s.groups
	s.groups = make([]msGroup, groups)
	s.dead = 0
	mask := groups*8 - 1
	for gi := range old {
		og := &old[gi]
		for j, c := range og.ctrl {
			if c < 0x80 {
				continue
			}
			r := og.slots[j]
			i := int(msHash(routeMACKey(r))) & mask
			for s.groups[i>>3].ctrl[i&7] != msEmpty {
				i = (i + 1) & mask
			}
			s.groups[i>>3].ctrl[i&7] = c
			s.groups[i>>3].slots[i&7] = r
		}
	}
}

// all yields every route. The set must not be modified meanwhile.
func (s *macSet) all() iter.Seq[*route.Route] {
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
