// Package alloc holds the pure parts of bagpipe-controller's allocations:
// integer ranges (segmentation ids, route-target numbers) in upstream's
// "lo:hi,lo:hi" syntax, choosing a free value, MAC generation, and
// address pools of subnets. Claiming a value is done by the caller in an
// etcd transaction (create-if-absent on one key per value), so that
// choosing here never has to be race-free.
package alloc

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strconv"
	"strings"
)

// Range is an inclusive range of integers.
type Range struct{ Lo, Hi uint32 }

// Ranges is a list of disjoint inclusive ranges.
type Ranges []Range

// ParseRanges parses upstream's range syntax: comma-separated "lo:hi" items
// (a single "n" means n:n), e.g. "100:119,500:519". Values must lie in
// [min, max], and ranges must not overlap.
func ParseRanges(s string, min, max uint32) (Ranges, error) {
	var out Ranges
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		los, his, ok := strings.Cut(item, ":")
		if !ok {
			his = los
		}
		lo, err1 := strconv.ParseUint(strings.TrimSpace(los), 10, 32)
		hi, err2 := strconv.ParseUint(strings.TrimSpace(his), 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("range %q: want <min>:<max> with decimal integers", item)
		}
		if lo > hi {
			return nil, fmt.Errorf("range %q: minimum above maximum", item)
		}
		if lo < uint64(min) || hi > uint64(max) {
			return nil, fmt.Errorf("range %q: values must be between %d and %d", item, min, max)
		}
		r := Range{uint32(lo), uint32(hi)}
		for _, o := range out {
			if r.Lo <= o.Hi && o.Lo <= r.Hi {
				return nil, fmt.Errorf("range %q overlaps %d:%d", item, o.Lo, o.Hi)
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, errors.New("no range given: want e.g. 100:119,500:519")
	}
	return out, nil
}

// String formats rs in the syntax ParseRanges reads.
func (rs Ranges) String() string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d:%d", r.Lo, r.Hi)
	}
	return strings.Join(parts, ",")
}

// Contains says whether v is in one of the ranges.
func (rs Ranges) Contains(v uint32) bool {
	for _, r := range rs {
		if v >= r.Lo && v <= r.Hi {
			return true
		}
	}
	return false
}

// Size is the number of values in the ranges.
func (rs Ranges) Size() uint64 {
	var n uint64
	for _, r := range rs {
		n += uint64(r.Hi-r.Lo) + 1
	}
	return n
}

// Pick returns a value of rs not in used, and false when every value is
// used. It starts at a random value and probes forward (wrapping), so that
// concurrent allocators rarely choose the same value; its cost is bounded
// by the number of used values, not by the size of the ranges.
func (rs Ranges) Pick(used map[uint32]bool) (uint32, bool) {
	size := rs.Size()
	if size == 0 {
		return 0, false
	}
	start := randBelow(size)
	for i := uint64(0); i < size; i++ {
		v := rs.nth((start + i) % size)
		if !used[v] {
			return v, true
		}
	}
	return 0, false
}

// nth returns the n-th value (from 0) of the ranges, in order.
func (rs Ranges) nth(n uint64) uint32 {
	for _, r := range rs {
		w := uint64(r.Hi-r.Lo) + 1
		if n < w {
			return r.Lo + uint32(n)
		}
		n -= w
	}
	panic("alloc: index beyond the ranges")
}

// randBelow returns a uniform random number in [0, n).
func randBelow(n uint64) uint64 {
	v, err := rand.Int(rand.Reader, new(big.Int).SetUint64(n))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return v.Uint64()
}

// RandomMAC returns a random MAC address with Neutron's default base
// "fa:16:3e" (locally administered, unicast).
func RandomMAC() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return fmt.Sprintf("fa:16:3e:%02x:%02x:%02x", b[0], b[1], b[2])
}

// Pool is an inclusive range of addresses of one family.
type Pool struct{ Start, End netip.Addr }

// Contains says whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	return a.BitLen() == p.Start.BitLen() && p.Start.Compare(a) <= 0 && a.Compare(p.End) <= 0
}

// Overlaps says whether p and q share an address.
func (p Pool) Overlaps(q Pool) bool {
	return p.Start.Compare(q.End) <= 0 && q.Start.Compare(p.End) <= 0
}

// Usable says whether a may be given to a port of the subnet prefix: inside
// it, and (IPv4 with a prefix shorter than /31) neither its network nor its
// broadcast address; for IPv6, not the subnet-router anycast address.
func Usable(prefix netip.Prefix, a netip.Addr) bool {
	if !prefix.Contains(a) {
		return false
	}
	first, last := Bounds(prefix)
	if a.Is4() && prefix.Bits() < 31 {
		return a != first && a != last
	}
	if a.Is6() && prefix.Bits() < 127 {
		return a != first
	}
	return true
}

// Bounds returns the first and last addresses of prefix.
func Bounds(prefix netip.Prefix) (first, last netip.Addr) {
	first = prefix.Masked().Addr()
	b := first.AsSlice()
	host := len(b)*8 - prefix.Bits()
	for i := len(b) - 1; i >= 0 && host > 0; i-- {
		if host >= 8 {
			b[i] = 0xff
			host -= 8
		} else {
			b[i] |= byte(1<<host - 1)
			host = 0
		}
	}
	last, _ = netip.AddrFromSlice(b)
	return first, last
}

// DefaultPools returns the pools Neutron gives a subnet without
// allocation_pools: every usable address of prefix except gateway (which
// may be invalid for "no gateway").
func DefaultPools(prefix netip.Prefix, gateway netip.Addr) []Pool {
	first, last := Bounds(prefix)
	lo, hi := first, last
	if !Usable(prefix, lo) {
		lo = lo.Next()
	}
	if lo.Is4() && prefix.Bits() < 31 {
		hi = hi.Prev()
	}
	if lo.Compare(hi) > 0 {
		return nil
	}
	full := Pool{lo, hi}
	if !gateway.IsValid() || !full.Contains(gateway) {
		return []Pool{full}
	}
	var out []Pool
	if gateway != lo {
		out = append(out, Pool{lo, gateway.Prev()})
	}
	if gateway != hi {
		out = append(out, Pool{gateway.Next(), hi})
	}
	return out
}

// PickAddr returns an address of pools not in used and not skip, chosen at
// random among the first free ones (a bounded scan: at most 4096
// addresses are looked at), and false when none is free.
func PickAddr(pools []Pool, used map[netip.Addr]bool, skip netip.Addr) (netip.Addr, bool) {
	const window = 4096
	var free []netip.Addr
	for _, p := range pools {
		for a := p.Start; a.IsValid() && a.Compare(p.End) <= 0 && len(free) < window; a = a.Next() {
			if !used[a] && a != skip {
				free = append(free, a)
			}
		}
	}
	if len(free) == 0 {
		return netip.Addr{}, false
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return free[binary.BigEndian.Uint64(b[:])%uint64(len(free))], true
}
