package route

import (
	"bytes"
	"runtime"
	"testing"
)

var sink *Route

func TestNewWithKey(t *testing.T) {
	for _, n := range []int{0, 2, 13, 24, 25, 36, 40, 41, 200} {
		key := bytes.Repeat([]byte{0xab}, n)
		if n > 0 {
			key[0], key[n-1] = 0x02, 0x7f // type 2 … last byte
		}
		r := NewWithKey(key)
		if r.Key != string(key) || r.Family != 0 || r.Label != 0 || r.Extra != "" || r.Attrs != nil || r.Source != nil {
			t.Fatalf("%d-byte key: route %+v", n, r)
		}
		// The key is a copy: the caller's buffer is reused by decoders.
		for i := range key {
			key[i] = 0
		}
		if n > 0 && (r.Key[0] != 0x02 || r.Key[n-1] != 0x7f) {
			t.Fatalf("%d-byte key changed with the caller's buffer: % x", n, r.Key)
		}
		want := 2.0 // Route and string
		if n == 0 || n <= 40 {
			want = 1
		}
		if got := testing.AllocsPerRun(100, func() { sink = NewWithKey(key) }); got != want {
			t.Errorf("%d-byte key: %v allocations, want %v", n, got, want)
		}
	}
}

// TestNewWithKeyHeap: 100,000 routes with 24-byte keys (E-VPN MAC/IPv4)
// cost 80 bytes each on the heap (one 80-byte object), not 64 + 24 = 88.
func TestNewWithKeyHeap(t *testing.T) {
	const n = 100_000
	key := make([]byte, 24)
	keep := make([]*Route, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		key[23] = byte(i)
		keep[i] = NewWithKey(key)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	if per > 82 {
		t.Fatalf("%.1f heap bytes per route with a 24-byte key, want ≤ 80 (plus noise)", per)
	}
	runtime.KeepAlive(keep)
}
