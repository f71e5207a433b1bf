package controller

import (
	"fmt"
	"sync"
	"testing"
)

// race runs f(i) for i in [0, n) in n goroutines started together and
// returns the answers.
func race(n int, f func(i int) resp) []resp {
	out := make([]resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// checkPorts checks that the created ports have distinct addresses and
// MACs, that the failures are all IP exhaustion, and that the store agrees
// with the answers. It returns the number of ports created.
func checkPorts(t *testing.T, e *env, answers []resp, netID string) int {
	t.Helper()
	ips, macs := map[string]bool{}, map[string]bool{}
	ok := 0
	for _, r := range answers {
		switch {
		case r.status == 201:
			p := r.body["port"].(obj)
			ip, mac := fixedIP(p), str(p, "mac_address")
			if ip == "" || ips[ip] || macs[mac] {
				t.Fatalf("duplicate or missing address: %s / %s in %v", ip, mac, p)
			}
			ips[ip], macs[mac] = true, true
			ok++
		case r.status == 409 && r.errType() == "IpAddressGenerationFailure":
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.raw)
		}
	}
	l := e.must(200, "GET", "/v2.0/ports?network_id="+netID, nil, "")["ports"].([]any)
	if len(l) != ok {
		t.Fatalf("%d ports stored, %d acknowledged", len(l), ok)
	}
	return ok
}

func TestConcurrentPortsOnSmallSubnet(t *testing.T) {
	e := newEnv(t, opts{})
	net := str(e.network(obj{}), "id")
	e.subnet(net, "10.0.0.0/27", nil) // 30 usable addresses, one is the gateway
	answers := race(50, func(int) resp {
		return do(t, e.srv.URL, "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "binding:host_id": "h1"}})
	})
	if ok := checkPorts(t, e, answers, net); ok != 29 {
		t.Fatalf("%d ports created, want 29 (the subnet's free addresses)", ok)
	}
	// Every port is in the host's attachments, once.
	a := e.must(200, "GET", "/v1/hosts/h1/attachments", nil, "")
	if n := len(a["ports"].([]any)); n != 29 {
		t.Fatalf("%d ports in the attachments of h1, want 29", n)
	}
}

func TestConcurrentSameMACAndIP(t *testing.T) {
	e := newEnv(t, opts{})
	net := str(e.network(obj{}), "id")
	e.subnet(net, "10.0.0.0/24", nil)
	answers := race(20, func(i int) resp {
		return do(t, e.srv.URL, "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "mac_address": "fa:16:3e:00:00:01",
			"fixed_ips": []obj{{"ip_address": fmt.Sprintf("10.0.0.%d", 10+i)}}}})
	})
	answers = append(answers, race(20, func(i int) resp {
		return do(t, e.srv.URL, "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": "10.0.0.100"}}}})
	})...)
	var created, macInUse, ipInUse int
	for _, r := range answers {
		switch {
		case r.status == 201:
			created++
		case r.errType() == "MacAddressInUse":
			macInUse++
		case r.errType() == "IpAddressAlreadyAllocated":
			ipInUse++
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.raw)
		}
	}
	if created != 2 || macInUse != 19 || ipInUse != 19 {
		t.Fatalf("created %d, MAC in use %d, IP in use %d; want 2, 19, 19", created, macInUse, ipInUse)
	}
}

func TestNetworksRaceForVNIs(t *testing.T) {
	e := newEnv(t, opts{vnis: "300:304", rtnn: "10:30"})
	answers := race(20, func(int) resp {
		return do(t, e.srv.URL, "POST", "/v2.0/networks", obj{"network": obj{}})
	})
	vnis, rts := map[int64]bool{}, map[string]bool{}
	for _, r := range answers {
		switch {
		case r.status == 201:
			n := r.body["network"].(obj)
			v, rt := num(n, "provider:segmentation_id"), fmt.Sprint(n["route_targets"])
			if vnis[v] || rts[rt] || v < 300 || v > 304 {
				t.Fatalf("VNI %d / RT %s duplicated or out of range", v, rt)
			}
			vnis[v], rts[rt] = true, true
		case r.status == 503 && r.errType() == "NoNetworkAvailable":
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.raw)
		}
	}
	if len(vnis) != 5 {
		t.Fatalf("%d networks created, want exactly 5", len(vnis))
	}
}
