package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// startController runs a bagpipe-controller process with an embedded etcd
// in a temporary directory and returns its URL. Extra args are added.
func startController(t *testing.T, extra ...string) string {
	t.Helper()
	bin := testenv.BuildBinaries(t)
	api, client, peer := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	u := fmt.Sprintf("http://127.0.0.1:%d", api)
	args := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", api), "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", peer)}, extra...)
	p := testenv.StartProcess(t, filepath.Join(bin, "bagpipe-controller"), args, nil)
	testenv.WaitFor(t, 90*time.Second, "bagpipe-controller API up", func() (bool, error) {
		if p.Exited() {
			t.Fatalf("bagpipe-controller exited:\n%s", p.Log())
		}
		_, err := ctlclient.New(u, "").List(context.Background(), "network", nil)
		return err == nil || ctlclient.IsStatus(err, 401), err
	})
	return u
}

// bagpipe runs the CLI in-process against ctl and returns its outputs and
// exit status.
func bagpipe(ctl string, args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(append([]string{"--controller", ctl}, args...), &o, &e)
	return o.String(), e.String(), code
}

// mustRun runs the CLI and fails unless it succeeds.
func mustRun(t *testing.T, ctl string, args ...string) string {
	t.Helper()
	o, e, code := bagpipe(ctl, args...)
	if code != 0 {
		t.Fatalf("bagpipe %q: exit %d: %s", args, code, e)
	}
	return o
}

// timestamps are masked in golden output.
var timestamps = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)

