package testenv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// FRRVPNRoute is one path of FRR's IPv4 VPN table (RFC 4364).
type FRRVPNRoute struct {
	RD      string
	Prefix  netip.Prefix
	NextHop netip.Addr
	// Label is the received MPLS label (RFC 8277 §2).
	Label uint32
	// RTs are the route targets ("64512:7"); ExtCommunity is FRR's whole
	// extended community string ("RT:64512:7 ET:8").
	RTs          []string
	ExtCommunity string
	Valid, Best  bool
	PeerID       string
}

// VPNv4Routes lists every path of bgpd's IPv4 VPN table, sorted by RD and
// prefix. The table listing (show bgp ipv4 vpn json) lacks communities and
// labels, so each route is then read in detail (show bgp ipv4 vpn rd <rd>
// <prefix> json): one vtysh call per route, meant for small test tables.
func (f *FRR) VPNv4Routes() ([]FRRVPNRoute, error) {
	var table struct {
		Routes struct {
			RDs map[string]map[string]json.RawMessage `json:"routeDistinguishers"`
		} `json:"routes"`
	}
	if err := f.vtyJSON(&table, "show bgp ipv4 vpn json"); err != nil {
		return nil, err
	}
	var rs []FRRVPNRoute
	for rd, prefixes := range table.Routes.RDs {
		for prefix := range prefixes {
			pfx, err := netip.ParsePrefix(prefix)
			if err != nil {
				return nil, fmt.Errorf("show bgp ipv4 vpn json: bad prefix %q under RD %s: %w", prefix, rd, err)
			}
			paths, err := f.vpnDetail(rd, pfx)
			if err != nil {
				return nil, err
			}
			rs = append(rs, paths...)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].RD != rs[j].RD {
			return rs[i].RD < rs[j].RD
		}
		return rs[i].Prefix.String() < rs[j].Prefix.String()
	})
	return rs, nil
}

// vpnDetail reads the paths of one VPN route.
func (f *FRR) vpnDetail(rd string, pfx netip.Prefix) ([]FRRVPNRoute, error) {
	cmd := fmt.Sprintf("show bgp ipv4 vpn rd %s %s json", rd, pfx)
	var detail map[string]struct {
		Paths []struct {
			Valid bool `json:"valid"`
			Best  struct {
				Overall bool `json:"overall"`
			} `json:"bestpath"`
			ExtComm struct {
				String string `json:"string"`
			} `json:"extendedCommunity"`
			Label    uint32 `json:"remoteLabel"`
			NextHops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				ID string `json:"peerId"`
			} `json:"peer"`
		} `json:"paths"`
	}
	if err := f.vtyJSON(&detail, cmd); err != nil {
		return nil, err
	}
	var rs []FRRVPNRoute
	for _, p := range detail[rd].Paths {
		r := FRRVPNRoute{RD: rd, Prefix: pfx, Label: p.Label, ExtCommunity: p.ExtComm.String,
			Valid: p.Valid, Best: p.Best.Overall, PeerID: p.Peer.ID}
		if len(p.NextHops) > 0 {
			r.NextHop, _ = netip.ParseAddr(p.NextHops[0].IP)
		}
		r.RTs = frrRTs(p.ExtComm.String)
		rs = append(rs, r)
	}
	return rs, nil
}

// frrRTs extracts the route targets from FRR's extended community string
// ("RT:64512:100 ET:8" gives ["64512:100"]).
func frrRTs(s string) []string {
	var rts []string
	for _, w := range strings.Fields(s) {
		if rt, ok := strings.CutPrefix(w, "RT:"); ok {
			rts = append(rts, rt)
		}
	}
	return rts
}
