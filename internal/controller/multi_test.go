package controller

import (
	"fmt"
	"testing"
)

// TestTwoControllersShareOneCluster runs a second controller on the first
// one's embedded etcd (its "external" cluster) and has both allocate at
// once: segmentation ids, route targets, addresses and MACs never collide.
func TestTwoControllersShareOneCluster(t *testing.T) {
	a := newEnv(t, opts{vnis: "100:107", rtnn: "1:8"})
	b := newEnv(t, opts{vnis: "100:107", rtnn: "1:8", endpoint: a.st.ClientURL()})
	if b.st.ClientURL() != "" {
		t.Fatalf("second controller started its own etcd at %s", b.st.ClientURL())
	}
	bases := []string{a.srv.URL, b.srv.URL}

	answers := race(24, func(i int) resp {
		return do(t, bases[i%2], "POST", "/v2.0/networks", obj{"network": obj{"name": fmt.Sprint(i)}})
	})
	vnis, rts := map[int64]bool{}, map[string]bool{}
	var net string
	for _, r := range answers {
		switch {
		case r.status == 201:
			n := r.body["network"].(obj)
			v, rt := num(n, "provider:segmentation_id"), fmt.Sprint(n["route_targets"])
			if vnis[v] || rts[rt] {
				t.Fatalf("VNI %d or RT %s given twice", v, rt)
			}
			vnis[v], rts[rt], net = true, true, str(n, "id")
		case r.errType() == "NoNetworkAvailable":
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.raw)
		}
	}
	if len(vnis) != 8 {
		t.Fatalf("%d networks created over two controllers, want exactly 8", len(vnis))
	}

	a.subnet(net, "10.0.0.0/27", nil)
	answers = race(40, func(i int) resp {
		return do(t, bases[i%2], "POST", "/v2.0/ports", obj{"port": obj{"network_id": net}})
	})
	if ok := checkPorts(t, b, answers, net); ok != 29 {
		t.Fatalf("%d ports created, want 29", ok)
	}
	// Each controller sees what the other wrote.
	if sa, sb := fmt.Sprint(a.must(200, "GET", "/v2.0/ports", nil, "")), fmt.Sprint(b.must(200, "GET", "/v2.0/ports", nil, "")); sa != sb {
		t.Fatalf("the controllers disagree:\n%s\n%s", sa, sb)
	}
}
