package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// TestErrorMatrix covers every row of reference §2.5 that the API layer
// answers, and each field rule of §2.3.1: status, JSON error body, exact
// description, and that the backend was not called.
func TestErrorMatrix(t *testing.T) {
	const A, D = "/attach_localport", "/detach_localport"
	lp := func(m map[string]any) map[string]any { return m }
	tests := []struct {
		name   string
		path   string
		body   string
		status int
		desc   string
	}{
		// Body not JSON / empty: no "API error: " prefix.
		{"empty body", A, "", 400, "No local port details received"},
		{"empty body detach", D, "", 400, "No local port details received"},
		{"not JSON", A, "vpn_type=evpn", 400, "No local port details received"},
		{"truncated JSON", A, `{"vpn_type": "evpn"`, 400, "No local port details received"},
		{"trailing garbage", A, `{} {}`, 400, "No local port details received"},
		{"invalid UTF-8", A, "{\"vpn_type\": \"\xff\"}", 400, "No local port details received"},
		// Non-object JSON (upstream 500).
		{"list body", A, `[1, 2]`, 400, "API error: the request body must be a JSON object, not a list"},
		{"null body", D, `null`, 400, "API error: the request body must be a JSON object, not null"},
		{"string body", A, `"x"`, 400, "API error: the request body must be a JSON object, not a string"},
		// vpn_type.
		{"missing vpn_type", A, ipvpnBody.with("vpn_type", del).json(), 400, "API error: missing instance_type"},
		{"null vpn_type", D, ipvpnBody.with("vpn_type", nil).json(), 400, "API error: missing instance_type"},
		{"unknown vpn_type", A, ipvpnBody.with("vpn_type", "l3vpn").json(), 400, "API error: unknown vpn_type: l3vpn"},
		{"numeric vpn_type", A, ipvpnBody.with("vpn_type", 5).json(), 400, "API error: unknown vpn_type: 5"},
		{"upper-case vpn_type", D, ipvpnBody.with("vpn_type", "IPVPN").json(), 400, "API error: unknown vpn_type: IPVPN"},
		// Missing parameters, in upstream's order.
		{"missing vpn_instance_id", A, ipvpnBody.with("vpn_instance_id", del).json(), 400, "API error: Missing parameter: 'vpn_instance_id'"},
		{"missing mac_address", A, ipvpnBody.with("mac_address", del).json(), 400, "API error: Missing parameter: 'mac_address'"},
		{"missing local_port", A, ipvpnBody.with("local_port", del).json(), 400, "API error: Missing parameter: 'local_port'"},
		{"missing import_rt", A, ipvpnBody.with("import_rt", del).json(), 400, "API error: Missing parameter: 'import_rt'"},
		{"null import_rt", A, ipvpnBody.with("import_rt", nil).json(), 400, "API error: Missing parameter: 'import_rt'"},
		{"missing export_rt", A, ipvpnBody.with("export_rt", del).json(), 400, "API error: Missing parameter: 'export_rt'"},
		{"missing ip_address ipvpn", A, ipvpnBody.with("ip_address", del).json(), 400, "API error: Missing parameter: 'ip_address'"},
		{"missing ip_address ipvpn detach", D, ipvpnBody.with("ip_address", del).json(), 400, "API error: Missing parameter: 'ip_address'"},
		{"missing gateway_ip ipvpn", A, ipvpnBody.with("gateway_ip", del).json(), 400, "API error: Missing parameter: 'gateway_ip'"},
		{"missing several: first wins", A, ipvpnBody.with("mac_address", del, "export_rt", del).json(), 400, "API error: Missing parameter: 'mac_address'"},
		{"missing detach mac", D, evpnBody.with("mac_address", del).json(), 400, "API error: Missing parameter: 'mac_address'"},
		// vpn_instance_id.
		{"numeric vpn_instance_id", A, ipvpnBody.with("vpn_instance_id", 7).json(), 400, "API error: 'vpn_instance_id' must be a string, not a number"},
		{"empty vpn_instance_id", D, ipvpnBody.with("vpn_instance_id", "").json(), 400, "API error: 'vpn_instance_id' must not be empty"},
		// local_port.
		{"local_port empty object", A, ipvpnBody.with("local_port", obj{}).json(), 400, "API error: Mandatory key is missing in local_port parameter (linuxif, or evpn)"},
		{"local_port ovs only", D, ipvpnBody.with("local_port", lp(obj{"ovs": obj{"plugged": true}})).json(), 400, "API error: Mandatory key is missing in local_port parameter (linuxif, or evpn)"},
		{"local_port null linuxif", A, ipvpnBody.with("local_port", obj{"linuxif": nil}).json(), 400, "API error: Mandatory key is missing in local_port parameter (linuxif, or evpn)"},
		{"local_port empty linuxif", D, ipvpnBody.with("local_port", "").json(), 400, "API error: Mandatory key is missing in local_port parameter (linuxif, or evpn)"},
		{"local_port null evpn", A, ipvpnBody.with("local_port", obj{"evpn": nil}).json(), 400, "API error: Mandatory key is missing in local_port parameter (linuxif, or evpn)"},
		{"local_port number", A, ipvpnBody.with("local_port", 3).json(), 400, "API error: 'local_port' must be an object or a string, not a number"},
		{"local_port list", A, ipvpnBody.with("local_port", []any{"linuxif"}).json(), 400, "API error: 'local_port' must be an object or a string, not a list"},
		{"linuxif and evpn", A, ipvpnBody.with("local_port", obj{"linuxif": "tap1", "evpn": obj{"id": "e1"}}).json(), 400, "API error: 'local_port' cannot have both a non-empty 'linuxif' and 'evpn'"},
		{"evpn plug into evpn", A, evpnBody.with("local_port", obj{"evpn": obj{"id": "e1"}}).json(), 400, "API error: 'local_port.evpn' is only supported with vpn_type ipvpn"},
		{"evpn without id", A, ipvpnBody.with("local_port", obj{"evpn": obj{}}).json(), 400, "API error: Missing parameter: 'id' in 'local_port.evpn' (the vpn_instance_id of the E-VPN instance to plug)"},
		{"evpn not object", A, ipvpnBody.with("local_port", obj{"evpn": "e1"}).json(), 400, "API error: 'local_port.evpn' must be an object, not a string"},
		{"evpn id empty", A, ipvpnBody.with("local_port", obj{"evpn": obj{"id": ""}}).json(), 400, "API error: 'local_port.evpn.id' must not be empty"},
		{"linuxif number", A, ipvpnBody.with("local_port", obj{"linuxif": 5}).json(), 400, "API error: 'local_port.linuxif' must be a string, not a number"},
		{"vlan too big", A, evpnBody.with("local_port", obj{"linuxif": "x", "vlan": 4096}).json(), 400, "API error: 'local_port.vlan' must be an integer from 0 to 4095, not 4096"},
		{"vlan bool", A, evpnBody.with("local_port", obj{"linuxif": "x", "vlan": true}).json(), 400, "API error: 'local_port.vlan' must be an integer, not a boolean"},
		{"ovs not object", A, ipvpnBody.with("local_port", obj{"linuxif": "x", "ovs": 1}).json(), 400, "API error: 'local_port.ovs' must be an object, not a number"},
		{"ovs plugged string", A, ipvpnBody.with("local_port", obj{"linuxif": "x", "ovs": obj{"plugged": "yes"}}).json(), 400, "API error: 'local_port.ovs.plugged' must be a boolean, not a string"},
		{"ovs port_number bad string", A, ipvpnBody.with("local_port", obj{"linuxif": "x", "ovs": obj{"port_number": "seven"}}).json(), 400, `API error: 'local_port.ovs.port_number' must be an integer from 0 to 2147483647, not "seven"`},
		// MAC.
		{"bad MAC", A, ipvpnBody.with("mac_address", "fa:16:3e:zz:34:56").json(), 400, "API error: MAC address fa:16:3e:zz:34:56 is not valid"},
		{"EUI-64 is not a MAC", D, ipvpnBody.with("mac_address", "01:02:03:04:05:06:07:08").json(), 400, "API error: MAC address 01:02:03:04:05:06:07:08 is not valid"},
		{"numeric MAC", A, ipvpnBody.with("mac_address", 12).json(), 400, "API error: MAC address 12 is not valid"},
		{"empty MAC", A, ipvpnBody.with("mac_address", "").json(), 400, "API error: MAC address  is not valid"},
		// IP.
		{"bad IP", A, ipvpnBody.with("ip_address", "10.0.0.300").json(), 400, "API error: IP address 10.0.0.300 is not valid"},
		{"bad prefix length", A, ipvpnBody.with("ip_address", "10.0.0.1/33").json(), 400, "API error: IP address 10.0.0.1/33 is not valid"},
		{"IPv6 address", A, evpnBody.with("ip_address", "2001:db8::1").json(), 400, "API error: IP address 2001:db8::1 is not valid: only IPv4 is supported"},
		{"IPv6 prefix detach", D, ipvpnBody.with("ip_address", "2001:db8::/64").json(), 400, "API error: IP address 2001:db8::/64 is not valid: only IPv4 is supported"},
		{"numeric IP", A, evpnBody.with("ip_address", 167772161).json(), 400, "API error: IP address 167772161 is not valid"},
		// advertise_subnet.
		{"advertise_subnet string", A, ipvpnBody.with("advertise_subnet", "true").json(), 400, "API error: 'advertise_subnet' must be a boolean"},
		{"advertise_subnet number", A, ipvpnBody.with("advertise_subnet", 1).json(), 400, "API error: 'advertise_subnet' must be a boolean"},
		{"advertise_subnet null", D, ipvpnBody.with("advertise_subnet", nil).json(), 400, "API error: 'advertise_subnet' must be a boolean"},
		// direction.
		{"bad direction", A, ipvpnBody.with("direction", "up").json(), 400, "API error: direction should be one of: both, to-port, from-port"},
		{"numeric direction", A, ipvpnBody.with("direction", 1).json(), 400, "API error: direction should be one of: both, to-port, from-port"},
		// gateway_ip.
		{"bad gateway_ip", A, ipvpnBody.with("gateway_ip", "10.0.0").json(), 400, "API error: 'gateway_ip' 10.0.0 is not a valid IP address"},
		{"IPv6 gateway_ip", A, ipvpnBody.with("gateway_ip", "fe80::1").json(), 400, "API error: 'gateway_ip' fe80::1 is not valid: only IPv4 is supported"},
		{"numeric gateway_ip", A, evpnBody.with("gateway_ip", 1).json(), 400, "API error: 'gateway_ip' must be a string, not a number"},
		// Route targets (upstream 500).
		{"RT without colon", A, ipvpnBody.with("import_rt", []any{"64512"}).json(), 400, `API error: Malformed route target in 'import_rt': '64512' (route target "64512" is not of the form <asn>:<number>)`},
		{"RT 4-byte ASN", A, ipvpnBody.with("export_rt", "70000:1").json(), 400, `API error: Malformed route target in 'export_rt': '70000:1' (route target "70000:1": AS number "70000" must be an integer from 0 to 65535)`},
		{"RT IP form", A, ipvpnBody.with("import_rt", "64512:1, 1.2.3.4:5").json(), 400, `API error: Malformed route target in 'import_rt': '1.2.3.4:5' (route target "1.2.3.4:5": AS number "1.2.3.4" must be an integer from 0 to 65535)`},
		{"RT number too big", A, ipvpnBody.with("import_rt", []any{"1:4294967296"}).json(), 400, `API error: Malformed route target in 'import_rt': '1:4294967296' (route target "1:4294967296": number "4294967296" must be an integer from 0 to 4294967295)`},
		{"RT not a string", A, ipvpnBody.with("export_rt", []any{"64512:1", 5}).json(), 400, "API error: Malformed route target in 'export_rt': 5 is not a string"},
		{"RT list is a number", A, ipvpnBody.with("import_rt", 5).json(), 400, "API error: 'import_rt' must be a list of route targets or a comma-separated string, not a number"},
		// Numeric fields.
		{"local_pref bool", A, ipvpnBody.with("local_pref", true).json(), 400, "API error: 'local_pref' must be an integer, not a boolean"},
		{"local_pref string", A, ipvpnBody.with("local_pref", "200").json(), 400, "API error: 'local_pref' must be an integer, not a string"},
		{"local_pref negative", A, ipvpnBody.with("local_pref", -1).json(), 400, "API error: 'local_pref' must be an integer from 0 to 4294967295, not -1"},
		{"local_pref too big", A, ipvpnBody.with("local_pref", 4294967296).json(), 400, "API error: 'local_pref' must be an integer from 0 to 4294967295, not 4294967296"},
		{"local_pref fraction", A, ipvpnBody.with("local_pref", 1.5).json(), 400, "API error: 'local_pref' must be an integer from 0 to 4294967295, not 1.5"},
		{"lb order negative", A, ipvpnBody.with("lb_consistent_hash_order", -2).json(), 400, "API error: 'lb_consistent_hash_order' must be an integer from 0 to 4294967295, not -2"},
		{"lb order bool", A, ipvpnBody.with("lb_consistent_hash_order", false).json(), 400, "API error: 'lb_consistent_hash_order' must be an integer, not a boolean"},
		{"vni too big", A, evpnBody.with("vni", 16777216).json(), 400, "API error: 'vni' must be an integer from 0 to 16777215, not 16777216"},
		{"vni string", A, evpnBody.with("vni", "1001").json(), 400, "API error: 'vni' must be an integer, not a string"},
		{"vni huge exponent", A, `{"vpn_type":"evpn","vpn_instance_id":"e","mac_address":"fa:16:3e:12:34:56","local_port":"t","import_rt":[],"export_rt":[],"vni":1e400}`, 400, "API error: 'vni' must be an integer from 0 to 16777215, not 1e400"},
		{"linuxbr number", A, evpnBody.with("linuxbr", 5).json(), 400, "API error: 'linuxbr' must be a string, not a number"},
		// readvertise (upstream 500).
		{"readvertise without to_rt", A, ipvpnBody.with("readvertise", obj{"from_rt": []any{"64512:77"}}).json(), 400, "API error: Missing parameter: 'to_rt' in 'readvertise'"},
		{"readvertise without from_rt", A, ipvpnBody.with("readvertise", obj{"to_rt": []any{"64512:77"}}).json(), 400, "API error: Missing parameter: 'from_rt' in 'readvertise'"},
		{"readvertise string", A, ipvpnBody.with("readvertise", "64512:1").json(), 400, "API error: 'readvertise' must be an object, not a string"},
		{"readvertise RT string", A, ipvpnBody.with("readvertise", obj{"from_rt": "64512:77", "to_rt": []any{"64512:1"}}).json(), 400, "API error: 'readvertise.from_rt' must be a list of route targets, not a string"},
		{"readvertise bad RT", A, ipvpnBody.with("readvertise", obj{"from_rt": []any{"x:1"}, "to_rt": []any{"64512:1"}}).json(), 400, `API error: Malformed route target in 'readvertise.from_rt': 'x:1' (route target "x:1": AS number "x" must be an integer from 0 to 65535)`},
		// attract_traffic.
		{"attract without redirect_rts", A, ipvpnBody.with("attract_traffic", obj{"classifier": obj{"protocol": "tcp"}}).json(), 400, "API error: Missing parameter: 'redirect_rts' in 'attract_traffic'"},
		{"attract without classifier", A, ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}}).json(), 400, "API error: 'attract_traffic' specified with no 'classifier'"},
		{"attract classifier string", A, ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}, "classifier": "tcp"}).json(), 400, "API error: 'attract_traffic.classifier' must be an object, not a string"},
		{"attract to_rt without prefixes", A, ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}, "classifier": obj{"protocol": "tcp"}, "to_rt": []any{"64517:5003"}}).json(), 400, "API error: 'attract_traffic/to_rt' specified without 'static_destination_prefixes'"},
		{"attract bad prefix", A, ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}, "classifier": obj{"protocol": "tcp"}, "to_rt": []any{"64517:5003"}, "static_destination_prefixes": []any{"12.0.0.0/40"}}).json(), 400, "API error: in 'attract_traffic.static_destination_prefixes': IP address 12.0.0.0/40 is not valid"},
		{"attract prefixes not list", A, ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}, "classifier": obj{}, "static_destination_prefixes": "12.0.0.0/24"}).json(), 400, "API error: 'attract_traffic.static_destination_prefixes' must be a list of IPv4 prefixes, not a string"},
		{"attract is a list", A, ipvpnBody.with("attract_traffic", []any{1}).json(), 400, "API error: 'attract_traffic' must be an object, not a list"},
		// fallback, descriptions.
		{"fallback bad MAC", A, ipvpnBody.with("fallback", obj{"src_mac": "nope"}).json(), 400, "API error: in 'fallback.src_mac': MAC address nope is not valid"},
		{"fallback port bool", A, ipvpnBody.with("fallback", obj{"ovs_port_number": true}).json(), 400, "API error: 'fallback.ovs_port_number' must be an integer, not a boolean"},
		{"fallback string", A, ipvpnBody.with("fallback", "x").json(), 400, "API error: 'fallback' must be an object, not a string"},
		{"instance_description number", A, ipvpnBody.with("instance_description", 5).json(), 400, "API error: 'instance_description' must be a string, not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			h := newTestServer(b).Handler()
			r := call(t, h, http.MethodPost, tc.path, tc.body, "application/json")
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tc.status, r.body)
			}
			e := decodeError(t, r)
			if e.Code != tc.status || e.Title != http.StatusText(tc.status) {
				t.Errorf("code/title = %d %q, want %d %q", e.Code, e.Title, tc.status, http.StatusText(tc.status))
			}
			if e.Description != tc.desc {
				t.Errorf("description =\n  %q\nwant\n  %q", e.Description, tc.desc)
			}
			if n := b.calls(); n != 0 {
				t.Errorf("backend called %d times for an invalid request", n)
			}
		})
	}
}

