package testenv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"
)

func TestParseGoBGPPath(t *testing.T) {
	tests := []struct {
		name, prefix, json string
		want               string // fmt %v of the route without the raw fields
	}{
		{
			name:   "evpn macadv with RT and VXLAN encap",
			prefix: "[type:macadv][rd:127.0.0.1:5][etag:0][mac:aa:bb:cc:dd:ee:01][ip:10.0.0.1]",
			// As printed by gobgp 3.10 -j global rib -a evpn.
			json: `{"nlri":{"type":2,"value":{"rd":{"type":1,"admin":"127.0.0.1","assigned":5},"esi":"single-homed","etag":0,"mac":"aa:bb:cc:dd:ee:01","ip":"10.0.0.1","labels":[100]}},"age":1,"best":true,` +
				`"attrs":[{"type":1,"value":2},{"type":16,"value":[{"type":0,"subtype":2,"value":"64512:100"},{"type":3,"subtype":12,"tunnel_type":8}]},` +
				`{"type":14,"nexthop":"127.0.0.1","afi":25,"safi":70,"value":[]}],"stale":false}`,
			want: "best=true nh=127.0.0.1 rd=127.0.0.1:5 type=2 mac=aa:bb:cc:dd:ee:01 ip=10.0.0.1 etag=0 labels=[100] rts=[64512:100] ecs=[0/2/64512:100/0 3/12//8]",
		},
		{
			name:   "vpnv4 with two-octet-AS RD, not best",
			prefix: "64512:7:10.1.0.0/24",
			json: `{"nlri":{"prefix":"10.1.0.0/24","labels":[200],"rd":{"type":0,"admin":64512,"assigned":7}},"best":false,` +
				`"attrs":[{"type":1,"value":2},{"type":16,"value":[{"type":0,"subtype":2,"value":"64512:7"},{"type":2,"subtype":2,"value":"4200000000:7"}]},` +
				`{"type":14,"nexthop":"127.0.0.2","afi":1,"safi":128,"value":[]}]}`,
			want: "best=false nh=127.0.0.2 rd=64512:7 type=0 mac= ip= etag=0 labels=[200] rts=[64512:7 4200000000:7] ecs=[0/2/64512:7/0 2/2/4200000000:7/0]",
		},
		{
			name:   "ipv4 unicast NEXT_HOP attribute",
			prefix: "10.9.0.0/16",
			json:   `{"nlri":{"prefix":"10.9.0.0/16"},"best":true,"attrs":[{"type":1,"value":0},{"type":3,"nexthop":"","value":"127.0.0.7"}]}`,
			want:   "best=true nh=127.0.0.7 rd= type=0 mac= ip= etag=0 labels=[] rts=[] ecs=[]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseGoBGPPath(tc.prefix, json.RawMessage(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			var ecs []string
			for _, e := range r.ExtCommunities {
				ecs = append(ecs, fmt.Sprintf("%d/%d/%s/%d", e.Type, e.Subtype, e.Value, e.TunnelType))
			}
			got := fmt.Sprintf("best=%v nh=%v rd=%s type=%d mac=%s ip=%s etag=%d labels=%v rts=%v ecs=%v",
				r.Best, r.NextHop, r.RD, r.EVPNType, r.MAC, r.IP, r.ETag, fmtList(r.Labels), fmtList(r.RTs), fmtList(ecs))
			if got != tc.want {
				t.Errorf("parsed\n got %s\nwant %s", got, tc.want)
			}
			if r.Prefix != tc.prefix {
				t.Errorf("Prefix = %q, want %q", r.Prefix, tc.prefix)
			}
		})
	}
	if _, err := parseGoBGPPath("x", json.RawMessage(`{"attrs":[7]}`)); err == nil {
		t.Error("a non-object attribute was accepted")
	}
}

// fmtList prints a nil and an empty slice alike.
func fmtList[T any](s []T) string {
	if len(s) == 0 {
		return "[]"
	}
	return fmt.Sprint(s)
}

