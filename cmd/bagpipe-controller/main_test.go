package main

import (
	"strings"
	"testing"
)

// TestBadOptions checks that wrong options stop the program with a message
// naming the option, before anything is started.
func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--as-number", "0"}, `--as-number "0": want an integer between 1 and 4294967295`},
		{[]string{"--as_number", "x"}, `--as-number "x"`},
		{[]string{"--vni-ranges", "0:5"}, "--vni-ranges: range \"0:5\": values must be between 1 and 16777215"},
		{[]string{"--vni_ranges", "1:16777216"}, "--vni-ranges: range \"1:16777216\""},
		{[]string{"--rt_nn_ranges", "100:119,110:120"}, "--rt-nn-ranges: range \"110:120\" overlaps 100:119"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--auth-token-file", "/nonexistent/token"}, "--auth-token-file"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
