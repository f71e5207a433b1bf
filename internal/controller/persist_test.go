package controller

import (
	"bytes"
	"encoding/json"
	"fmt"

	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// state is what a controller shows: every resource, and a host's
// attachments (without revisions, which move).
func state(e *env) string {
	e.t.Helper()
	a := e.must(200, "GET", "/v1/hosts/h1/attachments", nil, "")
	delete(a, "revision")
	return fmt.Sprint(e.must(200, "GET", "/v2.0/networks", nil, ""), e.must(200, "GET", "/v2.0/subnets", nil, ""),
		e.must(200, "GET", "/v2.0/ports", nil, ""), a)
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	o := opts{dir: dir, vnis: "1:3"}
	e := startEnv(t, openStore(t, dir, ""), o)
	net := str(e.network(obj{"name": "n1"}), "id")
	e.subnet(net, "10.0.0.0/24", nil)
	p := e.port(net, obj{"binding:host_id": "h1"})
	e.network(obj{"name": "n2"})
	before := state(e)
	e.close()

	e = startEnv(t, openStore(t, dir, ""), o)
	defer e.close()
	if after := state(e); after != before {
		t.Fatalf("state after restart:\n%s\nbefore:\n%s", after, before)
	}
	// The allocations survived too: one VNI is left, the port's address
	// and MAC stay taken.
	e.network(obj{"name": "n3"})
	if r := e.do("POST", "/v2.0/networks", obj{"network": obj{}}); r.errType() != "NoNetworkAvailable" {
		t.Fatalf("fourth network on 3 VNIs: %s", r.raw)
	}
	if r := e.do("POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "mac_address": str(p, "mac_address")}}); r.errType() != "MacAddressInUse" {
		t.Fatalf("MAC reuse after restart: %s", r.raw)
	}
	if r := e.do("POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": fixedIP(p)}}}}); r.errType() != "IpAddressAlreadyAllocated" {
		t.Fatalf("IP reuse after restart: %s", r.raw)
	}
}

// buildController builds cmd/bagpipe-controller into a temporary
// directory.
func buildController(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bagpipe-controller")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/bagpipe-controller")
	cmd.Dir = testenv.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/bagpipe-controller: %v\n%s", err, out)
	}
	return bin
}

