package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConf(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bgp.conf")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestStartupErrors: a bad configuration stops the daemon at start with
// exit code 1 and ONE line naming the file, section, option, value and
// what is expected.
func TestStartupErrors(t *testing.T) {
	tests := []struct {
		name, conf string
		want       []string
	}{
		{"missing my_as", "[BGP]\nlocal_address = 127.0.0.1\n", []string{"[BGP] my_as", "missing", "expected an integer"}},
		{"malformed my_as", "[BGP]\nlocal_address = 127.0.0.1\nmy_as = abc\n", []string{"[BGP] my_as", `"abc"`, "integer"}},
		{"bad peer", "[BGP]\nlocal_address = 127.0.0.1\nmy_as = 64512\npeers = 1.2.3\n", []string{"[BGP] peers", "1.2.3"}},
		{"unknown driver", "[BGP]\nlocal_address = 127.0.0.1\nmy_as = 64512\n[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = foo\n",
			[]string{"[DATAPLANE_DRIVER_EVPN] dataplane_driver", `"foo"`, "dummy"}},
		{"unknown interface", "[BGP]\nlocal_address = nosuchif0\nmy_as = 64512\n", []string{"[BGP] local_address", "nosuchif0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConf(t, tc.conf)
			var stderr bytes.Buffer
			code := run([]string{"--config-file", p}, &stderr)
			out := strings.TrimRight(stderr.String(), "\n")
			if code != 1 {
				t.Fatalf("exit code %d, want 1; stderr: %s", code, out)
			}
			if strings.Count(out, "\n") != 0 {
				t.Fatalf("error is not one line:\n%s", out)
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(out, w) {
					t.Fatalf("error %q does not mention %q", out, w)
				}
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--config-file", "/nonexistent/bgp.conf"}, &stderr); code != 1 || !strings.Contains(stderr.String(), "--config-file") {
		t.Fatalf("code %d, stderr %q: want 1 and a hint about --config-file", code, stderr.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "loud"}, {"--log-format", "xml"}, {"start"}, {"--nope"}} {
		p := writeConf(t, "[BGP]\nlocal_address = 127.0.0.1\nmy_as = 64512\n")
		var stderr bytes.Buffer
		if code := run(append([]string{"--config-file", p}, args...), &stderr); code != 2 {
			t.Fatalf("%v: exit code %d, want 2 (usage error); stderr %q", args, code, stderr.String())
		}
	}
}

// TestHelpListsEveryOption: --help documents every bgp.conf option with its
// default.
func TestHelpListsEveryOption(t *testing.T) {
	r, w, _ := os.Pipe()
	old := os.Stdout
	os.Stdout = w
	code := run([]string{"--help"}, os.Stderr)
	w.Close()
	os.Stdout = old
	var buf bytes.Buffer
	buf.ReadFrom(r)
	out := buf.String()
	if code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, want := range []string{"[BGP]", "local_address", "my_as", "peers", "enable_rtc", "bgp_port", "passive",
		"[API]", "host", "port", "default: 8082", "[DATAPLANE_DRIVER_EVPN]", "dataplane_driver", "default: dummy",
		"dataplane_local_address", "--config-file", "--log-format"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
}
