package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/bagpipe-go/bagpipe/internal/vpn"
)

// FuzzAttachBody: any attach or detach body gives 200 or a 4xx with a
// JSON error body, never a panic; a 200 comes with exactly one backend
// call whose fields are valid. Seeds are in testdata/fuzz/FuzzAttachBody.
func FuzzAttachBody(f *testing.F) {
	f.Add([]byte(ipvpnBody.json()))
	f.Add([]byte(evpnBody.json()))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/attach_localport", "/detach_localport"} {
			b := newBackend()
			r := call(t, newTestServer(b).Handler(), http.MethodPost, path, string(body), "")
			switch {
			case r.status == 200:
				if r.body != "null" {
					t.Fatalf("%s: 200 with body %q", path, r.body)
				}
				if b.calls() != 1 {
					t.Fatalf("%s: 200 with %d backend calls", path, b.calls())
				}
				var err error
				if path == "/attach_localport" {
					err = checkAttach(b.attaches[0])
				} else {
					err = checkDetach(b.detaches[0])
				}
				if err != nil {
					t.Fatalf("%s: 200 for %q but the request is invalid: %v", path, body, err)
				}
			case r.status == 400 || r.status == 413:
				if b.calls() != 0 {
					t.Fatalf("%s: %d with %d backend calls", path, r.status, b.calls())
				}
				if e := decodeError(t, r); e.Code != r.status || e.Description == "" {
					t.Fatalf("%s: error body %+v", path, e)
				}
			default:
				t.Fatalf("%s: status %d for %q (%s)", path, r.status, body, r.body)
			}
		}
	})
}

func checkCommon(t vpn.Type, id string, mac route.MAC, ip netip.Prefix, lp dataplane.LocalPort) error {
	if t != vpn.EVPN && t != vpn.IPVPN {
		return fmt.Errorf("type %q", t)
	}
	if id == "" {
		return fmt.Errorf("empty instance id")
	}
	_ = mac // any 6 bytes are a MAC
	if t == vpn.IPVPN && !ip.IsValid() {
		return fmt.Errorf("ipvpn without IP")
	}
	if ip.IsValid() && (!ip.Addr().Is4() || ip.Bits() < 0 || ip.Bits() > 32) {
		return fmt.Errorf("IP %v", ip)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(lp.Raw), &raw); err != nil {
		return fmt.Errorf("local_port raw %q: %w", lp.Raw, err)
	}
	if raw == nil {
		return fmt.Errorf("local_port raw %q is not an object", lp.Raw)
	}
	if lp.LinuxIf == "" && lp.EVPN == "" {
		return fmt.Errorf("local_port %q has neither linuxif nor evpn", lp.Raw)
	}
	if lp.VLAN < 0 || lp.VLAN > 4095 {
		return fmt.Errorf("vlan %d", lp.VLAN)
	}
	if lp.OVS != nil && (lp.OVS.VLAN < 0 || lp.OVS.VLAN > 4095 || lp.OVS.PortNumber < 0) {
		return fmt.Errorf("ovs %+v", lp.OVS)
	}
	return nil
}

func checkRTs(name string, l []route.RT) error {
	seen := map[route.RT]bool{}
	for _, rt := range l {
		if !rt.TwoOctetAS() {
			return fmt.Errorf("%s: RT %v is not two-octet-AS", name, rt)
		}
		if seen[rt] {
			return fmt.Errorf("%s: duplicate RT %v", name, rt)
		}
		seen[rt] = true
	}
	return nil
}

func checkAttach(r vpn.AttachRequest) error {
	if err := checkCommon(r.Type, r.InstanceID, r.MAC, r.IP, r.LocalPort); err != nil {
		return err
	}
	if r.Type == vpn.IPVPN && !r.GatewayIP.Is4() {
		return fmt.Errorf("ipvpn gateway %v", r.GatewayIP)
	}
	if r.GatewayIP.IsValid() && !r.GatewayIP.Is4() {
		return fmt.Errorf("gateway %v", r.GatewayIP)
	}
	if r.ImportRTs == nil || r.ExportRTs == nil {
		return fmt.Errorf("nil RT list")
	}
	for name, l := range map[string][]route.RT{"import": r.ImportRTs, "export": r.ExportRTs} {
		if err := checkRTs(name, l); err != nil {
			return err
		}
	}
	switch r.Direction {
	case dataplane.DirectionBoth, dataplane.DirectionToPort, dataplane.DirectionFromPort:
	default:
		return fmt.Errorf("direction %q", r.Direction)
	}
	if r.VNI >= 1<<24 {
		return fmt.Errorf("vni %d", r.VNI)
	}
	if r.LocalPref != nil && *r.LocalPref == 0 {
		return fmt.Errorf("local_pref pointer to 0")
	}
	if r.Type == vpn.IPVPN && r.LinuxBridge != "" {
		return fmt.Errorf("linuxbr on ipvpn")
	}
	if r.LocalPort.EVPN != "" && (r.Type != vpn.IPVPN || r.LocalPort.LinuxIf != "") {
		return fmt.Errorf("evpn plug on %s with linuxif %q", r.Type, r.LocalPort.LinuxIf)
	}
	if r.Description != nil && !json.Valid(r.Description) {
		return fmt.Errorf("description %q", r.Description)
	}
	if rv := r.Readvertise; rv != nil {
		if err := checkRTs("readvertise from", rv.FromRTs); err != nil {
			return err
		}
		if err := checkRTs("readvertise to", rv.ToRTs); err != nil {
			return err
		}
	}
	if at := r.AttractTraffic; at != nil {
		var cl map[string]any
		if err := json.Unmarshal(at.Classifier, &cl); err != nil || cl == nil {
			return fmt.Errorf("classifier %q", at.Classifier)
		}
		if err := checkRTs("redirect", at.RedirectRTs); err != nil {
			return err
		}
		if at.ToRTs != nil && at.StaticDestinationPrefixes == nil {
			return fmt.Errorf("to_rt without static prefixes")
		}
		for _, p := range at.StaticDestinationPrefixes {
			if !p.Addr().Is4() {
				return fmt.Errorf("static prefix %v", p)
			}
		}
	}
	if fb := r.Fallback; fb != nil {
		for _, m := range []string{fb.SrcMAC, fb.DstMAC} {
			if m == "" {
				continue
			}
			if _, err := route.ParseMAC(m); err != nil || len(m) != 17 {
				return fmt.Errorf("fallback MAC %q", m)
			}
		}
	}
	return nil
}

func checkDetach(r vpn.DetachRequest) error {
	return checkCommon(r.Type, r.InstanceID, r.MAC, r.IP, r.LocalPort)
}
