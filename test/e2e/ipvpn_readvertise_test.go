package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/bagpipe-go/bagpipe/internal/lab"
	"github.com/bagpipe-go/bagpipe/internal/testenv"
)

// Route targets of the readvertise test: two VPNs that do not import
// each other.
const (
	rtReadvRed  = "64512:51"
	rtReadvBlue = "64512:52"
)

// TestIPVPNReadvertise is service chaining with readvertise alone, no
// attract_traffic (reference §5.6; upstream's BGPVPN port-association
// route leaking, §2.3.3): vmX (VPN red, node A) and vmY (VPN blue, node B)
// do not import each other's routes. The service VM S on node C has port
// red in VRF sred (imports red, readvertises routes carrying blue with RT
// red) and port blue in VRF sblue (imports blue, readvertises red's routes
// with RT blue), and routes red → blue and blue → red. So vmX's VRF learns
// vmY's /32 from C, with S's red port label as next hop, and the reverse:
// vmX and vmY ping each other through S (its forwarded packet counter
// grows). gobgpd holds the readvertised routes as upstream builds them:
// next hop C, label of the port, RT = to_rt only, and the original RT as
// RT-Record (draft-ietf-bess-service-chaining §2.3). Detaching S's red
// port withdraws its readvertisement and vmX no longer reaches vmY;
// plugging it again (a new VRF instance) readvertises vmY's route again.
//
// It runs on three ovs nodes and on three linux nodes: both deliver a
// received packet by its label straight to the port the label was
// allocated for (the ovs driver's encap-in flows, the linux driver's
// "tun_id <label>" rule and label table), as upstream's per-port MPLS
// label does. A lookup in the VRF of S's port would drop the packets: on
// C, vmY's route is not installed in sred (routes received only through a
// readvertise from_rt are not imported, §5.4).
func TestIPVPNReadvertise(t *testing.T) {
	for _, driver := range []string{"ovs", "linux"} {
		t.Run(driver, func(t *testing.T) { testIPVPNReadvertise(t, driver) })
	}
}

