package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestBadOptions checks that wrong options stop the agent with a message
// naming the option, before anything is started.
func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ping-interval", "0s"}, "--ping-interval 0s: want a positive duration"},
		{[]string{"--ping-interval", "ten"}, `invalid value "ten" for flag -ping-interval`},
		{[]string{"--controller", "127.0.0.1:9696"}, `--controller "127.0.0.1:9696": want an http:// or https:// URL`},
		{[]string{"--bagpipe-bgp", "localhost"}, `--bagpipe-bgp "localhost"`},
		{[]string{"--host", ""}, "--host is empty"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--token-file", "/nonexistent/token"}, "--token-file"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		err := run(context.Background(), tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp (exit 0)", err)
	}
}
