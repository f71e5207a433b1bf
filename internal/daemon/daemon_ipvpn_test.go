package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

func post(t *testing.T, url string, body map[string]any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestIPVPNEndToEnd: ipvpn attaches through the REST API with the dummy
// IP VPN driver; two VRFs sharing an RT program each other's routes, the
// looking glass renders VRFs, and an E-VPN is linked to a VRF.
func TestIPVPNEndToEnd(t *testing.T) {
	base := startDaemon(t, "127.0.0.24")
	lg := base + "/looking-glass"
	vm := func(id, mac, ip string, extra map[string]any) map[string]any {
		b := map[string]any{"vpn_type": "ipvpn", "vpn_instance_id": id, "mac_address": mac, "ip_address": ip,
			"gateway_ip": "10.0.0.1", "local_port": "tap-" + id, "import_rt": "64512:9", "export_rt": "64512:9"}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	if code, out := post(t, base+"/attach_localport", vm("blue", "02:00:00:00:01:01", "10.0.0.5/24",
		map[string]any{"readvertise": map[string]any{"from_rt": []any{"64512:77"}, "to_rt": []any{"64512:78"}}})); code != 200 {
		t.Fatalf("attach blue: %d %s", code, out)
	}
	if code, out := post(t, base+"/attach_localport", vm("red", "02:00:00:00:01:02", "10.0.0.6", map[string]any{"direction": "to-port"})); code != 200 {
		t.Fatalf("attach red: %d %s", code, out)
	}

	blue := mustGet(t, lg+"/vpns/instances/blue")
	if field(t, blue, "instance_type") != "VRF" || field(t, blue, "gateway_ip") != "10.0.0.1" ||
		field(t, blue, "subnet_prefix_length") != 24.0 || field(t, blue, "name") != "VRF-1" {
		t.Fatalf("blue = %v", blue)
	}
	if rv := field(t, blue, "readvertise"); field(t, rv, "from").([]any)[0] != "64512:77" || field(t, rv, "to").([]any)[0] != "64512:78" {
		t.Fatalf("readvertise = %v", rv)
	}
	if href := field(t, blue, "readvertised", "href").(string); !strings.HasSuffix(href, "/vpns/instances/blue/readvertised") {
		t.Fatalf("readvertised href %q", href)
	}
	mustGet(t, lg+"/vpns/instances/blue/readvertised")
	ports := mustGet(t, lg+"/vpns/instances/red/ports")
	ep := field(t, ports, "tap-red", "endpoints").([]any)[0]
	if field(t, ep, "direction") != "to-port" || field(t, ep, "ip_address") != "10.0.0.6/32" || field(t, ep, "label").(float64) < 16 {
		t.Fatalf("red endpoint %v", ep)
	}
	// blue's dummy dataplane routes red's endpoint, once red's route has
	// gone through the engine to blue (asynchronous to the attach reply).
	var dp any
	testenv.WaitFor(t, 10*time.Second, "blue's dataplane to route 10.0.0.6/32 through 127.0.0.24", func() (bool, error) {
		dp = mustGet(t, lg+"/vpns/instances/blue/dataplane")
		routes, _ := dp.(map[string]any)["routes"].(map[string]any)
		r, _ := routes["10.0.0.6/32"].([]any)
		if len(r) != 1 {
			return false, fmt.Errorf("dataplane %v", dp)
		}
		s, _ := r[0].(string)
		return strings.HasPrefix(s, "127.0.0.24/"), fmt.Errorf("route %v", r)
	})
	if field(t, dp, "driver", "id") != "ipvpn" {
		t.Fatalf("dataplane driver %v", field(t, dp, "driver"))
	}
	best := mustGet(t, lg+"/vpns/instances/blue/best_routes")
	if _, ok := best.(map[string]any)["10.0.0.6/32"]; !ok {
		t.Fatalf("blue best routes %v", best)
	}
	mustGet(t, lg+"/vpns/dataplane/drivers/ipvpn")

	// E-VPN plugged into a VRF (evpn2ipvpn sample body, reference §2.3.3).
	attach(t, base, "net1vm1_evpn", "02:00:00:00:02:01", "11.0.0.1", "64512:10")
	if code, out := post(t, base+"/attach_localport", map[string]any{"vpn_type": "ipvpn", "vpn_instance_id": "net1vm1_ipvpn",
		"local_port": map[string]any{"evpn": map[string]any{"id": "net1vm1_evpn"}}, "mac_address": "02:00:00:00:02:01",
		"ip_address": "11.0.0.1/24", "gateway_ip": "11.0.0.254", "import_rt": []any{"64512:11"}, "export_rt": []any{"64512:11"}}); code != 200 {
		t.Fatalf("evpn2ipvpn attach: %d %s", code, out)
	}
	evi := mustGet(t, lg+"/vpns/instances/net1vm1_evpn")
	if field(t, evi, "gateway_port", "interface") != "evpn3-ipvpn4" || field(t, evi, "gateway_port", "ipvpn", "external_instance_id") != "net1vm1_ipvpn" {
		t.Fatalf("EVI gateway_port %v", field(t, evi, "gateway_port"))
	}
	if v := mustGet(t, lg+"/vpns/instances/net1vm1_ipvpn"); field(t, v, "evpn_link", "interface") != "ipvpn4-evpn3" {
		t.Fatalf("VRF evpn_link %v", field(t, v, "evpn_link"))
	}

	// Detach: unknown endpoint is 400; the real one 200 and red goes away.
	if code, _ := post(t, base+"/detach_localport", map[string]any{"vpn_type": "ipvpn", "vpn_instance_id": "red",
		"mac_address": "02:00:00:00:01:02", "ip_address": "10.0.0.7", "local_port": "tap-red"}); code != 400 {
		t.Fatalf("detach of an unknown endpoint: %d", code)
	}
	if code, out := post(t, base+"/detach_localport", map[string]any{"vpn_type": "ipvpn", "vpn_instance_id": "red",
		"mac_address": "02:00:00:00:01:02", "ip_address": "10.0.0.6", "local_port": "tap-red"}); code != 200 {
		t.Fatalf("detach: %d %s", code, out)
	}
	if code, _ := get(t, lg+"/vpns/instances/red"); code != 404 {
		t.Fatalf("red still in the looking glass: %d", code)
	}
}