// testIPVPNReadvertise is TestIPVPNReadvertise on nodes running the IP
// VPN driver driver.
func testIPVPNReadvertise(t *testing.T, driver string) {
	l := newIPVPNLab(t, ipvpnNodeSpec{"A", driver, ""}, ipvpnNodeSpec{"B", driver, ""}, ipvpnNodeSpec{"C", driver, ""})
	a, b, c := l.nodes[0], l.nodes[1], l.nodes[2]
	vmX := l.vm(a, "vmX", "red", rtReadvRed, "11.0.0.1/24", "02:00:0b:00:00:01")
	vmY := l.vm(b, "vmY", "blue", rtReadvBlue, "12.0.0.1/24", "02:00:0c:00:00:01")
	sRed := l.vm(c, "svm", "sred", "", "100.0.0.1/24", "02:00:64:00:00:01")
	sRed.hostIf, sRed.nsIf = "to-svm-red", "red"
	sBlue := l.vm(c, "svm", "sblue", "", "200.0.0.1/24", "02:00:c8:00:00:01")
	sBlue.hostIf, sBlue.nsIf = "to-svm-blue", "blue"
	redArgs := []string{"--import-rt", rtReadvRed, "--readv-from-rt", rtReadvBlue, "--readv-to-rt", rtReadvRed}
	x, y := vmX.IP.Addr(), vmY.IP.Addr()
	x32, y32 := netip.PrefixFrom(x, 32), netip.PrefixFrom(y, 32)

	l.restAttach(vmX, true)
	l.restAttach(vmY, true)
	l.waitRIBPath(a.addr, x32, rtReadvRed)
	l.waitRIBPath(b.addr, y32, rtReadvBlue)
	l.noPing(vmX.VM, y, "red and blue do not import each other and there is no service VM yet")

	l.restAttach(sRed, true, redArgs...)
	l.restAttach(sBlue, true, "--import-rt", rtReadvBlue, "--readv-from-rt", rtReadvRed, "--readv-to-rt", rtReadvBlue)
	// rest-attach's default gateways: the second to last addresses.
	crossRouting(t, sRed.NS, sRed.nsIf, "100.0.0.254", sBlue.nsIf, "200.0.0.254")

	t.Run("rib", func(t *testing.T) {
		l.t = t
		defer func() { l.t = l.root }()
		l.checkReadvertised(c, y32, "sred", sRed.host(), rtReadvRed, rtReadvBlue)
		l.checkReadvertised(c, x32, "sblue", sBlue.host(), rtReadvBlue, rtReadvRed)
		// Loop prevention (§5.6): each readvertised route also reaches the
		// other VRF of S through its from_rt, which must not readvertise it
		// back (its RT-Records hold that VRF's to_rt).
		rib := l.rrRIB()
		for _, p := range rib {
			if p.Neighbor == c.addr && (p.Prefix == y32 && slices.Contains(p.RTs, rtReadvBlue) || p.Prefix == x32 && slices.Contains(p.RTs, rtReadvRed)) {
				t.Errorf("node C readvertised a route back into its own VPN: %+v\n%s", p, rib)
			}
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("ping-through-service-vm", func(t *testing.T) {
		l.t = t
		defer func() { l.t = l.root }()
		l.waitPing(vmX.VM, y)
		l.waitPing(vmY.VM, x)
		const n = 5
		fwd0 := forwarded(t, sRed.NS)
		if got, out := lab.Ping(vmX.NS, y, n, 2); got != n {
			t.Fatalf("ping -c %d from vmX to vmY got %d replies:\n%s", n, got, out)
		}
		fwd := forwarded(t, sRed.NS) - fwd0
		t.Logf("the service VM forwarded %d packets during %d echo requests from vmX to vmY", fwd, n)
		if fwd < 2*n {
			t.Errorf("the service VM forwarded %d packets during %d pings from vmX to vmY, want at least %d (request and reply each)", fwd, n, 2*n)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	t.Run("detach-readvertise-port", func(t *testing.T) {
		l.t = t
		defer func() { l.t = l.root }()
		l.restAttachHostPort(sRed, false)
		l.waitRIBGone(c.addr, y32, rtReadvRed)
		l.noPing(vmX.VM, y, "the service VM's red port is detached")
		// sblue's readvertisement of vmX's route stays.
		if l.rrRIB().find(c.addr, x32, rtReadvBlue) == nil {
			t.Errorf("detaching S's red port withdrew sblue's readvertisement of %s", x32)
		}
		l.restAttachHostPort(sRed, true, redArgs...)
		l.checkReadvertised(c, y32, "sred", sRed.host(), rtReadvRed, rtReadvBlue)
		l.waitPing(vmX.VM, y)
	})
}

// restAttachHostPort runs bagpipe-rest-attach --attach or --detach for
// the existing node-side interface of vm (--port <host interface>, not
// netns: a netns detach would delete the veth, and the namespace with
// the service VM's other port), with extra arguments.
func (l *ipvpnLab) restAttachHostPort(vm ipvpnVM, attach bool, extra ...string) {
	l.t.Helper()
	l.runRestAttach(vm, attach, append([]string{"--port", vm.host()}, extra...)...)
}

// checkReadvertised waits until gobgpd holds the readvertisement of
// prefix p by node n's VRF instance through port: next hop n, the label
// n's looking glass shows for the port, route targets exactly [to], and
// from among its RT-Records.
func (l *ipvpnLab) checkReadvertised(n *node, p netip.Prefix, instance, port, to, from string) {
	t := l.t
	t.Helper()
	got := l.waitRIBPath(n.addr, p, to)
	label := n.portLabel(t, instance, port)
	records := l.rtRecords(n.addr, p, to)
	t.Logf("readvertised by node %s: %+v, RT-Records %v", n.name, got, records)
	if got.NextHop != n.addr || got.Label != label || !slices.Equal(got.RTs, []string{to}) || !slices.Contains(records, from) {
		t.Errorf("node %s's readvertisement of %s: %+v with RT-Records %v; want next hop %s, label %d (port %s of %s), RTs [%s], RT-Record %s",
			n.name, p, got, records, n.addr, label, port, instance, to, from)
	}
}

// waitRIBGone waits until gobgpd has no VPNv4 path for p from neighbor
// with route target rt.
func (l *ipvpnLab) waitRIBGone(neighbor netip.Addr, p netip.Prefix, rt string) {
	l.t.Helper()
	testenv.WaitFor(l.t, stateTimeout, fmt.Sprintf("gobgpd to lose %s from %s", p, neighbor), func() (bool, error) {
		rib := l.rrRIB()
		return rib.find(neighbor, p, rt) == nil, fmt.Errorf("VPNv4 RIB:\n%s", rib)
	})
}

// rtRecords returns the RT-Record extended communities (type 0x00,
// subtype 0x13, draft-ietf-bess-service-chaining §2.3) of gobgpd's path
// of p from neighbor with route target rt, as "asn:nn".
func (l *ipvpnLab) rtRecords(neighbor netip.Addr, p netip.Prefix, rt string) []string {
	l.t.Helper()
	recs, err := parseRTRecords(l.gobgp("-j", "global", "rib", "-a", "vpnv4"), neighbor, p, rt)
	if err != nil {
		l.t.Fatalf("e2e: %v", err)
	}
	return recs
}

// parseRTRecords finds, in gobgp -j global rib -a vpnv4 output, the path
// of p from neighbor with route target rt (decoded by parseVPNRIB) and
// returns its RT-Records.
func parseRTRecords(out []byte, neighbor netip.Addr, p netip.Prefix, rt string) ([]string, error) {
	var raw map[string][]json.RawMessage
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("decoding gobgp's VPNv4 RIB: %w: %s", err, out)
	}
	for key, paths := range raw {
		for _, path := range paths {
			one, err := json.Marshal(map[string][]json.RawMessage{key: {path}})
			if err != nil {
				return nil, err
			}
			rib, err := parseVPNRIB(one)
			if err != nil {
				return nil, err
			}
			if rib.find(neighbor, p, rt) == nil {
				continue
			}
			var attrs struct {
				Attrs []struct {
					Type  int             `json:"type"`
					Value json.RawMessage `json:"value"`
				} `json:"attrs"`
			}
			if err := json.Unmarshal(path, &attrs); err != nil {
				return nil, fmt.Errorf("gobgp route %s: %w", key, err)
			}
			var recs []string
			for _, a := range attrs.Attrs {
				if a.Type != 16 { // EXTENDED COMMUNITIES (RFC 4360)
					continue
				}
				var ecs []struct {
					Type    int    `json:"type"`
					Subtype int    `json:"subtype"`
					Value   string `json:"value"`
				}
				if err := json.Unmarshal(a.Value, &ecs); err != nil {
					return nil, fmt.Errorf("gobgp route %s: extended communities: %w", key, err)
				}
				for _, e := range ecs {
					if e.Type == 0 && e.Subtype == 0x13 {
						recs = append(recs, e.Value)
					}
				}
			}
			return recs, nil
		}
	}
	return nil, fmt.Errorf("gobgpd has no path of %s from %s with RT %s:\n%s", p, neighbor, rt, out)
}
