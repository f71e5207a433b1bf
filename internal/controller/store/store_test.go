package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestOpenErrors(t *testing.T) {
	dead := fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{Log: quiet()}, "no etcd data directory"},
		{"external cluster down", Config{Endpoints: []string{dead}, StartTimeout: 2 * time.Second, Log: quiet()}, "does not answer"},
	} {
		_, err := Open(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestEmbeddedPersistsAndServesOthers(t *testing.T) {
	dir := t.TempDir()
	cp, pp := testenv.FreePort(t), testenv.FreePort(t)
	for pp == cp {
		pp = testenv.FreePort(t)
	}
	cfg := Config{DataDir: dir, Log: quiet(),
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cp),
		PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", pp)}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Client.Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	// A second client on the embedded server's URL, as another controller.
	other, err := Open(ctx, Config{Endpoints: []string{s.ClientURL()}, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := other.Client.Get(ctx, "k"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
		t.Fatalf("external read: %v %v", r, err)
	}
	other.Close()
	s.Close()

	s, err = Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.Client.Get(ctx, "k"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v1" {
		t.Fatalf("read after restart: %v %v", r, err)
	}
}