// TestNoDriver: a type without a configured dataplane driver is refused.
func TestNoDriver(t *testing.T) {
	for _, path := range []string{"/attach_localport", "/detach_localport"} {
		b := newBackend(vpn.IPVPN)
		r := call(t, newTestServer(b).Handler(), http.MethodPost, path, evpnBody.json(), "")
		if r.status != 400 {
			t.Fatalf("%s: status %d, want 400", path, r.status)
		}
		if e := decodeError(t, r); e.Description != "API error: No dataplane driver for VPN type evpn" {
			t.Errorf("%s: description %q", path, e.Description)
		}
	}
}

// TestOptionalFields: what each type may omit.
func TestOptionalFields(t *testing.T) {
	tests := []struct {
		name, path string
		body       obj
	}{
		{"evpn attach without ip_address", "/attach_localport", evpnBody.with("ip_address", del)},
		{"evpn attach without gateway_ip", "/attach_localport", evpnBody.with("gateway_ip", del)},
		{"evpn attach with null ip_address", "/attach_localport", evpnBody.with("ip_address", nil)},
		{"detach without RTs", "/detach_localport", ipvpnBody.with("import_rt", del, "export_rt", del)},
		{"ipvpn detach without gateway_ip", "/detach_localport", ipvpnBody.with("gateway_ip", del)},
		{"detach ignores bad direction", "/detach_localport", ipvpnBody.with("direction", "sideways")},
		{"detach ignores bad RTs", "/detach_localport", ipvpnBody.with("import_rt", "nonsense")},
		{"evpn2ipvpn with empty linuxif", "/attach_localport", ipvpnBody.with("local_port", obj{"linuxif": "", "evpn": obj{"id": "e1"}})},
		{"unknown keys ignored", "/attach_localport", ipvpnBody.with("static_routes", []any{"1.2.3.0/24"}, "x", obj{})},
		{"empty direction", "/attach_localport", ipvpnBody.with("direction", "")},
		{"null optional fields", "/attach_localport", ipvpnBody.with("direction", nil, "readvertise", nil,
			"attract_traffic", nil, "fallback", nil, "local_pref", nil, "vni", nil, "linuxbr", nil,
			"lb_consistent_hash_order", nil, "instance_description", nil, "description", nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			r := call(t, newTestServer(b).Handler(), http.MethodPost, tc.path, tc.body.json(), "")
			if r.status != 200 || r.body != "null" {
				t.Fatalf("got %d %s, want 200 null", r.status, r.body)
			}
			if b.calls() != 1 {
				t.Fatalf("backend calls = %d, want 1", b.calls())
			}
		})
	}
}

