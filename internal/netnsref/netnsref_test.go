package netnsref

import "testing"

func TestOpen(t *testing.T) {
	h, err := Open("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("path form: %v", err)
	}
	h.Close()
	if _, err := Open("bagpipe-no-such-namespace"); err == nil {
		t.Fatal("a missing named namespace opened without error")
	}
}
