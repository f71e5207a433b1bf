package cli

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadAPIPort: only [API] port is read; the rest of the file may be
// anything an oslo.config file holds.
func TestReadAPIPort(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, text string
		want       int
		wantErr    string
	}{
		{"upstream file", "[BGP]\nlocal_address = 10.0.0.1\npeers = 10.0.0.2,10.0.0.3\n\n[API]\nhost = 127.0.0.1\nport = 18082\n", 18082, ""},
		{"case-insensitive names, comments", "# comment\n[api]\n; other comment\nPORT=8123\n", 8123, ""},
		{"no port", "[API]\nhost = 0.0.0.0\n", DefaultAPIPort, ""},
		{"no API section", "[BGP]\nmy_as = 64512\n", DefaultAPIPort, ""},
		{"empty file", "", DefaultAPIPort, ""},
		{"junk around", "not ini at all\n[API]\nport = 9000\n[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = ovs\n", 9000, ""},
		{"not a number", "[API]\nport = http\n", 0, "not a TCP port number"},
		{"out of range", "[API]\nport = 70000\n", 0, "not a TCP port number"},
	}
	for i, tt := range tests {
		path := filepath.Join(dir, strings.Repeat("c", i+1)+".conf")
		if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadAPIPort(path, true)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: got %d, %v; want error %q", tt.name, got, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("%s: got %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
	missing := filepath.Join(dir, "missing.conf")
	if got, err := ReadAPIPort(missing, false); err != nil || got != DefaultAPIPort {
		t.Errorf("missing default file: got %d, %v; want %d", got, err, DefaultAPIPort)
	}
	if _, err := ReadAPIPort(missing, true); err == nil {
		t.Error("missing explicit file: no error")
	}
}

// TestAttachAPIPort: --api-port / --port-api win over the file, which is
// read only when present unless named explicitly.
func TestAttachAPIPort(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "bgp.conf")
	if err := os.WriteFile(conf, []byte("[API]\nport = 7777\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    string
		want    int
		wantErr bool
	}{
		{"--config-file " + conf, 7777, false},
		{"--config-file " + conf + " --api-port 1234", 1234, false},
		{"--port-api 4321", 4321, false},
		{"--config-file " + conf + ".missing", 0, true},
	}
	for _, tt := range tests {
		o, err := ParseAttachArgs(strings.Fields(tt.args), io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		err = o.ResolveAPIPort()
		if (err != nil) != tt.wantErr || (err == nil && o.APIPort != tt.want) {
			t.Errorf("%s: port %d, error %v; want %d (error %v)", tt.args, o.APIPort, err, tt.want, tt.wantErr)
		}
	}
}

// TestParseInterspersed: optparse-style mixing of options and arguments.
func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    string
		pos     string
		recurse bool
	}{
		{"a b", "a b", false},
		{"-r a b", "a b", true},
		{"a -r b", "a b", true},
		{"a b --r", "a b", true},
		{"a -- -r b", "a -r b", false},
		{"-- a", "a", false},
		{"", "", false},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		r := fs.Bool("r", false, "")
		pos, err := parseInterspersed(fs, strings.Fields(tt.args))
		if err != nil || strings.Join(pos, " ") != tt.pos || *r != tt.recurse {
			t.Errorf("%q: positional %q, -r %v, error %v; want %q, %v", tt.args, pos, *r, err, tt.pos, tt.recurse)
		}
	}
}

// TestFlagErrorsAndHelp: like optparse, --help goes to stdout, an option
// error prints the short usage and "<prog>: error: ..." on stderr.
func TestFlagErrorsAndHelp(t *testing.T) {
	var out, errOut strings.Builder
	if _, err := ParseAttachArgs([]string{"--help"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if !strings.Contains(out.String(), "Differences from upstream") || !strings.Contains(out.String(), "-network-type") || errOut.Len() != 0 {
		t.Errorf("--help: stdout %q stderr %q", out.String(), errOut.String())
	}
	out.Reset()
	if _, err := ParseAttachArgs([]string{"--bogus"}, &out, &errOut); err == nil {
		t.Error("--bogus accepted")
	}
	if out.Len() != 0 || !strings.HasPrefix(errOut.String(), "Usage: bagpipe-rest-attach [--attach|--detach]") ||
		!strings.HasSuffix(errOut.String(), "\n\nbagpipe-rest-attach: error: flag provided but not defined: -bogus\n") {
		t.Errorf("--bogus: stdout %q stderr %q", out.String(), errOut.String())
	}
	errOut.Reset()
	if _, err := ParseLGArgs([]string{"--port", "x"}, &out, &errOut); err == nil || !strings.Contains(errOut.String(), "bagpipe-looking-glass: error: invalid value \"x\" for flag -port") {
		t.Errorf("--port x: %v, stderr %q", err, errOut.String())
	}
}
