package vpn

import (
	"errors"
	"fmt"
	"math"
)

// Identifier ranges (reference §5.1).
const (
	// MinLabel and MaxLabel bound the label/VNI allocator: MPLS labels
	// 0–15 are reserved (RFC 3032 §2.1), 2^20−1 is the largest MPLS label.
	MinLabel = 16
	MaxLabel = 1<<20 - 1
	// MaxRDNumber is the largest assigned number of a type-1 RD (16 bits,
	// RFC 4364 §4.2).
	MaxRDNumber = 65535
	// MaxVNI is the largest VXLAN network identifier (24 bits, RFC 7348 §5).
	MaxVNI = 1<<24 - 1
)

// errExhausted is wrapped by allocation errors when no id is left.
var errExhausted = errors.New("no identifier left")

// idAllocator hands out integers of [min, max]. Like upstream's
// IdentifierAllocator it allocates increasing values and reuses released
// ones only once the top of the range has been reached, oldest released
// first ("reuse as late as possible", so that a label or RD just released
// is not immediately given to someone else while the network may still
// carry routes using it). It is not safe for concurrent use.
type idAllocator struct {
	name     string
	min, max uint32
	next     uint64   // lowest never-allocated candidate
	used     []uint64 // bitmap over [min, max]
	released []uint32 // FIFO of released ids (may hold stale entries)
	head     int      // index of the oldest entry of released
	count    int      // ids currently allocated
}

func newIDAllocator(name string, lo, hi uint32) *idAllocator {
	n := uint64(hi-lo) + 1
	return &idAllocator{name: name, min: lo, max: hi, next: uint64(lo), used: make([]uint64, (n+63)/64)}
}

func (a *idAllocator) bit(id uint32) (int, uint64) {
	off := id - a.min
	return int(off / 64), 1 << (off % 64)
}

// inUse reports whether id is currently allocated.
func (a *idAllocator) inUse(id uint32) bool {
	if id < a.min || id > a.max {
		return false
	}
	w, m := a.bit(id)
	return a.used[w]&m != 0
}

func (a *idAllocator) mark(id uint32) {
	w, m := a.bit(id)
	a.used[w] |= m
	a.count++
}

// allocate returns a free id: the next never-used one while the range is
// not exhausted, then the oldest released one.
func (a *idAllocator) allocate() (uint32, error) {
	for a.next <= uint64(a.max) {
		id := uint32(a.next)
		a.next++
		if !a.inUse(id) { // may have been taken through allocateID
			a.mark(id)
			return id, nil
		}
	}
	for a.head < len(a.released) {
		id := a.released[a.head]
		a.head++
		if a.head > 1024 && a.head*2 > len(a.released) {
			a.released = append(a.released[:0], a.released[a.head:]...)
			a.head = 0
		}
		if !a.inUse(id) { // stale entry: re-taken through allocateID
			a.mark(id)
			return id, nil
		}
	}
	return 0, fmt.Errorf("%s allocator: all %d values from %d to %d are in use, release some (detach endpoints or instances) first: %w",
		a.name, uint64(a.max-a.min)+1, a.min, a.max, errExhausted)
}

// allocateID takes a specific id (a requested value, e.g. a forced VNI)
// if it is in range and free, and reports whether it did.
func (a *idAllocator) allocateID(id uint32) bool {
	if id < a.min || id > a.max || a.inUse(id) {
		return false
	}
	a.mark(id)
	return true
}

// release returns id to the pool; releasing an id that is not allocated is
// an error (a bookkeeping bug in the caller).
func (a *idAllocator) release(id uint32) error {
	if !a.inUse(id) {
		return fmt.Errorf("%s allocator: cannot release %d, it is not allocated", a.name, id)
	}
	w, m := a.bit(id)
	a.used[w] &^= m
	a.count--
	a.released = append(a.released, id)
	return nil
}

// allocs bundles the identifier allocators of a manager and the registry of
// VNIs used by instances (upstream's instances_per_vni, extended to every
// instance VNI so that an allocated VNI can never equal a forced one, in
// either order). Not safe for concurrent use: the manager locks around it.
type allocs struct {
	labels   *idAllocator // instance VNIs (and, later, per-MAC MPLS labels)
	rds      *idAllocator // RD assigned numbers
	vnis     map[uint32]string
	lastInst uint64
}

func newAllocs() *allocs {
	return &allocs{
		labels: newIDAllocator("label/VNI", MinLabel, MaxLabel),
		rds:    newIDAllocator("route distinguisher", 0, MaxRDNumber),
		vnis:   map[uint32]string{},
	}
}

// instanceID returns the next internal instance id: 1, 2, 3…, never reused.
func (a *allocs) instanceID() (uint32, error) {
	if a.lastInst >= math.MaxUint32 {
		return 0, fmt.Errorf("instance id allocator: all 2^32-1 instance ids have been used, restart bagpipe-bgp: %w", errExhausted)
	}
	a.lastInst++
	return uint32(a.lastInst), nil
}

// vniLease records how an instance got its VNI, to release it correctly.
type vniLease struct {
	vni     uint32
	forced  bool
	inAlloc bool // the VNI is held in the label allocator
}

// takeVNI reserves the VNI of a new instance: forced (non-zero) is honoured
// if no other instance uses it, else a *Error 400 (reference §2.5);
// otherwise one is allocated, skipping VNIs forced by other instances.
func (a *allocs) takeVNI(forced uint32, owner string) (vniLease, error) {
	if forced != 0 {
		if forced > MaxVNI {
			return vniLease{}, clientErr(400, "vni %d is out of range: a VNI is at most %d", forced, MaxVNI)
		}
		if _, busy := a.vnis[forced]; busy {
			return vniLease{}, clientErr(400, "A VPN instance using vni %d already exists.", forced)
		}
		l := vniLease{vni: forced, forced: true, inAlloc: a.labels.allocateID(forced)}
		a.vnis[forced] = owner
		return l, nil
	}
	for {
		id, err := a.labels.allocate()
		if err != nil {
			return vniLease{}, err
		}
		if _, busy := a.vnis[id]; busy {
			// Only possible for a VNI forced while the label allocator had
			// it out as another kind of label: it stays marked allocated
			// (never handed out again) rather than clash with the forced one.
			continue
		}
		a.vnis[id] = owner
		return vniLease{vni: id, inAlloc: true}, nil
	}
}

// releaseVNI undoes takeVNI.
func (a *allocs) releaseVNI(l vniLease) error {
	delete(a.vnis, l.vni)
	if l.inAlloc {
		return a.labels.release(l.vni)
	}
	return nil
}