// TestErrorRendering: JSON or text error body depending on Accept.
func TestErrorRendering(t *testing.T) {
	tests := []struct {
		accept string
		json   bool
	}{
		{"", true},
		{"*/*", true},
		{"application/json", true},
		{"application/*", true},
		{"text/plain", false},
		{"text/html", false},
		{"text/*", false},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false},
		{"application/json;q=0.5, text/plain", false},
		{"text/plain;q=0.2, application/json", true},
		{"text/html, application/json", true}, // tie: JSON
		{"image/png", false},
		{"application/json;q=0", false},
	}
	body := ipvpnBody.with("vpn_type", del).json()
	for _, tc := range tests {
		t.Run(tc.accept, func(t *testing.T) {
			r := call(t, newTestServer(newBackend()).Handler(), http.MethodPost, "/attach_localport", body, tc.accept)
			if r.status != 400 {
				t.Fatalf("status %d", r.status)
			}
			if tc.json {
				if e := decodeError(t, r); e.Description != "API error: missing instance_type" {
					t.Errorf("description %q", e.Description)
				}
				return
			}
			if !strings.HasPrefix(r.ctype, "text/plain") {
				t.Fatalf("Content-Type %q, want text/plain", r.ctype)
			}
			if want := "400 Bad Request\n\nAPI error: missing instance_type\n"; r.body != want {
				t.Errorf("body %q, want %q", r.body, want)
			}
		})
	}
}
