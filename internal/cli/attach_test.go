package cli

import (
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// buildBody parses args, normalises them and builds the request as
// RestAttachMain does, with netnsMAC standing for the MAC read inside the
// namespace of a netns port (that part needs root; see the cmd tests).
func buildBody(t *testing.T, args []string, netnsMAC string) (*AttachOptions, string, error) {
	t.Helper()
	o, err := ParseAttachArgs(args, io.Discard, io.Discard)
	if err != nil {
		return nil, "", err
	}
	if err := o.Normalize(io.Discard); err != nil {
		return o, "", err
	}
	if o.NetnsMode() {
		o.Port = o.If2Netns
		if o.MAC == "" {
			o.MAC = netnsMAC
		}
	}
	b, err := o.Body()
	if err != nil {
		return o, "", err
	}
	js, err := PythonJSON(b)
	return o, string(js), err
}

// TestAttachBody: the JSON sent equals what upstream's rest_attach.py
// sends for the same options (expected strings produced by running
// upstream's tool, the Python 3 str/bytes bug patched, against bagpipe-bgp;
// only attract_traffic "to" is deliberately "to_rt" here).
func TestAttachBody(t *testing.T) {
	tests := []struct {
		name string
		args string
		mac  string // MAC "read" in the namespace for netns ports
		want string
	}{{
		name: "reference §2.3.3: netns ipvpn",
		args: "--attach --port netns --ip 12.11.11.1 --network-type ipvpn --vpn-instance-id test --rt 64512:78",
		mac:  "aa:bb:cc:dd:ee:ff",
		want: `{"import_rt": ["64512:78"], "export_rt": ["64512:78"], "local_port": {"linuxif": "ns-test"}, "vpn_instance_id": "test", "vpn_type": "ipvpn", "gateway_ip": "12.11.11.254", "mac_address": "aa:bb:cc:dd:ee:ff", "ip_address": "12.11.11.1/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "evpn defaults: RT 64512:513, <type>-bagpipe-test",
		args: "--attach --network-type evpn --port tap1 --mac 52:54:00:00:00:01 --ip 10.0.0.5",
		want: `{"import_rt": ["64512:513"], "export_rt": ["64512:513"], "local_port": {"linuxif": "tap1"}, "vpn_instance_id": "evpn-bagpipe-test", "vpn_type": "evpn", "gateway_ip": "10.0.0.254", "mac_address": "52:54:00:00:00:01", "ip_address": "10.0.0.5/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "ipvpn defaults: RT 64512:512, MAC 52:54:00:99:99:22",
		args: "--detach --network-type ipvpn --port tap2 --ip 10.0.0.6/16",
		want: `{"import_rt": ["64512:512"], "export_rt": ["64512:512"], "local_port": {"linuxif": "tap2"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.0.255.254", "mac_address": "52:54:00:99:99:22", "ip_address": "10.0.0.6/16", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "netns evpn with its own namespace, interface and MAC",
		args: "--attach --network-type evpn --port netns:veth-vm1 --netns vm1 --if2vpn eth0 --ip 10.0.0.7 --mac 52:54:00:00:00:07 --vni 1001 --vpn-instance-id net1",
		want: `{"import_rt": ["64512:513"], "export_rt": ["64512:513"], "local_port": {"linuxif": "veth-vm1"}, "vpn_instance_id": "net1", "vpn_type": "evpn", "gateway_ip": "10.0.0.254", "mac_address": "52:54:00:00:00:07", "ip_address": "10.0.0.7/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 1001, "direction": "both"}`,
	}, {
		name: "import-only and export-only RTs: no default RT",
		args: "--attach --network-type ipvpn --port tap3 --ip 10.0.0.8 --import-rt 64512:1 --export-rt 64512:2 --export-rt 64512:3 --local-pref 200",
		want: `{"import_rt": ["64512:1"], "export_rt": ["64512:2", "64512:3"], "local_port": {"linuxif": "tap3"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.0.0.254", "mac_address": "52:54:00:99:99:22", "ip_address": "10.0.0.8/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "local_pref": 200, "direction": "both"}`,
	}, {
		name: "readvertise (sent because a to-RT is given)",
		args: "--attach --network-type ipvpn --port tap4 --ip 10.0.0.5 --gateway-ip 10.0.0.1 --rt 64512:1 --readv-from-rt 64512:77 --readv-to-rt 64512:1 --direction to-port",
		want: `{"import_rt": ["64512:1"], "export_rt": ["64512:1"], "local_port": {"linuxif": "tap4"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.0.0.1", "mac_address": "52:54:00:99:99:22", "ip_address": "10.0.0.5/24", "advertise_subnet": false, "readvertise": {"from_rt": ["64512:77"], "to_rt": ["64512:1"]}, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "to-port"}`,
	}, {
		name: "readvertise from-RT alone is not sent",
		args: "--attach --network-type ipvpn --port tap4 --ip 10.0.0.5 --readv-from-rt 64512:77",
		want: `{"import_rt": ["64512:512"], "export_rt": ["64512:512"], "local_port": {"linuxif": "tap4"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.0.0.254", "mac_address": "52:54:00:99:99:22", "ip_address": "10.0.0.5/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "attract traffic with readvertise, classifier in option order",
		args: "--attach --network-type ipvpn --port tap5 --ip 100.0.0.1 --rt 64512:1 --readv-from-rt 64512:2 --readv-to-rt 64517:5003 --redirect-rts 64517:5002 --destination-port 80 --protocol tcp --source-prefix 11.0.0.1/32",
		want: `{"import_rt": ["64512:1"], "export_rt": ["64512:1"], "local_port": {"linuxif": "tap5"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "100.0.0.254", "mac_address": "52:54:00:99:99:22", "ip_address": "100.0.0.1/24", "advertise_subnet": false, "readvertise": {"from_rt": ["64512:2"], "to_rt": ["64517:5003"]}, "attract_traffic": {"redirect_rts": ["64517:5002"], "classifier": {"destinationPort": "80", "protocol": "tcp", "sourcePrefix": "11.0.0.1/32"}}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "attract traffic to_rt + static prefixes (upstream sends \"to\": fixed)",
		args: "--attach --network-type ipvpn --port tap9 --ip 10.1.0.5 --rt 64512:1 --import-rt 64512:2 --readv-from-rt 64512:3 --readv-to-rt 64512:4 --redirect-rts 64512:5 --protocol tcp --source-prefix 1.1.1.1/32 --destination-port 80 --protocol udp --attract-to-rt 64512:6 --static-destination-prefix 2.0.0.0/8 --local-pref 120 --vni 5 --lb-consistent-hash-order 3 --direction to-port --advertise-subnet --gateway-ip 10.1.0.1",
		want: `{"import_rt": ["64512:1", "64512:2"], "export_rt": ["64512:1"], "local_port": {"linuxif": "tap9"}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.1.0.1", "mac_address": "52:54:00:99:99:22", "ip_address": "10.1.0.5/24", "advertise_subnet": true, "readvertise": {"from_rt": ["64512:3"], "to_rt": ["64512:4"]}, "attract_traffic": {"redirect_rts": ["64512:5"], "classifier": {"protocol": "udp", "sourcePrefix": "1.1.1.1/32", "destinationPort": "80"}, "to_rt": ["64512:6"], "static_destination_prefixes": ["2.0.0.0/8"]}, "lb_consistent_hash_order": 3, "vni": 5, "local_pref": 120, "direction": "to-port"}`,
	}, {
		name: "evpn plugged into an ipvpn",
		args: "--attach --network-type ipvpn --port evpn:net1vm1_evpn --vpn-instance-id net1vm1_ipvpn --mac 52:54:00:00:00:01 --ip 11.0.0.1 --rt 64512:10",
		want: `{"import_rt": ["64512:10"], "export_rt": ["64512:10"], "local_port": {"evpn": {"id": "net1vm1_evpn"}}, "vpn_instance_id": "net1vm1_ipvpn", "vpn_type": "ipvpn", "gateway_ip": "11.0.0.254", "mac_address": "52:54:00:00:00:01", "ip_address": "11.0.0.1/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "OVS preplug with VLAN, last of --advertise-subnet/--advertise-singleton wins",
		args: "--attach --network-type ipvpn --port tap6 --ip 10.0.0.9 --ovs-preplug --ovs-vlan 42 --advertise-subnet --advertise-singleton",
		want: `{"import_rt": ["64512:512"], "export_rt": ["64512:512"], "local_port": {"linuxif": "tap6", "ovs": {"port_name": "tap6", "plugged": true, "vlan": 42}}, "vpn_instance_id": "ipvpn-bagpipe-test", "vpn_type": "ipvpn", "gateway_ip": "10.0.0.254", "mac_address": "52:54:00:99:99:22", "ip_address": "10.0.0.9/24", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}, {
		name: "options mixed with ignored positional arguments, --opt=value form",
		args: "stray --attach --network-type=evpn other --port=tap7 --mac=52:54:00:00:00:02 --ip=10.0.0.2/30",
		want: `{"import_rt": ["64512:513"], "export_rt": ["64512:513"], "local_port": {"linuxif": "tap7"}, "vpn_instance_id": "evpn-bagpipe-test", "vpn_type": "evpn", "gateway_ip": "10.0.0.2", "mac_address": "52:54:00:00:00:02", "ip_address": "10.0.0.2/30", "advertise_subnet": false, "readvertise": null, "attract_traffic": {}, "lb_consistent_hash_order": 0, "vni": 0, "direction": "both"}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := buildBody(t, strings.Fields(tt.args), tt.mac)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if got != tt.want {
				t.Errorf("body\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// TestAttachNetnsNames: namespace and host interface names of netns ports.
func TestAttachNetnsNames(t *testing.T) {
	tests := []struct {
		args             string
		netns, hostIf, o string
	}{
		{"--attach --network-type evpn --port netns --ip 10.0.0.1", "evpn-bagpipe-test", "ns-evpn-bagpipe", "attach"},
		{"--detach --network-type evpn --port netns --ip 10.0.0.1 --vpn-instance-id a", "a", "ns-a", "detach"},
		{"--attach --network-type ipvpn --port netns:vm-if --netns vmns --ip 10.0.0.1", "vmns", "vm-if", "attach"},
		// upstream splits on ":" and falls back to the default name unless
		// there are exactly two parts
		{"--attach --network-type ipvpn --port netns:a:b --netns v --ip 10.0.0.1", "v", "ns-v", "attach"},
	}
	for _, tt := range tests {
		o, err := ParseAttachArgs(strings.Fields(tt.args), io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Normalize(io.Discard); err != nil {
			t.Fatalf("%s: %v", tt.args, err)
		}
		if !o.NetnsMode() || o.Netns != tt.netns || o.If2Netns != tt.hostIf || o.Operation != tt.o {
			t.Errorf("%s: netns %q host if %q op %q, want %q %q %q", tt.args, o.Netns, o.If2Netns, o.Operation, tt.netns, tt.hostIf, tt.o)
		}
	}
}

// TestAttachErrors: upstream's parser.error cases are usage errors
// (status 2), the evpn:<id> misuse is a plain error.
func TestAttachErrors(t *testing.T) {
	tests := []struct {
		args  string
		usage bool
		msg   string
	}{
		{"--network-type evpn --port tap --ip 1.1.1.1", true, "Need to specify --attach or --detach"},
		{"--attach --network-type evpn --ip 1.1.1.1", true, "Need to specify --port <localport>"},
		{"--attach --port tap --ip 1.1.1.1", true, "Need to specify --network-type"},
		{"--attach --port tap --network-type evpn", true, "Need to specify --ip"},
		{"--attach --port tap --network-type evpn --ip 1.1.1.1", true, "Need to specify --mac"},
		{"--attach --port tap --network-type ipvpn --ip 1.1.1.1 --redirect-rts 1:1", true, "at least one traffic classifier"},
		{"--attach --port tap --network-type ipvpn --ip 1.1.1.1 --redirect-rts 1:1 --protocol tcp --attract-to-rt 1:2", true, "static destination prefix"},
		{"--attach --port tap --network-type ipvpn --ip 1.1.1.1/32", true, "give --gateway-ip"},
		{"--attach --port tap --network-type ipvpn --ip nonsense", true, "not an IP address"},
		{"--attach --port evpn:x --network-type evpn --mac 52:54:00:00:00:01 --ip 1.1.1.1", false, "can only plug an evpn into an ipvpn"},
	}
	for _, tt := range tests {
		_, _, err := buildBody(t, strings.Fields(tt.args), "")
		var ue *UsageError
		if err == nil || !strings.Contains(err.Error(), tt.msg) || errors.As(err, &ue) != tt.usage {
			t.Errorf("%s: error %v (usage error: %v), want one containing %q (usage error: %v)", tt.args, err, errors.As(err, &ue), tt.msg, tt.usage)
		}
	}
	for _, args := range []string{"--network-type l3vpn", "--direction inbound", "--vni x", "--attach=maybe"} {
		if _, err := ParseAttachArgs(strings.Fields(args), io.Discard, io.Discard); err == nil {
			t.Errorf("%s: parsed without error", args)
		}
	}
}

// TestDefaultGateway: second-to-last address of the subnet (netaddr's
// IPNetwork(ip)[-2]).
func TestDefaultGateway(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"10.0.0.5/24", "10.0.0.254"},
		{"12.11.11.1/24", "12.11.11.254"},
		{"192.168.1.77/25", "192.168.1.126"},
		{"192.168.1.200/25", "192.168.1.254"},
		{"10.1.2.3/8", "10.255.255.254"},
		{"10.0.0.1/30", "10.0.0.2"},
		{"10.0.0.1/31", "10.0.0.0"},
		{"0.0.0.0/0", "255.255.255.254"},
		{"2001:db8::1/64", "2001:db8::ffff:ffff:ffff:fffe"},
		{"2001:db8::1/127", "2001:db8::"},
	}
	for _, tt := range tests {
		got, err := DefaultGateway(tt.ip)
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("DefaultGateway(%s) = %v, %v; want %s", tt.ip, got, err, tt.want)
		}
	}
	for _, ip := range []string{"10.0.0.1/32", "2001:db8::1/128", "10.0.0.1", "x/24"} {
		if got, err := DefaultGateway(ip); err == nil {
			t.Errorf("DefaultGateway(%s) = %v, want an error", ip, got)
		}
	}
}

// TestHostIfName: "ns-" + namespace, cut to 15 characters (IFNAMSIZ-1).
func TestHostIfName(t *testing.T) {
	for ns, want := range map[string]string{
		"test":               "ns-test",
		"ipvpn-bagpipe-test": "ns-ipvpn-bagpip",
		"123456789012":       "ns-123456789012",
		"1234567890123":      "ns-123456789012",
	} {
		if got := HostIfName(ns); got != want {
			t.Errorf("HostIfName(%q) = %q, want %q", ns, got, want)
		}
	}
}

// TestPythonJSON: json.dumps separators and ASCII escaping, strings
// untouched.
func TestPythonJSON(t *testing.T) {
	v := map[string]any{"a": []any{1, "x,y:z", "caf\u00e9 \U0001F600 <&>", nil, true}, "b": map[string]any{}, "c\"": "q\\\",:"}
	got, err := PythonJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a": [1, "x,y:z", "caf\u00e9 \ud83d\ude00 <&>", null, true], "b": {}, "c\"": "q\\\",:"}`
	if string(got) != want {
		t.Errorf("PythonJSON\n got: %s\nwant: %s", got, want)
	}
}