func golden(t *testing.T, name, got string) {
	t.Helper()
	got = timestamps.ReplaceAllString(got, "<time>")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

const (
	net1   = "11111111-1111-4111-8111-111111111111"
	net2   = "22222222-2222-4222-8222-222222222222"
	sub1   = "33333333-3333-4333-8333-333333333333"
	port1  = "44444444-4444-4444-8444-444444444444"
	port2  = "55555555-5555-4555-8555-555555555555"
	dupNet = "66666666-6666-4666-8666-666666666666"
)

// TestCLI checks tables (golden files), --json and error messages against
// a real controller.
func TestCLI(t *testing.T) {
	ctl := startController(t)
	// Fixed ids (through the API: the CLI does not set ids) make the
	// output reproducible.
	c := ctlclient.New(ctl, "")
	ctx := context.Background()
	for _, r := range []struct {
		kind  string
		attrs map[string]any
	}{
		{"network", map[string]any{"id": net1, "name": "blue", "provider:segmentation_id": 1001}},
		{"network", map[string]any{"id": net2, "name": "red", "provider:segmentation_id": 1002, "admin_state_up": false}},
		{"subnet", map[string]any{"id": sub1, "network_id": net1, "cidr": "10.0.0.0/24", "name": "blue-v4"}},
		{"port", map[string]any{"id": port1, "network_id": net1, "name": "vm1", "mac_address": "fa:16:3e:00:00:01",
			"fixed_ips": []any{map[string]any{"ip_address": "10.0.0.11"}}, "binding:host_id": "compute1"}},
	} {
		if _, err := c.Create(ctx, r.kind, r.attrs); err != nil {
			t.Fatalf("create %s: %v", r.kind, err)
		}
	}
	// The CLI's own creations (random ids are masked by checking fields).
	out := mustRun(t, ctl, "port", "create", "--network", "blue", "--name", "vm2", "--mac", "fa:16:3e:00:00:02",
		"--ip", "10.0.0.12", "--host", "compute2", "--device-owner", "compute:nova")
	for _, want := range []string{`name\s+vm2`, `binding:host_id\s+compute2`,
		`device_owner\s+compute:nova`, `fixed_ips\s+10\.0\.0\.12 \(subnet ` + sub1 + `\)`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(out) {
			t.Errorf("port create output lacks %q:\n%s", want, out)
		}
	}
	mustRun(t, ctl, "port", "update", "vm2", "--admin-state-up=false")

	golden(t, "network-list", mustRun(t, ctl, "network", "list"))
	golden(t, "subnet-list", mustRun(t, ctl, "subnet", "list", "--network", "blue"))
	golden(t, "port-list-host", mustRun(t, ctl, "port", "list", "--host", "compute1"))
	golden(t, "network-show", mustRun(t, ctl, "network", "show", "blue"))
	golden(t, "port-show", mustRun(t, ctl, "port", "show", port1))
	if got := mustRun(t, ctl, "port", "list", "--network", net1); !regexp.MustCompile(`(?m)^[0-9a-f-]{36}  vm2   ` + net1 +
		`  fa:16:3e:00:00:02  10\.0\.0\.12     compute2  DOWN   DOWN\s*$`).MatchString(got) {
		t.Errorf("port list lacks vm2 (admin down):\n%s", got)
	}

	t.Run("json", func(t *testing.T) {
		var nets []map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, ctl, "--json", "network", "list")), &nets); err != nil {
			t.Fatal(err)
		}
		if len(nets) != 2 || nets[0]["id"] == nets[1]["id"] {
			t.Fatalf("--json network list: %v", nets)
		}
		var n map[string]any
		// --json is accepted after the action too.
		if err := json.Unmarshal([]byte(mustRun(t, ctl, "network", "show", "red", "--json")), &n); err != nil {
			t.Fatal(err)
		}
		if n["id"] != net2 || n["provider:segmentation_id"] != float64(1002) || n["admin_state_up"] != false {
			t.Errorf("--json network show red: %v", n)
		}
		var created map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, ctl, "--json", "network", "create", "green", "--vni", "1500")), &created); err != nil {
			t.Fatal(err)
		}
		if created["name"] != "green" || created["provider:segmentation_id"] != float64(1500) ||
			fmt.Sprint(created["route_targets"]) != "[64512:1500]" {
			t.Errorf("--json network create: %v", created)
		}
		if o := mustRun(t, ctl, "--json", "network", "delete", "green"); o != "" {
			t.Errorf("--json network delete printed %q", o)
		}
	})

	t.Run("errors", func(t *testing.T) {
		mustRun(t, ctl, "network", "create", "blue") // a second "blue"
		for _, tc := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"network", "show", "nosuch"}, 1, `bagpipe: no network has the id or name "nosuch" (see bagpipe network list)`},
			{[]string{"network", "show", dupNet}, 1, "bagpipe: Network " + dupNet + " could not be found.\n"},
			{[]string{"network", "show", "blue"}, 1, `bagpipe: 2 networks are named "blue" (`},
			{[]string{"network", "create", "x", "--vni", "1001"}, 1, "bagpipe: "},
			{[]string{"subnet", "create", "--network", "red", "--cidr", "10.1.0.0/33"}, 1, "bagpipe: Invalid input for cidr."},
			{[]string{"port", "create", "--network", net1, "--ip", "10.9.9.9"}, 1, "bagpipe: "},
			{[]string{"network", "delete", net1}, 1, "bagpipe: "},
			{[]string{"subnet", "create", "--cidr", "10.1.0.0/24"}, 2, "bagpipe: subnet create: --network and --cidr are required (see bagpipe --help)\n"},
			{[]string{"port", "create", "--network", "red", "--netns", "vm"}, 2, "--netns needs --host"},
			{[]string{"network", "frob"}, 2, `unknown action "frob"`},
			{[]string{"router", "list"}, 2, `unknown resource "router"`},
			{[]string{"network", "update", "red"}, 2, "nothing to change"},
			{[]string{"network", "list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		} {
			o, e, code := bagpipe(ctl, tc.args...)
			if code != tc.code || !strings.Contains(e, tc.want) || o != "" {
				t.Errorf("bagpipe %q: exit %d, stdout %q, stderr %q; want exit %d and stderr containing %q",
					tc.args, code, o, e, tc.code, tc.want)
			}
		}
		// The controller's own messages, as it words them.
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"network", "create", "x", "--vni", "1001"}, "bagpipe: Unable to create the network. The tunnel ID 1001 is in use.\n"},
			{[]string{"port", "create", "--network", net1, "--ip", "10.9.9.9"},
				"bagpipe: IP address 10.9.9.9 is not a valid IP for any of the subnets on the specified network " + net1 + ".\n"},
			{[]string{"network", "delete", net1}, "bagpipe: Unable to complete operation on network " + net1 + ". There are one or more ports still in use"},
		} {
			_, e, _ := bagpipe(ctl, tc.args...)
			if !strings.HasPrefix(e, tc.want) {
				t.Errorf("bagpipe %q: stderr %q: want the controller's message %q", tc.args, e, tc.want)
			}
		}
	})
}

// TestCLIToken checks --token against a controller that requires one.
func TestCLIToken(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl := startController(t, "--auth-token-file", tok)
	t.Setenv("BAGPIPE_CONTROLLER_TOKEN", "")
	_, e, code := bagpipe(ctl, "network", "list")
	if code != 1 || !strings.HasPrefix(e, "bagpipe: missing or wrong token") {
		t.Errorf("without token: exit %d, %q", code, e)
	}
	if o := mustRun(t, ctl, "--token", "s3cret", "network", "list"); o != "ID  NAME  VNI  ROUTE TARGETS  SUBNETS  ADMIN  STATUS\n" {
		t.Errorf("with token: %q", o)
	}
}
