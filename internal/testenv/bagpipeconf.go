package testenv

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// BagpipeConf describes an upstream-style bagpipe-bgp bgp.conf.
type BagpipeConf struct {
	// LocalAddress is [BGP] local_address. Required.
	LocalAddress netip.Addr
	// Peers is [BGP] peers, comma-separated.
	Peers []netip.Addr
	// AS is [BGP] my_as. Default 64512.
	AS uint32
	// BGPPort is [BGP] bgp_port; 0 leaves it out (default 179).
	BGPPort int
	// APIHost and APIPort are [API] host and port. Defaults 127.0.0.1 and a
	// free port.
	APIHost string
	APIPort int
	// Passive is [BGP] passive (our addition), written only when true.
	Passive bool
	// EnableRTC is [BGP] enable_rtc; nil leaves it out (default true).
	EnableRTC *bool
	// EVPNDriver and IPVPNDriver are the dataplane_driver of
	// [DATAPLANE_DRIVER_EVPN] and [DATAPLANE_DRIVER_IPVPN]. Default "dummy".
	EVPNDriver, IPVPNDriver string
	// Extra adds or overrides options: section -> option -> value. Sections
	// named like the standard ones (any case) are merged into them.
	Extra map[string]map[string]string
}

// WriteBagpipeConf writes c as dir/bgp.conf and returns the file's path.
// Sections are [BGP], [API], [DATAPLANE_DRIVER_EVPN],
// [DATAPLANE_DRIVER_IPVPN], then the other Extra sections sorted by name;
// options within a section are sorted by name.
func WriteBagpipeConf(t testing.TB, dir string, c BagpipeConf) string {
	t.Helper()
	if !c.LocalAddress.IsValid() {
		t.Fatalf("testenv: BagpipeConf.LocalAddress is required (the [BGP] local_address)")
	}
	path := filepath.Join(dir, "bgp.conf")
	if err := os.WriteFile(path, []byte(bagpipeConfText(t, c)), 0o644); err != nil {
		t.Fatalf("testenv: cannot write %s: %v", path, err)
	}
	return path
}

// bagpipeConfText renders c, filling in defaults (a free API port).
func bagpipeConfText(t testing.TB, c BagpipeConf) string {
	t.Helper()
	if c.AS == 0 {
		c.AS = 64512
	}
	if c.APIHost == "" {
		c.APIHost = "127.0.0.1"
	}
	if c.APIPort == 0 {
		c.APIPort = FreePort(t)
	}
	if c.EVPNDriver == "" {
		c.EVPNDriver = "dummy"
	}
	if c.IPVPNDriver == "" {
		c.IPVPNDriver = "dummy"
	}
	peers := make([]string, len(c.Peers))
	for i, p := range c.Peers {
		peers[i] = p.String()
	}
	bgp := map[string]string{
		"local_address": c.LocalAddress.String(),
		"peers":         strings.Join(peers, ","),
		"my_as":         strconv.FormatUint(uint64(c.AS), 10),
	}
	if c.BGPPort != 0 {
		bgp["bgp_port"] = strconv.Itoa(c.BGPPort)
	}
	if c.Passive {
		bgp["passive"] = "true"
	}
	if c.EnableRTC != nil {
		bgp["enable_rtc"] = strconv.FormatBool(*c.EnableRTC)
	}
	sections := map[string]map[string]string{
		"BGP":                    bgp,
		"API":                    {"host": c.APIHost, "port": strconv.Itoa(c.APIPort)},
		"DATAPLANE_DRIVER_EVPN":  {"dataplane_driver": c.EVPNDriver},
		"DATAPLANE_DRIVER_IPVPN": {"dataplane_driver": c.IPVPNDriver},
	}
	order := []string{"BGP", "API", "DATAPLANE_DRIVER_EVPN", "DATAPLANE_DRIVER_IPVPN"}
	var extra []string
	for name, opts := range c.Extra {
		sec := name
		for _, std := range order {
			if strings.EqualFold(std, name) {
				sec = std
			}
		}
		if sections[sec] == nil {
			sections[sec] = map[string]string{}
			extra = append(extra, sec)
		}
		for k, v := range opts {
			sections[sec][k] = v
		}
	}
	sort.Strings(extra)
	var b strings.Builder
	for i, sec := range append(order, extra...) {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", sec)
		keys := make([]string, 0, len(sections[sec]))
		for k := range sections[sec] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s = %s\n", k, sections[sec][k])
		}
	}
	return b.String()
}
