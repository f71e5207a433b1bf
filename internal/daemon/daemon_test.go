package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/config"
)

// startDaemon runs a whole daemon in the test process (dummy dataplane, no
// BGP peer) and returns its REST base URL.
func startDaemon(t *testing.T, localAddr string) string {
	t.Helper()
	cfg, _, err := config.Parse("test.conf", []byte("[BGP]\nlocal_address = "+localAddr+"\nmy_as = 64512\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.RunWithListener(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon stopped with %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url string) (int, any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: not JSON: %s", url, b)
	}
	return resp.StatusCode, v
}

func mustGet(t *testing.T, url string) any {
	t.Helper()
	code, v := get(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d %v", url, code, v)
	}
	return v
}

func attach(t *testing.T, base, vpn, mac, ip, rt string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"vpn_type": "evpn", "vpn_instance_id": vpn, "mac_address": mac,
		"ip_address": ip, "local_port": "tap-" + vpn, "import_rt": rt, "export_rt": rt})
	resp, err := http.Post(base+"/attach_localport", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("attach: %d %s", resp.StatusCode, out)
	}
}

func field(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("at %q: %v is not an object", p, v)
		}
		if v, ok = m[p]; !ok {
			t.Fatalf("no %q in %v", p, m)
		}
	}
	return v
}

// TestLookingGlassTree: two E-VPN instances on one node sharing a route
// target exchange routes locally (no BGP peer), and the looking glass shows
// the upstream tree with live values.
func TestLookingGlassTree(t *testing.T) {
	base := startDaemon(t, "127.0.0.21")
	attach(t, base, "net1", "02:00:00:00:00:01", "10.0.0.1", "64512:7")
	attach(t, base, "net2", "02:00:00:00:00:02", "10.0.0.2", "64512:7")
	lg := base + "/looking-glass"

	root := mustGet(t, lg)
	for _, k := range []string{"summary", "config", "logs", "bgp", "vpns"} {
		if href := field(t, root, k, "href"); !strings.HasSuffix(href.(string), "/looking-glass/"+k) {
			t.Fatalf("root %s href = %v", k, href)
		}
	}
	sum := mustGet(t, lg+"/summary")
	if field(t, sum, "vpn_instances_count") != 2.0 || field(t, sum, "BGP_established_peers") != 0.0 {
		t.Fatalf("summary = %v", sum)
	}
	// Each instance originates a type-3 and a type-2 route.
	if field(t, sum, "route_counts", "local_routes_count") != 4.0 {
		t.Fatalf("local routes = %v", field(t, sum, "route_counts"))
	}
	if v := mustGet(t, lg+"/summary/route_counts/received_routes_count"); v != 0.0 {
		t.Fatalf("sub-path indexing: %v", v)
	}
	if v := mustGet(t, lg+"/config/BGP/local_address"); v != "127.0.0.21" {
		t.Fatalf("config BGP local_address = %v", v)
	}

	list := mustGet(t, lg+"/vpns/instances").([]any)
	if len(list) != 2 || field(t, list[0], "id") != "net1" || field(t, list[0], "name") != "EVI-1" {
		t.Fatalf("instances = %v", list)
	}
	in := mustGet(t, lg+"/vpns/instances/net1")
	if field(t, in, "instance_type") != "EVI" || fmt.Sprint(field(t, in, "route_targets", "import")) != "[64512:7]" {
		t.Fatalf("instance = %v", in)
	}
	ports := mustGet(t, lg+"/vpns/instances/net1/ports")
	eps := field(t, ports, "tap-net1", "endpoints").([]any)
	if len(eps) != 1 || field(t, eps[0], "mac_address") != "02:00:00:00:00:01" || field(t, eps[0], "ip_address") != "10.0.0.1/32" {
		t.Fatalf("ports = %v", ports)
	}
	// net1 imported net2's routes: its best routes and its dataplane.
	best := mustGet(t, lg+"/vpns/instances/net1/best_routes").(map[string]any)
	if _, ok := best["MAC:02:00:00:00:00:02/10.0.0.2"]; !ok {
		t.Fatalf("net1 best routes lack net2's MAC: %v", best)
	}
	dp := mustGet(t, lg+"/vpns/instances/net1/dataplane")
	if field(t, dp, "fdb", "02:00:00:00:00:02") == nil || field(t, dp, "driver", "id") != "evpn" {
		t.Fatalf("dataplane = %v", dp)
	}
	routes := mustGet(t, lg+"/bgp/routes")
	if n := len(field(t, routes, "l2vpn/evpn,*").([]any)); n != 4 {
		t.Fatalf("bgp/routes l2vpn/evpn has %d routes, want 4", n)
	}
	// One RTC route for the shared RT, from the BGP manager.
	adv := mustGet(t, lg+"/bgp/adv_routes")
	if n := len(field(t, adv, "ipv4/rtc,*").([]any)); n != 1 {
		t.Fatalf("RTC routes = %v", adv)
	}
	workers := mustGet(t, lg+"/bgp/workers").([]any)
	if len(workers) != 2 || field(t, workers[0], "id") != "EVI-1" {
		t.Fatalf("workers = %v", workers)
	}
	mustGet(t, lg+"/bgp/workers/EVI-2")
	// Upstream's order: ipvpn, evpn (reference §2.6).
	if ids := mustGet(t, lg+"/vpns/dataplane/drivers").([]any); len(ids) != 2 || field(t, ids[0], "id") != "ipvpn" || field(t, ids[1], "id") != "evpn" {
		t.Fatalf("drivers = %v", ids)
	}
	mustGet(t, lg+"/vpns/dataplane/drivers/evpn")

	code, v := get(t, lg+"/vpns/instances/nosuch")
	if code != 404 || !strings.Contains(fmt.Sprint(v), "No such looking glass object: nosuch") {
		t.Fatalf("unknown instance: %d %v", code, v)
	}
	code, _ = get(t, lg+"/bgp/peers/10.9.9.9")
	if code != 404 {
		t.Fatalf("unknown peer: %d", code)
	}
}

// TestPingConstantPerProcess: /ping is constant for a daemon and different
// for another one (what the agent uses to detect restarts).
func TestPingConstantPerProcess(t *testing.T) {
	a := startDaemon(t, "127.0.0.22")
	b := startDaemon(t, "127.0.0.23")
	p1, p2, p3 := mustGet(t, a+"/ping"), mustGet(t, a+"/ping"), mustGet(t, b+"/ping")
	if p1 != p2 || p1 == p3 || p1 == 0.0 || p1 == -1.0 {
		t.Fatalf("ping values %v %v (same daemon) %v (other daemon)", p1, p2, p3)
	}
}
