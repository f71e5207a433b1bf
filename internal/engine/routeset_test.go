package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// checkSet compares the set with the model and checks its invariants.
func checkSet(t *testing.T, step string, s *routeSet, model map[*route.Route]bool) {
	t.Helper()
	if s.Len() != len(model) {
		t.Fatalf("%s: Len = %d, want %d", step, s.Len(), len(model))
	}
	seen := map[*route.Route]bool{}
	for r := range s.all() {
		if !model[r] || seen[r] {
			t.Fatalf("%s: all() yields %v (in model %v, seen %v)", step, r.Key, model[r], seen[r])
		}
		seen[r] = true
	}
	if len(seen) != len(model) {
		t.Fatalf("%s: all() yields %d routes, want %d", step, len(seen), len(model))
	}
	if slots := s.slotCount(); slots > 0 {
		if (s.n+s.dead)*16 > slots*13 {
			t.Fatalf("%s: load %d+%d of %d slots over 13/16", step, s.n, s.dead, slots)
		}
		if slots > 8 && s.n*16 < slots {
			t.Fatalf("%s: %d routes in %d slots: not shrunk", step, s.n, slots)
		}
	}
}

// TestRouteSetKeyed drives a keyed set (one source) with random
// put/deleteKey against a map model, through growth and shrinking.
func TestRouteSetKeyed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := &route.Source{Name: "BGP-1", Peer: true, ID: 1}
	var s routeSet
	model := map[string]*route.Route{}
	asSet := func() map[*route.Route]bool {
		m := map[*route.Route]bool{}
		for _, r := range model {
			m[r] = true
		}
		return m
	}
	const keys = 3000
	for round, phase := range []struct{ ops, putPct int }{{20000, 80}, {20000, 50}, {30000, 10}, {5000, 90}} {
		for op := range phase.ops {
			k := fmt.Sprintf("k%d", rng.IntN(keys))
			if rng.IntN(100) < phase.putPct {
				r := &route.Route{Family: route.FamilyEVPN, Key: k, Source: src}
				if old := s.put(r); old != model[k] {
					t.Fatalf("round %d op %d: put(%s) returned %p, want %p", round, op, k, old, model[k])
				}
				model[k] = r
			} else {
				if got := s.deleteKey(k); got != model[k] {
					t.Fatalf("round %d op %d: deleteKey(%s) = %p, want %p", round, op, k, got, model[k])
				}
				delete(model, k)
			}
			if got := s.get(k); got != model[k] {
				t.Fatalf("round %d op %d: get(%s) = %p, want %p", round, op, k, got, model[k])
			}
		}
		checkSet(t, fmt.Sprintf("round %d", round), &s, asSet())
		for k, r := range model {
			if s.get(k) != r {
				t.Fatalf("round %d: get(%s) lost its route", round, k)
			}
		}
	}
	for k := range model {
		s.deleteKey(k)
	}
	if s.Len() != 0 || s.groups != nil {
		t.Errorf("emptied set keeps %d routes, %d groups", s.Len(), len(s.groups))
	}
}

// TestRouteSetIdentity checks identity use: routes sharing a Key (from
// different sources) are distinct members.
func TestRouteSetIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	srcs := []*route.Source{{Name: "BGP-1", ID: 1}, {Name: "BGP-2", ID: 2}, {Name: "EVI-1", ID: 3}}
	var pool []*route.Route
	for i := range 2000 {
		for _, src := range srcs {
			pool = append(pool, &route.Route{Family: route.FamilyEVPN, Key: fmt.Sprintf("k%d", i), Source: src})
		}
	}
	var s routeSet
	model := map[*route.Route]bool{}
	for op := range 60000 {
		r := pool[rng.IntN(len(pool))]
		addPct := 70
		if op > 40000 {
			addPct = 20
		}
		if rng.IntN(100) < addPct {
			s.add(r)
			model[r] = true
		} else {
			s.remove(r)
			delete(model, r)
		}
		if op%5000 == 0 {
			checkSet(t, fmt.Sprintf("op %d", op), &s, model)
		}
	}
	checkSet(t, "end", &s, model)
	// Adding twice keeps one copy.
	r := pool[0]
	s.add(r)
	s.add(r)
	model[r] = true
	checkSet(t, "double add", &s, model)
}