func TestGoBGPState(t *testing.T) {
	tests := []struct{ raw, want string }{
		{``, "unknown"}, // field omitted: proto3 zero value
		{`1`, "idle"},
		{`3`, "active"},
		{`6`, "established"},
		{`"ESTABLISHED"`, "established"},
		{`"BGP_FSM_OPENSENT"`, "opensent"},
		{`42`, "unknown"},
	}
	for _, tc := range tests {
		if got := gobgpState(json.RawMessage(tc.raw)); got != tc.want {
			t.Errorf("gobgpState(%s) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestCLIFamily(t *testing.T) {
	tests := []struct{ in, want string }{
		{"l2vpn-evpn", "evpn"},
		{"l3vpn-ipv4-unicast", "vpnv4"},
		{"l3vpn-ipv4-flowspec", "ipv4-l3vpn-flowspec"},
		{"rtc", "rtc"},
		{"evpn", "evpn"},
	}
	for _, tc := range tests {
		if got := cliFamily(tc.in); got != tc.want {
			t.Errorf("cliFamily(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFRRConf(t *testing.T) {
	c := FRRConfig{RouterID: netip.MustParseAddr("127.0.0.4"), AS: 64512, ListenAddr: netip.MustParseAddr("127.0.0.4"),
		Clients:   []netip.Addr{netip.MustParseAddr("127.0.0.5")},
		Neighbors: []FRRNeighbor{{Addr: netip.MustParseAddr("127.0.0.1"), Port: 17900}, {Addr: netip.MustParseAddr("127.0.0.2"), Passive: true}}}
	want := `frr defaults traditional
hostname testenv-127.0.0.4
!
router bgp 64512
 bgp router-id 127.0.0.4
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 bgp allow-martian-nexthop
 neighbor 127.0.0.5 remote-as 64512
 neighbor 127.0.0.5 passive
 neighbor 127.0.0.5 update-source 127.0.0.4
 neighbor 127.0.0.1 remote-as 64512
 neighbor 127.0.0.1 update-source 127.0.0.4
 neighbor 127.0.0.1 port 17900
 neighbor 127.0.0.1 timers connect 1
 neighbor 127.0.0.2 remote-as 64512
 neighbor 127.0.0.2 update-source 127.0.0.4
 neighbor 127.0.0.2 passive
 !
 address-family l2vpn evpn
  neighbor 127.0.0.5 activate
  neighbor 127.0.0.5 route-reflector-client
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.2 activate
 exit-address-family
 !
 address-family ipv4 vpn
  neighbor 127.0.0.5 activate
  neighbor 127.0.0.5 route-reflector-client
  neighbor 127.0.0.1 activate
  neighbor 127.0.0.2 activate
 exit-address-family
!
`
	if got := frrConf(c); got != want {
		t.Errorf("frrConf:\n%s\nwant:\n%s", got, want)
	}
}

func TestGoBGPTOML(t *testing.T) {
	c := GoBGPConfig{RouterID: netip.MustParseAddr("127.0.0.1"), AS: 64512, ListenAddr: netip.MustParseAddr("127.0.0.1"),
		ListenPort: 17900, Clients: []netip.Addr{netip.MustParseAddr("127.0.0.2")}, Families: []string{"l2vpn-evpn", "rtc"},
		Peers: []Peer{{Addr: netip.MustParseAddr("127.0.0.4")}}}
	want := `[global.config]
  as = 64512
  router-id = "127.0.0.1"
  port = 17900
  local-address-list = ["127.0.0.1"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.2"
    peer-as = 64512
  [neighbors.transport.config]
    passive-mode = true
    local-address = "127.0.0.1"
  [neighbors.route-reflector.config]
    route-reflector-client = true
    route-reflector-cluster-id = "127.0.0.1"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "rtc"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "127.0.0.4"
    peer-as = 64512
  [neighbors.transport.config]
    local-address = "127.0.0.1"
    remote-port = 179
  [neighbors.timers.config]
    connect-retry = 1
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "l2vpn-evpn"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "rtc"
`
	if got := gobgpTOML(c); got != want {
		t.Errorf("gobgpTOML:\n%s\nwant:\n%s", got, want)
	}
}
