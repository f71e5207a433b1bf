package controller

import (
	"fmt"
	"slices"
	"sort"
	"testing"
)

// keysOf returns the sorted keys of o.
func keysOf(o obj) []string {
	var k []string
	for x := range o {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func TestNetworkCRUD(t *testing.T) {
	e := newEnv(t, opts{vnis: "100:109", rtnn: "500:509"})
	n := e.network(obj{"name": "net1", "project_id": "p1"})
	want := []string{"admin_state_up", "created_at", "description", "id", "name", "project_id",
		"provider:network_type", "provider:physical_network", "provider:segmentation_id", "revision_number",
		"route_targets", "shared", "status", "subnets", "tenant_id", "updated_at"}
	if got := keysOf(n); !slices.Equal(got, want) {
		t.Fatalf("network keys %v, want %v", got, want)
	}
	seg := num(n, "provider:segmentation_id")
	if seg < 100 || seg > 109 || str(n, "provider:network_type") != "vxlan" || str(n, "tenant_id") != "p1" ||
		n["admin_state_up"] != true || str(n, "status") != "ACTIVE" {
		t.Fatalf("bad network %v", n)
	}
	rts := n["route_targets"].([]any)
	var nn int
	if len(rts) != 1 || func() bool { _, err := fmt.Sscanf(rts[0].(string), "64512:%d", &nn); return err != nil }() || nn < 500 || nn > 509 {
		t.Fatalf("route targets %v, want one 64512:<500..509>", rts)
	}
	id := str(n, "id")
	if got := e.must(200, "GET", "/v2.0/networks/"+id, nil, "network"); str(got, "name") != "net1" {
		t.Fatalf("show: %v", got)
	}
	up := e.must(200, "PUT", "/v2.0/networks/"+id, obj{"network": obj{"name": "renamed", "admin_state_up": false}}, "network")
	if str(up, "name") != "renamed" || up["admin_state_up"] != false || num(up, "revision_number") != 2 ||
		num(up, "provider:segmentation_id") != seg {
		t.Fatalf("update: %v", up)
	}
	l := e.must(200, "GET", "/v2.0/networks?name=renamed&fields=id&fields=name", nil, "")
	nets := l["networks"].([]any)
	if len(nets) != 1 || !slices.Equal(keysOf(nets[0].(obj)), []string{"id", "name"}) {
		t.Fatalf("filtered list: %v", l)
	}
	if l := e.must(200, "GET", "/v2.0/networks?name=other", nil, ""); len(l["networks"].([]any)) != 0 {
		t.Fatalf("filter name=other matched: %v", l)
	}
	e.must(204, "DELETE", "/v2.0/networks/"+id, nil, "")
	if r := e.do("GET", "/v2.0/networks/"+id, nil); r.status != 404 || r.errType() != "NetworkNotFound" {
		t.Fatalf("show after delete: %d %s", r.status, r.raw)
	}
	// The segmentation id and route target were released: the keyspace
	// holds no allocation.
	if s := snapshot(t, e.st.Client); slices.ContainsFunc([]string{"alloc/vni", "alloc/rt", "networks/"}, func(k string) bool {
		return containsStr(s, k)
	}) {
		t.Fatalf("state left after delete:\n%s", s)
	}
}

func containsStr(s, sub string) bool {
	return len(sub) > 0 && len(s) >= len(sub) && indexOf(s, sub) >= 0
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestSubnetCRUD(t *testing.T) {
	e := newEnv(t, opts{})
	net := str(e.network(obj{}), "id")
	s := e.subnet(net, "10.1.0.0/24", obj{"name": "s1"})
	want := []string{"allocation_pools", "cidr", "created_at", "description", "enable_dhcp", "gateway_ip", "id",
		"ip_version", "name", "network_id", "project_id", "revision_number", "tenant_id", "updated_at"}
	if got := keysOf(s); !slices.Equal(got, want) {
		t.Fatalf("subnet keys %v, want %v", got, want)
	}
	pools := fmt.Sprint(s["allocation_pools"])
	if str(s, "gateway_ip") != "10.1.0.1" || pools != "[map[end:10.1.0.254 start:10.1.0.2]]" || num(s, "ip_version") != 4 {
		t.Fatalf("subnet defaults: %v", s)
	}
	s2 := e.subnet(net, "10.2.0.0/24", obj{"gateway_ip": nil, "allocation_pools": []obj{{"start": "10.2.0.10", "end": "10.2.0.20"}}})
	if s2["gateway_ip"] != nil || fmt.Sprint(s2["allocation_pools"]) != "[map[end:10.2.0.20 start:10.2.0.10]]" {
		t.Fatalf("subnet with pools: %v", s2)
	}
	n := e.must(200, "GET", "/v2.0/networks/"+net, nil, "network")
	if fmt.Sprint(n["subnets"]) != fmt.Sprint([]any{str(s, "id"), str(s2, "id")}) {
		t.Fatalf("network subnets %v", n["subnets"])
	}
	// 10.1.0.254 is inside the default pool: refused.
	if r := e.do("PUT", "/v2.0/subnets/"+str(s, "id"), obj{"subnet": obj{"gateway_ip": "10.1.0.254"}}); r.status != 409 || r.errType() != "GatewayConflictWithAllocationPools" {
		t.Fatalf("gateway in pool: %d %s", r.status, r.raw)
	}
	up := e.must(200, "PUT", "/v2.0/subnets/"+str(s2, "id"), obj{"subnet": obj{"gateway_ip": "10.2.0.1", "name": "x"}}, "subnet")
	if str(up, "gateway_ip") != "10.2.0.1" || str(up, "name") != "x" || num(up, "revision_number") != 2 {
		t.Fatalf("update: %v", up)
	}
	l := e.must(200, "GET", "/v2.0/subnets?network_id="+net+"&fields=cidr", nil, "")
	var cidrs []string
	for _, x := range l["subnets"].([]any) {
		if len(x.(obj)) != 1 {
			t.Fatalf("fields=cidr gave %v", x)
		}
		cidrs = append(cidrs, str(x.(obj), "cidr"))
	}
	sort.Strings(cidrs)
	if fmt.Sprint(cidrs) != "[10.1.0.0/24 10.2.0.0/24]" {
		t.Fatalf("list: %v", l)
	}
	e.must(204, "DELETE", "/v2.0/subnets/"+str(s2, "id"), nil, "")
	n = e.must(200, "GET", "/v2.0/networks/"+net, nil, "network")
	if fmt.Sprint(n["subnets"]) != fmt.Sprint([]any{str(s, "id")}) {
		t.Fatalf("network subnets after delete %v", n["subnets"])
	}
}

func TestPortCRUD(t *testing.T) {
	e := newEnv(t, opts{vnis: "7:7"})
	net := str(e.network(obj{}), "id")
	sub := str(e.subnet(net, "10.0.0.0/29", nil), "id")
	p2 := e.port(net, obj{"mac_address": "FA:16:3E:00:00:01", "fixed_ips": []obj{{"ip_address": "10.0.0.6"}}})
	if str(p2, "mac_address") != "fa:16:3e:00:00:01" || fixedIP(p2) != "10.0.0.6" {
		t.Fatalf("given MAC/IP: %v", p2)
	}
	p := e.port(net, obj{"name": "vm1", "device_id": "dev", "device_owner": "compute:nova"})
	want := []string{"admin_state_up", "binding:host_id", "binding:profile", "binding:vif_details", "binding:vif_type",
		"binding:vnic_type", "created_at", "description", "device_id", "device_owner", "fixed_ips", "id", "mac_address",
		"name", "network_id", "project_id", "revision_number", "security_groups", "status", "tenant_id", "updated_at"}
	if got := keysOf(p); !slices.Equal(got, want) {
		t.Fatalf("port keys %v, want %v", got, want)
	}
	if m := str(p, "mac_address"); len(m) != 17 || m[:9] != "fa:16:3e:" {
		t.Fatalf("generated MAC %q", m)
	}
	ip := fixedIP(p)
	if ip < "10.0.0.2" || ip > "10.0.0.5" || str(p["fixed_ips"].([]any)[0].(obj), "subnet_id") != sub {
		t.Fatalf("allocated fixed_ips %v, want one of 10.0.0.2-5 in %s", p["fixed_ips"], sub)
	}
	if str(p, "status") != "DOWN" || str(p, "binding:vif_type") != "unbound" {
		t.Fatalf("unbound port: %v", p)
	}
	id := str(p, "id")
	newIP := "10.0.0.5"
	if ip == newIP {
		newIP = "10.0.0.4"
	}
	up := e.must(200, "PUT", "/v2.0/ports/"+id, obj{"port": obj{"binding:host_id": "compute1",
		"fixed_ips": []obj{{"subnet_id": sub, "ip_address": newIP}}}}, "port")
	if str(up, "binding:host_id") != "compute1" || fixedIP(up) != newIP || str(up, "binding:vif_type") != "bridge" {
		t.Fatalf("update: %v", up)
	}
	// The old address is free again, the new one taken.
	if r := e.do("POST", "/v2.0/ports", obj{"port": obj{"network_id": net, "fixed_ips": []obj{{"ip_address": newIP}}}}); r.errType() != "IpAddressAlreadyAllocated" {
		t.Fatalf("%s should be taken: %s", newIP, r.raw)
	}
	e.port(net, obj{"fixed_ips": []obj{{"ip_address": ip}}})
	st := e.must(200, "PUT", "/v1/ports/"+id+"/status", obj{"status": "ACTIVE"}, "port")
	if str(st, "status") != "ACTIVE" {
		t.Fatalf("status: %v", st)
	}
	if st := e.must(200, "PUT", "/v2.0/ports/"+id, obj{"port": obj{"name": "same host"}}, "port"); str(st, "status") != "ACTIVE" {
		t.Fatalf("status after a rename: %v", st)
	}
	if st := e.must(200, "PUT", "/v2.0/ports/"+id, obj{"port": obj{"binding:host_id": "compute2"}}, "port"); str(st, "status") != "DOWN" {
		t.Fatalf("status after a move: %v", st)
	}
	e.must(200, "PUT", "/v2.0/ports/"+id, obj{"port": obj{"binding:host_id": "compute1"}}, "port")
	l := e.must(200, "GET", "/v2.0/ports?network_id="+net+"&binding:host_id=compute1&fields=id", nil, "")
	if fmt.Sprint(l) != fmt.Sprintf("map[ports:[map[id:%s]]]", id) {
		t.Fatalf("filtered list: %v", l)
	}
	l = e.must(200, "GET", "/v2.0/ports?fixed_ips=ip_address%3D10.0.0.6&fields=id", nil, "")
	if fmt.Sprint(l) != fmt.Sprintf("map[ports:[map[id:%s]]]", str(p2, "id")) {
		t.Fatalf("fixed_ips filter: %v", l)
	}
	e.must(204, "DELETE", "/v2.0/ports/"+id, nil, "")
	if r := e.do("GET", "/v2.0/ports/"+id, nil); r.status != 404 || r.errType() != "PortNotFound" {
		t.Fatalf("show after delete: %s", r.raw)
	}
	e.port(net, obj{"fixed_ips": []obj{{"ip_address": newIP}}}) // released
}

func TestAuthToken(t *testing.T) {
	e := newEnv(t, opts{token: "s3cret"})
	if r := e.do("GET", "/v2.0/networks", nil); r.status != 401 || r.errType() != "HTTPUnauthorized" {
		t.Fatalf("no token: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v2.0/networks", nil, "Authorization", "Bearer wrong"); r.status != 401 {
		t.Fatalf("wrong token: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v2.0/networks", nil, "Authorization", "Bearer s3cret"); r.status != 200 {
		t.Fatalf("bearer token: %d %s", r.status, r.raw)
	}
	if r := e.do("GET", "/v2.0/networks", nil, "X-Auth-Token", "s3cret"); r.status != 200 {
		t.Fatalf("X-Auth-Token: %d %s", r.status, r.raw)
	}
}

func TestRTFromSegmentationID(t *testing.T) {
	e := newEnv(t, opts{vnis: "4242:4242", asn: 65000})
	n := e.network(obj{})
	if num(n, "provider:segmentation_id") != 4242 || fmt.Sprint(n["route_targets"]) != "[65000:4242]" {
		t.Fatalf("network %v: want VNI 4242 and RT 65000:4242", n)
	}
	// An explicit segmentation id outside the ranges is allowed if free.
	n2 := e.network(obj{"provider:segmentation_id": 77})
	if fmt.Sprint(n2["route_targets"]) != "[65000:77]" {
		t.Fatalf("explicit segmentation id: %v", n2)
	}
	if r := e.do("POST", "/v2.0/networks", obj{"network": obj{"provider:segmentation_id": 77}}); r.status != 409 || r.errType() != "TunnelIdInUse" {
		t.Fatalf("duplicate segmentation id: %d %s", r.status, r.raw)
	}
}
