package lg

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestLogBufferOrderAndCap(t *testing.T) {
	b := NewLogBuffer(3)
	l := slog.New(b).With("component", "vpn")
	l.Info("ignored: below WARNING")
	l.Debug("ignored too")
	for i := 1; i <= 5; i++ {
		l.Warn(fmt.Sprintf("w%d", i))
	}
	got := b.Records()
	if len(got) != 3 || b.Len() != 3 {
		t.Fatalf("%d records (Len %d), want 3", len(got), b.Len())
	}
	for i, want := range []string{"w5", "w4", "w3"} {
		if got[i].Message != want || got[i].Name != "vpn" || got[i].Level != "WARNING" {
			t.Errorf("record %d = %+v, want message %s, name vpn, WARNING", i, got[i], want)
		}
	}
	// Fewer records than the cap: still newest first.
	b2 := NewLogBuffer(100)
	l2 := slog.New(b2)
	l2.Error("first")
	l2.Warn("second")
	r := b2.Records()
	if len(r) != 2 || r[0].Message != "second" || r[1].Message != "first" || r[1].Level != "ERROR" {
		t.Errorf("records %+v", r)
	}
	b2.Reset()
	if b2.Len() != 0 {
		t.Errorf("Len after Reset %d", b2.Len())
	}
	l2.Warn("again")
	if r := b2.Records(); len(r) != 1 || r[0].Message != "again" {
		t.Errorf("after Reset: %+v", r)
	}
}

func TestLogBufferRecordFormat(t *testing.T) {
	b := NewLogBuffer(10)
	l := slog.New(b).With("component", "api").WithGroup("req")
	l.Log(context.Background(), slog.LevelError+4, `bad "thing"`, "id", "a b", "n", 3)
	r := b.Records()
	if len(r) != 1 {
		t.Fatalf("%d records", len(r))
	}
	want := LogRecord{Level: "CRITICAL", Name: "api", Message: `bad 'thing' req.id='a b' req.n=3`}
	got := r[0]
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$`).MatchString(got.Time) {
		t.Errorf("time %q is not Python's asctime format", got.Time)
	}
	got.Time = ""
	if got != want {
		t.Errorf("record %+v, want %+v", got, want)
	}
	js, _ := json.Marshal(r[0])
	for _, k := range []string{`"level"`, `"time"`, `"name"`, `"message"`} {
		if !bytes.Contains(js, []byte(k)) {
			t.Errorf("JSON %s lacks %s", js, k)
		}
	}
}

func TestLogBufferTee(t *testing.T) {
	b := NewLogBuffer(10)
	var out bytes.Buffer
	next := slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	l := slog.New(b.Tee(next)).With("component", "engine")
	l.Debug("dbg")
	l.Warn("wrn", "k", "v")
	if !strings.Contains(out.String(), "msg=dbg") || !strings.Contains(out.String(), "msg=wrn") {
		t.Errorf("next handler output %q lacks records", out.String())
	}
	r := b.Records()
	if len(r) != 1 || r[0].Message != "wrn k=v" || r[0].Name != "engine" {
		t.Errorf("buffer %+v", r)
	}
}

func TestLogBufferConcurrent(t *testing.T) {
	b := NewLogBuffer(50)
	l := slog.New(b)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				l.Warn("x")
				_ = b.Records()
			}
		}()
	}
	wg.Wait()
	if b.Len() != 50 {
		t.Errorf("Len %d, want 50", b.Len())
	}
}

// TestLogsEntry: the buffer as a looking-glass subtree.
func TestLogsEntry(t *testing.T) {
	b := NewLogBuffer(100)
	l := slog.New(b).With("component", "bgp")
	l.Warn("one")
	l.Warn("two")
	tr := NewTree(&Object{Map: map[string]Entry{"logs": b.Entry()}})
	code, _, body := get(t, tr, "/looking-glass/logs", "h")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	var recs []LogRecord
	if err := json.Unmarshal([]byte(body), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Message != "two" || recs[1].Message != "one" {
		t.Errorf("logs %s", body)
	}
	if code, _, body := get(t, tr, "/looking-glass/logs/0/message", "h"); code != 200 || body != `"two"` {
		t.Errorf("logs/0/message: %d %s", code, body)
	}
	if code, _, body := get(t, tr, "/looking-glass", "h"); code != 200 || body != `{"logs":{"href":"http://h/looking-glass/logs"}}` {
		t.Errorf("root: %d %s", code, body)
	}
}
