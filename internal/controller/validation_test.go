package controller

import (
	"fmt"
	"strings"
	"testing"
)

// TestRejectedRequestsChangeNothing sends each invalid request and checks
// its status, Neutron error type and message, and that the etcd keyspace
// (every key, its mod revision, and the store revision) is unchanged.
func TestRejectedRequestsChangeNothing(t *testing.T) {
	e := newEnv(t, opts{vnis: "10:11", rtnn: "200:201"})
	net := str(e.network(obj{"name": "n"}), "id")
	sub := str(e.subnet(net, "10.0.0.0/28", obj{"allocation_pools": []obj{{"start": "10.0.0.2", "end": "10.0.0.3"}}}), "id")
	p := e.port(net, obj{"mac_address": "fa:16:3e:aa:bb:cc", "fixed_ips": []obj{{"ip_address": "10.0.0.2"}}, "binding:host_id": "h1"})
	net2 := str(e.network(obj{"name": "full"}), "id") // VNI and RT ranges now exhausted
	e.port(net, obj{"mac_address": "fa:16:3e:aa:bb:cd", "fixed_ips": []obj{}})
	e.port(net2, obj{"mac_address": "fa:16:3e:aa:bb:ce"}) // MACs are unique per network
	portB := str(e.port(net, obj{"mac_address": "fa:16:3e:aa:bb:ce", "fixed_ips": []obj{}}), "id")
	unknownUUID := "11111111-2222-4333-8444-555555555555"

	cases := []struct {
		name, method, path string
		body               any
		status             int
		typ, msg           string
	}{
		{"IP outside subnet", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"subnet_id": sub, "ip_address": "10.9.0.5"}}}},
			400, "InvalidIpForSubnet", "IP address 10.9.0.5 is not a valid IP for the specified subnet"},
		{"IP outside every subnet", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": "10.9.0.5"}}}},
			400, "InvalidIpForNetwork", "not a valid IP for any of the subnets"},
		{"broadcast address", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": "10.0.0.15"}}}},
			400, "InvalidIpForSubnet", "10.0.0.15"},
		{"IP taken", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": "10.0.0.2"}}}},
			409, "IpAddressAlreadyAllocated", "IP address 10.0.0.2 already allocated in subnet " + sub},
		{"MAC taken", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "mac_address": "FA:16:3E:AA:BB:CC", "fixed_ips": []obj{{"ip_address": "10.0.0.3"}}}},
			409, "MacAddressInUse", "The mac address fa:16:3e:aa:bb:cc is in use"},
		{"MAC taken on update", "PUT", "/v2.0/ports/" + portB, obj{"port": obj{"mac_address": "fa:16:3e:aa:bb:cd", "name": "x"}},
			409, "MacAddressInUse", "The mac address fa:16:3e:aa:bb:cd is in use"},
		{"IP taken on update", "PUT", "/v2.0/ports/" + portB, obj{"port": obj{"fixed_ips": []obj{{"ip_address": "10.0.0.2"}}, "name": "x"}},
			409, "IpAddressAlreadyAllocated", "IP address 10.0.0.2 already allocated"},
		{"bad MAC", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "mac_address": "01:00:5e:00:00:01"}},
			400, "InvalidInput", "not a valid unicast MAC address"},
		{"network in use", "DELETE", "/v2.0/networks/" + net, nil,
			409, "NetworkInUse", "There are one or more ports still in use on the network"},
		{"subnet in use", "DELETE", "/v2.0/subnets/" + sub, nil,
			409, "SubnetInUse", "One or more ports have an IP allocation from this subnet"},
		{"VNI range exhausted", "POST", "/v2.0/networks", obj{"network": obj{"name": "x"}},
			503, "NoNetworkAvailable", "No segmentation id is free in the VNI ranges 10:11 (all 2 in use)"},
		{"unknown field on create", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "colour": "blue"}},
			400, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"unknown field on update", "PUT", "/v2.0/networks/" + net, obj{"network": obj{"mtu": 1450}},
			400, "HTTPBadRequest", "Unrecognized attribute(s) 'mtu'"},
		{"read-only field on update", "PUT", "/v2.0/networks/" + net, obj{"network": obj{"provider:segmentation_id": 5}},
			400, "HTTPBadRequest", "Cannot update read-only attribute provider:segmentation_id"},
		{"unknown filter", "GET", "/v2.0/ports?colour=blue", nil,
			400, "HTTPBadRequest", "'colour' is not a valid attribute for filtering"},
		{"unknown selected field", "GET", "/v2.0/ports?fields=colour", nil,
			400, "HTTPBadRequest", "'colour' is not a valid field to select"},
		{"bad UUID in body", "POST", "/v2.0/ports", obj{"port": obj{"network_id": "not-a-uuid"}},
			400, "InvalidInput", "Invalid input for network_id. Reason: 'not-a-uuid' is not a valid UUID."},
		{"bad UUID in fixed_ips", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"subnet_id": "x"}}}},
			400, "InvalidInput", "'x' is not a valid UUID"},
		{"bad UUID in path", "GET", "/v2.0/networks/xyz", nil,
			400, "InvalidInput", "'xyz' is not a valid UUID"},
		{"bad UUID on delete", "DELETE", "/v2.0/ports/xyz", nil,
			400, "InvalidInput", "'xyz' is not a valid UUID"},
		{"unknown network", "POST", "/v2.0/ports", obj{"port": obj{"network_id": unknownUUID}},
			404, "NetworkNotFound", "Network " + unknownUUID + " could not be found."},
		{"unknown port", "DELETE", "/v2.0/ports/" + unknownUUID, nil,
			404, "PortNotFound", "could not be found"},
		{"subnet of another network", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net2, "fixed_ips": []obj{{"subnet_id": sub}}}},
			400, "InvalidInput", "fixed_ips included invalid subnet " + sub},
		{"IP pool exhausted", "POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": "10.0.0.3"}, {"subnet_id": sub}}}},
			409, "IpAddressGenerationFailure", "No more IP addresses available for subnet " + sub},
		{"non-canonical CIDR", "POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net2, "cidr": "10.5.0.1/24"}},
			400, "InvalidInput", "'10.5.0.0/24' is recommended"},
		{"overlapping subnet", "POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net, "cidr": "10.0.0.0/24"}},
			400, "InvalidInput", "overlaps with subnet " + sub},
		{"gateway outside", "POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net2, "cidr": "10.6.0.0/24", "gateway_ip": "10.7.0.1"}},
			400, "InvalidInput", "'10.7.0.1' is not a valid gateway address"},
		{"pool outside", "POST", "/v2.0/subnets", obj{"subnet": obj{"network_id": net2, "cidr": "10.6.0.0/24", "allocation_pools": []obj{{"start": "10.6.0.10", "end": "10.6.1.10"}}}},
			400, "InvalidAllocationPool", "spans beyond the subnet cidr"},
		{"wrong type", "POST", "/v2.0/networks", obj{"network": obj{"admin_state_up": "yes"}},
			400, "InvalidInput", "Invalid input for admin_state_up. Reason: \"yes\" is not a boolean."},
		{"not JSON", "POST", "/v2.0/networks", "{", 400, "HTTPBadRequest", "not a JSON object"},
		{"bulk", "POST", "/v2.0/networks", obj{"networks": []obj{{}}}, 400, "HTTPBadRequest", "bulk requests"},
		{"bad status", "PUT", "/v1/ports/" + str(p, "id") + "/status", obj{"status": "BUILD"},
			400, "InvalidInput", "'BUILD' is not one of ACTIVE, DOWN"},
		{"no such route", "GET", "/v2.0/routers", nil, 404, "HTTPNotFound", "no resource"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e.st.Client)
			r := do(t, e.srv.URL, tc.method, tc.path, tc.body)
			if r.status != tc.status || r.errType() != tc.typ || !strings.Contains(r.errMessage(), tc.msg) {
				t.Fatalf("got %d %s, want %d %s containing %q", r.status, r.raw, tc.status, tc.typ, tc.msg)
			}
			if ne := r.body["NeutronError"].(obj); fmt.Sprint(keysOf(ne)) != "[detail message type]" {
				t.Fatalf("NeutronError keys %v", keysOf(ne))
			}
			if after := snapshot(t, e.st.Client); after != before {
				t.Fatalf("rejected request changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

func TestRouteTargetRangeExhausted(t *testing.T) {
	e := newEnv(t, opts{vnis: "1:100", rtnn: "100:101"})
	seen := map[string]bool{}
	for range 2 {
		n := e.network(obj{})
		rt := fmt.Sprint(n["route_targets"])
		if seen[rt] || (rt != "[64512:100]" && rt != "[64512:101]") {
			t.Fatalf("route targets %s (seen %v)", rt, seen)
		}
		seen[rt] = true
	}
	before := snapshot(t, e.st.Client)
	r := e.do("POST", "/v2.0/networks", obj{"network": obj{}})
	if r.status != 503 || r.errType() != "RouteTargetsExhausted" || !strings.Contains(r.errMessage(), "rt_nn_ranges 100:101 (all 2 in use)") {
		t.Fatalf("third network: %d %s", r.status, r.raw)
	}
	if after := snapshot(t, e.st.Client); after != before {
		t.Fatalf("rejected request changed the store:\n%s\n%s", before, after)
	}
	// Deleting a network frees its route target.
	nets := e.must(200, "GET", "/v2.0/networks?fields=id", nil, "")["networks"].([]any)
	e.must(204, "DELETE", "/v2.0/networks/"+str(nets[0].(obj), "id"), nil, "")
	e.network(obj{})
}
