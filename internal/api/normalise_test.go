package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

var testMAC = route.MAC{0xfa, 0x16, 0x3e, 0x12, 0x34, 0x56}

func rts(s ...string) []route.RT {
	out := make([]route.RT, 0, len(s))
	for _, x := range s {
		rt, err := route.ParseRT(x)
		if err != nil {
			panic(err)
		}
		out = append(out, rt)
	}
	return out
}

func u32(v uint32) *uint32 { return &v }
func sp(s string) *string  { return &s }

// TestAttachNormalisation: a valid body gives 200 `null` and the backend
// gets exactly the normalised request.
func TestAttachNormalisation(t *testing.T) {
	ipvpnLP := dataplane.LocalPort{
		LinuxIf: "patch2tun:3",
		OVS:     &dataplane.OVSPort{Plugged: true, PortNumber: 2, VLAN: 3},
		Raw:     `{"linuxif":"patch2tun:3","ovs":{"plugged":true,"port_number":2,"vlan":3}}`,
	}
	ipvpnWant := vpn.AttachRequest{
		Type:       vpn.IPVPN,
		InstanceID: "ipvpn_net1",
		MAC:        testMAC,
		IP:         netip.MustParsePrefix("10.0.0.5/32"),
		LocalPort:  ipvpnLP,
		ImportRTs:  rts("64512:1"),
		ExportRTs:  rts("64512:1"),
		GatewayIP:  netip.MustParseAddr("10.0.0.1"),
		LocalPref:  u32(200),
		Direction:  dataplane.DirectionBoth,
		Fallback:   &vpn.Fallback{SrcMAC: "00:00:5e:2a:10:00", DstMAC: "fa:16:3e:aa:bb:cc", OVSPortNumber: 4},
		// Description is canonical JSON.
		Description:         json.RawMessage(`{"port":"0d3b-port"}`),
		InstanceDescription: sp("BGPVPN ipvpn associations for net1"),
	}
	edit := func(f func(*vpn.AttachRequest)) vpn.AttachRequest {
		r := ipvpnWant
		f(&r)
		return r
	}
	tapLP := dataplane.LocalPort{LinuxIf: "tap0d3b1234-56", Raw: `{"linuxif":"tap0d3b1234-56"}`}
	tests := []struct {
		name string
		body string
		want vpn.AttachRequest
	}{
		{"neutron ovs agent ipvpn", ipvpnBody.json(), ipvpnWant},
		{"RT string split and dedup",
			ipvpnBody.with("import_rt", "64512:1,64512:2, 64512:1,,64512:3,  65535:4294967295", "export_rt", "").json(),
			edit(func(r *vpn.AttachRequest) {
				r.ImportRTs = rts("64512:1", "64512:2", "64512:3", "65535:4294967295")
				r.ExportRTs = []route.RT{}
			})},
		{"RT list dedup, empty strings ignored, spaces tolerated",
			ipvpnBody.with("import_rt", []any{"64512:2", "", "64512:2", "64512 : 1", " 64512:2"}).json(),
			edit(func(r *vpn.AttachRequest) { r.ImportRTs = rts("64512:2", "64512:1") })},
		{"IP with prefix length kept",
			ipvpnBody.with("ip_address", "20.1.0.0/24", "advertise_subnet", true, "direction", "to-port", "local_pref", 150).json(),
			edit(func(r *vpn.AttachRequest) {
				r.IP = netip.MustParsePrefix("20.1.0.0/24")
				r.AdvertiseSubnet = true
				r.Direction = dataplane.DirectionToPort
				r.LocalPref = u32(150)
			})},
		{"host bits kept with prefix length",
			ipvpnBody.with("ip_address", "10.0.0.5/24").json(),
			edit(func(r *vpn.AttachRequest) { r.IP = netip.MustParsePrefix("10.0.0.5/24") })},
		{"local_port string shorthand",
			ipvpnBody.with("local_port", "tap0d3b1234-56").json(),
			edit(func(r *vpn.AttachRequest) { r.LocalPort = tapLP })},
		{"local_pref 0 means default (upstream 'or 100')",
			ipvpnBody.with("local_pref", 0).json(),
			edit(func(r *vpn.AttachRequest) { r.LocalPref = nil })},
		{"integral float and exponent accepted",
			ipvpnBody.with("local_pref", 200.0, "lb_consistent_hash_order", json.Number("2e1")).json(),
			edit(func(r *vpn.AttachRequest) { r.LBOrder = 20 })},
		{"MAC forms: upper case, hyphens",
			ipvpnBody.with("mac_address", "FA-16-3E-12-34-56").json(), ipvpnWant},
		{"MAC forms: bare hex",
			ipvpnBody.with("mac_address", "fa163e123456").json(), ipvpnWant},
		{"MAC forms: dotted",
			ipvpnBody.with("mac_address", "fa16.3e12.3456").json(), ipvpnWant},
		{"from-port and readvertise",
			ipvpnBody.with("direction", "from-port", "readvertise",
				obj{"from_rt": []any{"64512:77"}, "to_rt": []any{"64512:1", "64512:1"}}).json(),
			edit(func(r *vpn.AttachRequest) {
				r.Direction = dataplane.DirectionFromPort
				r.Readvertise = &vpn.Readvertise{FromRTs: rts("64512:77"), ToRTs: rts("64512:1")}
			})},
		{"attract_traffic with readvertise (SFC)",
			ipvpnBody.with("readvertise", obj{"from_rt": []any{"64512:2"}, "to_rt": []any{"64517:5003"}},
				"attract_traffic", obj{"redirect_rts": []any{"64517:5002"},
					"classifier": obj{"destinationPort": "80", "protocol": "tcp", "sourcePrefix": "11.0.0.1/32"}},
				"lb_consistent_hash_order", 3).json(),
			edit(func(r *vpn.AttachRequest) {
				r.Readvertise = &vpn.Readvertise{FromRTs: rts("64512:2"), ToRTs: rts("64517:5003")}
				r.AttractTraffic = &vpn.AttractTraffic{RedirectRTs: rts("64517:5002"),
					Classifier: json.RawMessage(`{"destinationPort":"80","protocol":"tcp","sourcePrefix":"11.0.0.1/32"}`)}
				r.LBOrder = 3
			})},
		{"attract_traffic with to_rt and static prefixes",
			ipvpnBody.with("attract_traffic", obj{"redirect_rts": []any{"64517:5002"}, "classifier": obj{},
				"to_rt": []any{"64517:5003"}, "static_destination_prefixes": []any{"12.0.0.0/24", "13.0.0.1"}}).json(),
			edit(func(r *vpn.AttachRequest) {
				r.AttractTraffic = &vpn.AttractTraffic{RedirectRTs: rts("64517:5002"),
					Classifier: json.RawMessage(`{}`), ToRTs: rts("64517:5003"),
					StaticDestinationPrefixes: []netip.Prefix{netip.MustParsePrefix("12.0.0.0/24"), netip.MustParsePrefix("13.0.0.1/32")}}
			})},
		{"empty readvertise/attract/fallback objects mean none",
			ipvpnBody.with("readvertise", obj{}, "attract_traffic", obj{}, "fallback", obj{}).json(),
			edit(func(r *vpn.AttachRequest) { r.Fallback = nil })},
		{"evpn2ipvpn local_port",
			ipvpnBody.with("local_port", obj{"evpn": obj{"id": "net1vm1_evpn"}}, "ip_address", "11.0.0.1/24").json(),
			edit(func(r *vpn.AttachRequest) {
				r.LocalPort = dataplane.LocalPort{EVPN: "net1vm1_evpn", Raw: `{"evpn":{"id":"net1vm1_evpn"}}`}
				r.IP = netip.MustParsePrefix("11.0.0.1/24")
			})},
		{"OVS fields as strings (upstream docstring form)",
			ipvpnBody.with("local_port", obj{"linuxif": "x", "ovs": obj{"plugged": false, "port_name": "qvo1", "port_number": "7", "vlan": "42"}}).json(),
			edit(func(r *vpn.AttachRequest) {
				r.LocalPort = dataplane.LocalPort{LinuxIf: "x",
					OVS: &dataplane.OVSPort{PortName: "qvo1", PortNumber: 7, VLAN: 42},
					Raw: `{"linuxif":"x","ovs":{"plugged":false,"port_name":"qvo1","port_number":"7","vlan":"42"}}`}
			})},
		{"evpn linuxbridge agent",
			evpnBody.json(),
			vpn.AttachRequest{Type: vpn.EVPN, InstanceID: "evpn_net1", MAC: testMAC,
				IP: netip.MustParsePrefix("10.0.0.5/32"), LocalPort: tapLP,
				ImportRTs: rts("64512:1001"), ExportRTs: rts("64512:1001"),
				VNI: 1001, LinuxBridge: "brq9c1a1234-56", Direction: dataplane.DirectionBoth}},
		{"evpn ovs agent with vlan, MAC-only",
			evpnBody.with("local_port", obj{"linuxif": "patch2tun:3", "vlan": 3}, "ip_address", del,
				"linuxbr", del, "gateway_ip", "10.0.0.1", "vni", 0).json(),
			vpn.AttachRequest{Type: vpn.EVPN, InstanceID: "evpn_net1", MAC: testMAC,
				LocalPort: dataplane.LocalPort{LinuxIf: "patch2tun:3", VLAN: 3, Raw: `{"linuxif":"patch2tun:3","vlan":3}`},
				ImportRTs: rts("64512:1001"), ExportRTs: rts("64512:1001"),
				GatewayIP: netip.MustParseAddr("10.0.0.1"), Direction: dataplane.DirectionBoth}},
		{"linuxbr ignored for ipvpn",
			ipvpnBody.with("linuxbr", "brq1").json(), ipvpnWant},
		{"description of any JSON type",
			ipvpnBody.with("description", []any{1, "a"}).json(),
			edit(func(r *vpn.AttachRequest) { r.Description = json.RawMessage(`[1,"a"]`) })},
		// What bagpipe-rest-attach sends (reference §2.3.3).
		{"bagpipe-rest-attach",
			`{"import_rt": ["64512:78"], "export_rt": ["64512:78"], "local_port": {"linuxif": "ns-test"},
			  "vpn_instance_id": "test", "vpn_type": "ipvpn", "gateway_ip": "12.11.11.254",
			  "mac_address": "52:54:00:99:99:22", "ip_address": "12.11.11.1/24", "advertise_subnet": false,
			  "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
			vpn.AttachRequest{Type: vpn.IPVPN, InstanceID: "test", MAC: route.MAC{0x52, 0x54, 0, 0x99, 0x99, 0x22},
				IP: netip.MustParsePrefix("12.11.11.1/24"), GatewayIP: netip.MustParseAddr("12.11.11.254"),
				LocalPort: dataplane.LocalPort{LinuxIf: "ns-test", Raw: `{"linuxif":"ns-test"}`},
				ImportRTs: rts("64512:78"), ExportRTs: rts("64512:78"), Direction: dataplane.DirectionBoth}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			r := call(t, newTestServer(b).Handler(), http.MethodPost, "/attach_localport", tc.body, "application/json")
			if r.status != 200 || r.body != "null" || r.ctype != "application/json" {
				t.Fatalf("got %d %q %q, want 200 application/json null", r.status, r.ctype, r.body)
			}
			if len(b.attaches) != 1 || len(b.detaches) != 0 {
				t.Fatalf("backend got %d attaches %d detaches, want 1 attach", len(b.attaches), len(b.detaches))
			}
			if got := b.attaches[0]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("request mismatch\n got: %s\nwant: %s", dump(got), dump(tc.want))
			}
		})
	}
}

// dump renders a request readably for failure messages.
func dump(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return fmt.Sprintf("%+v\n%s", v, b)
}

func TestDetachNormalisation(t *testing.T) {
	tests := []struct {
		name string
		body string
		want vpn.DetachRequest
	}{
		{"ipvpn", ipvpnBody.json(), vpn.DetachRequest{Type: vpn.IPVPN, InstanceID: "ipvpn_net1", MAC: testMAC,
			IP: netip.MustParsePrefix("10.0.0.5/32"),
			LocalPort: dataplane.LocalPort{LinuxIf: "patch2tun:3", OVS: &dataplane.OVSPort{Plugged: true, PortNumber: 2, VLAN: 3},
				Raw: `{"linuxif":"patch2tun:3","ovs":{"plugged":true,"port_number":2,"vlan":3}}`}}},
		{"evpn wildcard (no IP)",
			`{"vpn_type":"evpn","vpn_instance_id":"e1","mac_address":"fa:16:3e:12:34:56","local_port":"tap1"}`,
			vpn.DetachRequest{Type: vpn.EVPN, InstanceID: "e1", MAC: testMAC,
				LocalPort: dataplane.LocalPort{LinuxIf: "tap1", Raw: `{"linuxif":"tap1"}`}}},
		{"IP string form kept",
			ipvpnBody.with("ip_address", "10.0.0.5/24", "local_port", "t").json(),
			vpn.DetachRequest{Type: vpn.IPVPN, InstanceID: "ipvpn_net1", MAC: testMAC,
				IP: netip.MustParsePrefix("10.0.0.5/24"), LocalPort: dataplane.LocalPort{LinuxIf: "t", Raw: `{"linuxif":"t"}`}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			r := call(t, newTestServer(b).Handler(), http.MethodPost, "/detach_localport", tc.body, "")
			if r.status != 200 || r.body != "null" {
				t.Fatalf("got %d %q, want 200 null", r.status, r.body)
			}
			if len(b.detaches) != 1 || len(b.attaches) != 0 {
				t.Fatalf("backend got %d attaches %d detaches, want 1 detach", len(b.attaches), len(b.detaches))
			}
			if got := b.detaches[0]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("request mismatch\n got: %s\nwant: %s", dump(got), dump(tc.want))
			}
		})
	}
}

// TestBackendErrors: *vpn.Error keeps its status and message, anything
// else is upstream's generic 500.
func TestBackendErrors(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		err    error
		status int
		desc   string
	}{
		{"not found", "/detach_localport", &vpn.Error{Status: 400, Msg: "VPN x could not be found"}, 400, "API error: VPN x could not be found"},
		{"conflict", "/attach_localport", &vpn.Error{Status: 409, Msg: "A VPN instance using vni 5 already exists."}, 409, "API error: A VPN instance using vni 5 already exists."},
		{"404", "/detach_localport", &vpn.Error{Status: 404, Msg: "gone"}, 404, "API error: gone"},
		{"wrapped", "/attach_localport", fmt.Errorf("plug: %w", &vpn.Error{Status: 400, Msg: "Port information is not consistent"}), 400, "API error: Port information is not consistent"},
		{"zero status", "/attach_localport", &vpn.Error{Msg: "odd"}, 400, "API error: odd"},
		{"internal attach", "/attach_localport", errors.New("netlink: permission denied"), 500, "An error occurred during local port plug to VPN"},
		{"internal detach", "/detach_localport", errors.New("boom"), 500, "An error occurred during local port unplug from VPN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend()
			b.err = tc.err
			r := call(t, newTestServer(b).Handler(), http.MethodPost, tc.path, ipvpnBody.json(), "")
			if r.status != tc.status {
				t.Fatalf("status %d, want %d", r.status, tc.status)
			}
			e := decodeError(t, r)
			if e.Description != tc.desc || e.Code != tc.status {
				t.Errorf("got %d %q, want %d %q", e.Code, e.Description, tc.status, tc.desc)
			}
		})
	}
}