// startController runs the binary on dir and waits for its API.
func startController(t *testing.T, bin, dir string, extra ...string) (*testenv.Process, string) {
	t.Helper()
	ports := freePorts(t, 3)
	api := fmt.Sprintf("127.0.0.1:%d", ports[0])
	args := append([]string{"--listen", api, "--data-dir", dir,
		"--etcd-client-url", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--etcd-peer-url", fmt.Sprintf("http://127.0.0.1:%d", ports[2])}, extra...)
	p := testenv.StartProcess(t, bin, args, nil)
	base := "http://" + api
	testenv.WaitFor(t, 60*time.Second, "bagpipe-controller API", func() (bool, error) {
		if p.Exited() {
			t.Fatalf("bagpipe-controller exited: %s", p.Log())
		}
		r, err := httpGet(base + "/v2.0/networks")
		return err == nil && r == 200, err
	})
	return p, base
}

func TestSIGKILLLosesNoAcknowledgedWrite(t *testing.T) {
	bin := buildController(t)
	dir := t.TempDir()
	p, base := startController(t, bin, dir, "--vni-ranges", "10:19")
	must := func(method, path string, body any, key string) obj {
		t.Helper()
		r := do(t, base, method, path, body)
		if r.status/100 != 2 {
			t.Fatalf("%s %s: %d %s", method, path, r.status, r.raw)
		}
		o, _ := r.body[key].(obj)
		return o
	}
	net := str(must("POST", "/v2.0/networks", obj{"network": obj{"name": "n"}}, "network"), "id")
	must("POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net, "cidr": "10.0.0.0/24"}}, "subnet")
	var ports []string
	for i := range 20 {
		ports = append(ports, str(must("POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "name": fmt.Sprint(i), "binding:host_id": "h1"}}, "port"), "id"))
	}
	must("PUT", "/v2.0/ports/"+ports[0], obj{"port": obj{"admin_state_up": false}}, "port")
	must("DELETE", "/v2.0/ports/"+ports[1], nil, "")
	last := must("PUT", "/v1/ports/"+ports[2]+"/status", obj{"status": "ACTIVE"}, "port")

	// Writers keep creating ports on a second network while the process
	// is killed: every port whose creation was acknowledged must survive.
	net2 := str(must("POST", "/v2.0/networks", obj{"network": obj{"name": "busy"}}, "network"), "id")
	must("POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net2, "cidr": "10.1.0.0/16"}}, "subnet")
	var mu sync.Mutex
	var acked []string
	ackSignal := make(chan struct{}, 100000)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r, err := postJSON(base+"/v2.0/ports", obj{"port": obj{"network_id": net2, "binding:host_id": "h2"}})
				if err != nil {
					return // the controller is gone
				}
				if id, ok := r["port"].(obj)["id"].(string); ok {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					ackSignal <- struct{}{}
				}
			}
		}()
	}
	for range 40 { // kill in the middle of the stream of writes
		<-ackSignal
	}
	if err := syscall.Kill(p.PID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.Wait(30 * time.Second)
	wg.Wait()

	_, base = startController(t, bin, dir, "--vni-ranges", "10:19")
	l := do(t, base, "GET", "/v2.0/ports?fields=id&fields=name&network_id="+net, nil).body["ports"].([]any)
	if len(l) != 19 {
		t.Fatalf("%d ports after SIGKILL and restart, want 19", len(l))
	}
	if r := do(t, base, "GET", "/v2.0/ports/"+ports[1], nil); r.status != 404 {
		t.Fatalf("deleted port came back: %s", r.raw)
	}
	if got := do(t, base, "GET", "/v2.0/ports/"+ports[0], nil).body["port"].(obj); got["admin_state_up"] != false {
		t.Fatalf("port update lost: %v", got)
	}
	if got := do(t, base, "GET", "/v2.0/ports/"+ports[2], nil).body["port"].(obj); str(got, "status") != "ACTIVE" || num(got, "revision_number") != num(last, "revision_number") {
		t.Fatalf("status update lost: %v", got)
	}
	a := do(t, base, "GET", "/v1/hosts/h1/attachments", nil).body
	if n := len(a["ports"].([]any)); n != 18 {
		t.Fatalf("%d attachments on h1 after restart, want 18 (19 ports, one down)", n)
	}
	stored := map[string]bool{}
	ips := map[string]bool{}
	for _, x := range do(t, base, "GET", "/v2.0/ports?network_id="+net2, nil).body["ports"].([]any) {
		stored[str(x.(obj), "id")] = true
		if ip := fixedIP(x.(obj)); ips[ip] {
			t.Fatalf("address %s given twice", ip)
		} else {
			ips[ip] = true
		}
	}
	n := len(acked)
	if n < 40 {
		t.Fatalf("only %d acknowledged creations recorded", n)
	}
	for _, id := range acked {
		if !stored[id] {
			t.Fatalf("acknowledged port %s lost by SIGKILL", id)
		}
	}
	a = do(t, base, "GET", "/v1/hosts/h2/attachments", nil).body
	if len(a["ports"].([]any)) != len(stored) {
		t.Fatalf("%d attachments on h2 for %d ports", len(a["ports"].([]any)), len(stored))
	}
	t.Logf("%d acknowledged port creations before SIGKILL, %d ports stored", n, len(stored))
}

// postJSON posts body and decodes the answer; an error means no answer.
func postJSON(url string, body any) (obj, error) {
	js, _ := json.Marshal(body)
	r, err := httpClient.Post(url, "application/json", bytes.NewReader(js))
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	var out obj
	if err := json.NewDecoder(r.Body).Decode(&out); err != nil {
		return nil, err
	}
	if r.StatusCode != 201 {
		return obj{}, nil
	}
	return out, nil
}

func httpGet(url string) (int, error) {
	r, err := httpClient.Get(url)
	if err != nil {
		return 0, err
	}
	r.Body.Close()
	return r.StatusCode, nil
}
