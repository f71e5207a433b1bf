package dummy

import (
	"fmt"
	"slices"
	"sync"
)

// maxAnomalies is how many anomaly descriptions a driver keeps.
const maxAnomalies = 100

// entry is a recorded call type (Call, VRFCall): it names its method and
// can be stamped with its sequence number and returned error.
type entry[C any] interface {
	op() string
	stamped(seq uint64, err error) C
}

// callLog is what both dummy drivers record: a bounded, ordered call log,
// injected failures and anomaly descriptions. Its owner embeds it and
// guards its own state with the same mu; the exported methods lock mu.
type callLog[C entry[C]] struct {
	mu         sync.Mutex
	countOnly  bool // count calls, keep no log
	limit      int
	seq        uint64 // calls recorded so far
	calls      []C    // ring once full
	start      int
	fail       map[string][]error
	anomalies  []string
	nAnomalies int
}

func newCallLog[C entry[C]](limit int, countOnly bool) callLog[C] {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	return callLog[C]{countOnly: countOnly, limit: limit, fail: map[string][]error{}}
}

// record logs a call and returns the error to return (an injected one).
// Must be called with mu held.
func (l *callLog[C]) record(c C) error {
	var err error
	if errs := l.fail[c.op()]; len(errs) > 0 {
		err, l.fail[c.op()] = errs[0], errs[1:]
	}
	l.seq++
	if l.countOnly {
		return err
	}
	c = c.stamped(l.seq, err)
	if len(l.calls) < l.limit {
		l.calls = append(l.calls, c)
	} else {
		l.calls[l.start] = c
		l.start = (l.start + 1) % l.limit
	}
	return err
}

// anomaly describes a call that did not match the recorded state. Must
// be called with mu held.
func (l *callLog[C]) anomaly(format string, a ...any) {
	l.nAnomalies++
	if len(l.anomalies) >= maxAnomalies {
		l.anomalies = l.anomalies[1:]
	}
	l.anomalies = append(l.anomalies, fmt.Sprintf(format, a...))
}

// Calls returns the recorded calls, oldest first.
func (l *callLog[C]) Calls() []C {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]C, 0, len(l.calls))
	out = append(out, l.calls[l.start:]...)
	return append(out, l.calls[:l.start]...)
}

// Anomalies describes the calls that did not match the recorded state
// (adding what is already there, removing what is not; last 100).
func (l *callLog[C]) Anomalies() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.anomalies)
}

// FailNext makes the next call of op ("Plug", "Apply", "NewEVI", …)
// return err; several calls queue several failures.
func (l *callLog[C]) FailNext(op string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail[op] = append(l.fail[op], err)
}

func (c Call) op() string { return c.Op }

func (c Call) stamped(seq uint64, err error) Call {
	c.Seq, c.Err = seq, err
	return c
}

func (c VRFCall) op() string { return c.Op }

func (c VRFCall) stamped(seq uint64, err error) VRFCall {
	c.Seq, c.Err = seq, err
	return c
}
