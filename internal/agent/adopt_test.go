package agent

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

func TestStale(t *testing.T) {
	desired := map[string][]Attachment{}
	for _, b := range []struct{ port, body string }{
		{"p1", `{"vpn_type":"evpn","vpn_instance_id":"evpn_n","mac_address":"FA:16:3E:00:00:01","ip_address":"10.0.0.1","local_port":{"linuxif":"tap1"}}`},
		{"p2", `{"vpn_type":"evpn","vpn_instance_id":"evpn_n","mac_address":"fa:16:3e:00:00:02","local_port":"tap2"}`},
	} {
		a, err := ParseAttachment(json.RawMessage(b.body))
		if err != nil {
			t.Fatal(err)
		}
		desired[b.port] = []Attachment{a}
	}
	eps := []Endpoint{
		// Desired, spelled as the looking glass spells it: kept.
		{VPNType: "evpn", InstanceID: "evpn_n", LinuxIF: "tap1", MAC: "fa:16:3e:00:00:01", IP: "10.0.0.1/32", PortID: "p1"},
		{VPNType: "evpn", InstanceID: "evpn_n", LinuxIF: "tap2", MAC: "fa:16:3e:00:00:02", PortID: "p2"},
		// A desired port's old address: stale.
		{VPNType: "evpn", InstanceID: "evpn_n", LinuxIF: "tap1", MAC: "fa:16:3e:00:00:01", IP: "10.0.0.7/32", PortID: "p1"},
		// A port gone from this host: stale (IP VPN too).
		{VPNType: "ipvpn", InstanceID: "ipvpn_n", LinuxIF: "tap3", MAC: "fa:16:3e:00:00:03", IP: "10.0.0.3/32", PortID: "p3"},
		// Attached by hand (no port description): never touched.
		{VPNType: "evpn", InstanceID: "evpn_n", LinuxIF: "ns-vm", MAC: "fa:16:3e:00:00:04", IP: "10.0.0.4/32"},
	}
	var got []string
	for port, l := range Stale(eps, desired) {
		for _, a := range l {
			got = append(got, port+" "+string(a.DetachBody()))
		}
	}
	sort.Strings(got)
	want := []string{
		`p1 {"ip_address":"10.0.0.7/32","local_port":{"linuxif":"tap1"},"mac_address":"fa:16:3e:00:00:01","vpn_instance_id":"evpn_n","vpn_type":"evpn"}`,
		`p3 {"ip_address":"10.0.0.3/32","local_port":{"linuxif":"tap3"},"mac_address":"fa:16:3e:00:00:03","vpn_instance_id":"ipvpn_n","vpn_type":"ipvpn"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Stale =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
