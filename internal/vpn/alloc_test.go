package vpn

import (
	"errors"
	"math"
	"testing"
)

func mustAlloc(t *testing.T, a *idAllocator) uint32 {
	t.Helper()
	id, err := a.allocate()
	if err != nil {
		t.Fatalf("allocate: %v", err)
	}
	return id
}

func TestAllocatorIncreasingThenLateReuseOldestFirst(t *testing.T) {
	a := newIDAllocator("test", 10, 14)
	var got []uint32
	for range 3 {
		got = append(got, mustAlloc(t, a)) // 10 11 12
	}
	// Release 11 then 10: not reused while 13 and 14 were never used.
	for _, id := range []uint32{11, 10} {
		if err := a.release(id); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		got = append(got, mustAlloc(t, a)) // 13 14, then 11 (released first), 10
	}
	want := []uint32{10, 11, 12, 13, 14, 11, 10}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("allocation order %v, want %v", got, want)
		}
	}
	if _, err := a.allocate(); !errors.Is(err, errExhausted) {
		t.Fatalf("allocate on a full range: err = %v, want exhaustion", err)
	}
}

func TestAllocatorUniqueness(t *testing.T) {
	a := newIDAllocator("rd", 0, MaxRDNumber)
	seen := map[uint32]bool{}
	for i := 0; i <= MaxRDNumber; i++ {
		id := mustAlloc(t, a)
		if seen[id] || id > MaxRDNumber {
			t.Fatalf("allocation %d gave %d twice or out of range", i, id)
		}
		seen[id] = true
	}
	if _, err := a.allocate(); err == nil {
		t.Fatal("65537th RD allocation succeeded")
	}
	// Free a few, reallocate: only those come back, oldest released first.
	for _, id := range []uint32{500, 7, 65535} {
		if err := a.release(id); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []uint32{500, 7, 65535} {
		if got := mustAlloc(t, a); got != want {
			t.Fatalf("reuse gave %d, want %d", got, want)
		}
	}
}

func TestAllocatorReleaseErrors(t *testing.T) {
	a := newIDAllocator("label", MinLabel, MaxLabel)
	id := mustAlloc(t, a)
	if id != MinLabel {
		t.Fatalf("first label %d, want %d", id, MinLabel)
	}
	tests := []struct {
		name string
		id   uint32
	}{
		{"never allocated", 17},
		{"below range", 3},
		{"above range", MaxLabel + 1},
	}
	for _, tc := range tests {
		if err := a.release(tc.id); err == nil {
			t.Errorf("%s: release(%d) succeeded", tc.name, tc.id)
		}
	}
	if err := a.release(id); err != nil {
		t.Fatal(err)
	}
	if err := a.release(id); err == nil {
		t.Error("double release succeeded")
	}
}

func TestAllocatorRequestedIDSkippedLater(t *testing.T) {
	a := newIDAllocator("label", 16, 20)
	if !a.allocateID(17) {
		t.Fatal("free id 17 not granted")
	}
	if a.allocateID(17) {
		t.Fatal("id 17 granted twice")
	}
	if a.allocateID(21) {
		t.Fatal("out-of-range id granted")
	}
	for _, want := range []uint32{16, 18, 19, 20} {
		if got := mustAlloc(t, a); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	}
	// Stale FIFO entry: 18 released, re-taken by request, must not be
	// handed out again from the queue.
	if err := a.release(18); err != nil {
		t.Fatal(err)
	}
	if !a.allocateID(18) {
		t.Fatal("released 18 not granted on request")
	}
	if _, err := a.allocate(); err == nil {
		t.Fatal("allocation succeeded although every id is in use")
	}
}

func TestForcedVNIClashBothOrders(t *testing.T) {
	t.Run("allocated then forced", func(t *testing.T) {
		a := newAllocs()
		l, err := a.takeVNI(0, "a")
		if err != nil || l.vni != MinLabel {
			t.Fatalf("allocated VNI %d, %v", l.vni, err)
		}
		_, err = a.takeVNI(MinLabel, "b")
		var ve *Error
		if !errors.As(err, &ve) || ve.Status != 400 || ve.Msg != "A VPN instance using vni 16 already exists." {
			t.Fatalf("forced clash error = %v", err)
		}
	})
	t.Run("forced then allocated", func(t *testing.T) {
		a := newAllocs()
		f, err := a.takeVNI(17, "a")
		if err != nil || !f.forced || !f.inAlloc {
			t.Fatalf("forced lease %+v, %v", f, err)
		}
		for _, want := range []uint32{16, 18} {
			l, err := a.takeVNI(0, "x")
			if err != nil || l.vni != want {
				t.Fatalf("allocated %d (%v), want %d", l.vni, err, want)
			}
		}
		// A forced VNI above the label range lives in the registry only.
		big, err := a.takeVNI(5000000, "big")
		if err != nil || big.inAlloc {
			t.Fatalf("forced big VNI lease %+v, %v", big, err)
		}
		if _, err := a.takeVNI(5000000, "again"); err == nil {
			t.Fatal("second instance got forced VNI 5000000")
		}
		if err := a.releaseVNI(big); err != nil {
			t.Fatal(err)
		}
		if _, err := a.takeVNI(5000000, "again"); err != nil {
			t.Fatalf("VNI 5000000 not reusable after release: %v", err)
		}
		if err := a.releaseVNI(f); err != nil {
			t.Fatal(err)
		}
		if _, err := a.takeVNI(17, "b"); err != nil {
			t.Fatalf("VNI 17 not reusable after release: %v", err)
		}
	})
	t.Run("out of range", func(t *testing.T) {
		if _, err := newAllocs().takeVNI(MaxVNI+1, "a"); err == nil {
			t.Fatal("VNI 2^24 accepted")
		}
	})
}

func TestInstanceIDs(t *testing.T) {
	a := newAllocs()
	for want := uint32(1); want <= 3; want++ {
		if id, err := a.instanceID(); err != nil || id != want {
			t.Fatalf("instance id %d (%v), want %d", id, err, want)
		}
	}
	a.lastInst = math.MaxUint32 - 1
	if id, err := a.instanceID(); err != nil || id != math.MaxUint32 {
		t.Fatalf("last instance id %d (%v)", id, err)
	}
	if _, err := a.instanceID(); !errors.Is(err, errExhausted) {
		t.Fatalf("instance id past 2^32-1: err = %v", err)
	}
}
