package lg

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LogRecord is one buffered log record as the looking glass shows it
// (upstream LookingGlassLogHandler).
type LogRecord struct {
	Level   string `json:"level"`   // WARNING, ERROR, CRITICAL
	Time    string `json:"time"`    // "2006-01-02 15:04:05,000", local time
	Name    string `json:"name"`    // the record's "component" attribute
	Message string `json:"message"` // message and attributes, '"' → "'"
}

// LogBuffer keeps the last n records at WARNING or above, for the
// looking-glass "logs" objects (reference §2.6) and the summary's
// warnings_and_errors count. It is an slog.Handler on its own, and Tee
// makes a handler that feeds both it and another handler, so a daemon can
// tee its logger into it. Safe for concurrent use.
type LogBuffer struct {
	mu   sync.Mutex
	recs []LogRecord // ring, oldest at start when full
	next int         // index of the next write once full
	full bool
	max  int
}

// NewLogBuffer returns a buffer of the last n WARNING+ records (upstream
// uses 100); n < 1 is taken as 1.
func NewLogBuffer(n int) *LogBuffer {
	if n < 1 {
		n = 1
	}
	return &LogBuffer{max: n, recs: make([]LogRecord, 0, n)}
}

func (b *LogBuffer) add(r LogRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.full {
		b.recs = append(b.recs, r)
		if len(b.recs) == b.max {
			b.full = true
		}
		return
	}
	b.recs[b.next] = r
	b.next = (b.next + 1) % b.max
}

// Records returns the buffered records, newest first.
func (b *LogBuffer) Records() []LogRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]LogRecord, 0, len(b.recs))
	n := len(b.recs)
	start := 0 // position of the newest record + 1, ring-wise
	if b.full {
		start = b.next
	} else {
		start = n
	}
	for i := 0; i < n; i++ {
		out = append(out, b.recs[((start-1-i)%n+n)%n])
	}
	return out
}

// Len is the number of buffered records.
func (b *LogBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.recs)
}

// Reset forgets every buffered record.
func (b *LogBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recs, b.next, b.full = b.recs[:0], 0, false
}

// Entry is the looking-glass "logs" subtree: the records, newest first.
func (b *LogBuffer) Entry() Entry {
	return SubtreeEntry(func(context.Context, Ref) (any, error) { return b.Records(), nil })
}

// Enabled implements slog.Handler: WARNING and above.
func (b *LogBuffer) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

// Handle implements slog.Handler.
func (b *LogBuffer) Handle(ctx context.Context, r slog.Record) error {
	return (&bufHandler{buf: b}).Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (b *LogBuffer) WithAttrs(as []slog.Attr) slog.Handler {
	return (&bufHandler{buf: b}).WithAttrs(as)
}

// WithGroup implements slog.Handler.
func (b *LogBuffer) WithGroup(name string) slog.Handler {
	return (&bufHandler{buf: b}).WithGroup(name)
}

// Tee returns a handler that passes every record to next and records the
// WARNING+ ones in b.
func (b *LogBuffer) Tee(next slog.Handler) slog.Handler {
	return &teeHandler{buf: &bufHandler{buf: b}, next: next}
}

// bufHandler is the LogBuffer handler with accumulated attributes.
type bufHandler struct {
	buf    *LogBuffer
	attrs  []slog.Attr // pre-set attributes, group-qualified keys
	groups string      // "a.b." prefix for keys
}

func (h *bufHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *bufHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	var name string
	var msg strings.Builder
	msg.WriteString(r.Message)
	var add func(key string, v slog.Value)
	add = func(key string, v slog.Value) {
		v = v.Resolve()
		if key == "component" && name == "" {
			name = v.String()
			return
		}
		if v.Kind() == slog.KindGroup {
			for _, a := range v.Group() {
				add(key+"."+a.Key, a.Value)
			}
			return
		}
		msg.WriteByte(' ')
		msg.WriteString(key)
		msg.WriteByte('=')
		s := v.String()
		if strings.ContainsAny(s, " =\"") {
			s = strconv.Quote(s)
		}
		msg.WriteString(s)
	}
	for _, a := range h.attrs {
		add(a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		add(h.groups+a.Key, a.Value)
		return true
	})
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.buf.add(LogRecord{
		Level:   levelName(r.Level),
		Time:    formatTime(t),
		Name:    name,
		Message: strings.ReplaceAll(msg.String(), `"`, "'"),
	})
	return nil
}

func (h *bufHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &bufHandler{buf: h.buf, groups: h.groups, attrs: make([]slog.Attr, len(h.attrs), len(h.attrs)+len(as))}
	copy(n.attrs, h.attrs)
	for _, a := range as {
		n.attrs = append(n.attrs, slog.Attr{Key: h.groups + a.Key, Value: a.Value})
	}
	return n
}

func (h *bufHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &bufHandler{buf: h.buf, attrs: h.attrs, groups: h.groups + name + "."}
}

// teeHandler feeds a bufHandler and another handler.
type teeHandler struct {
	buf  *bufHandler
	next slog.Handler
}

func (t *teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || t.next.Enabled(ctx, l)
}

func (t *teeHandler) Handle(ctx context.Context, r slog.Record) error {
	_ = t.buf.Handle(ctx, r)
	if t.next.Enabled(ctx, r.Level) {
		return t.next.Handle(ctx, r)
	}
	return nil
}

func (t *teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &teeHandler{buf: t.buf.WithAttrs(as).(*bufHandler), next: t.next.WithAttrs(as)}
}

func (t *teeHandler) WithGroup(name string) slog.Handler {
	return &teeHandler{buf: t.buf.WithGroup(name).(*bufHandler), next: t.next.WithGroup(name)}
}

// levelName is the Python logging level name for an slog level.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError+4:
		return "CRITICAL"
	case l >= slog.LevelError:
		return "ERROR"
	default:
		return "WARNING"
	}
}

// formatTime is Python logging's default asctime: "2006-01-02 15:04:05,000".
func formatTime(t time.Time) string {
	return t.Format("2006-01-02 15:04:05") + fmt.Sprintf(",%03d", t.Nanosecond()/int(time.Millisecond))
}
