package testenv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// establishTimeout is generous: the tests are not timed.
const establishTimeout = 2 * time.Minute

var (
	addr1 = netip.MustParseAddr("127.0.0.1")
	addr3 = netip.MustParseAddr("127.0.0.3")
	addr4 = netip.MustParseAddr("127.0.0.4")
	addr5 = netip.MustParseAddr("127.0.0.5")
	addr6 = netip.MustParseAddr("127.0.0.6")
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// findFRR returns the FRR EVPN paths whose MAC is mac.
func findFRR(rs []FRREVPNRoute, routeType int, mac string) []FRREVPNRoute {
	var out []FRREVPNRoute
	for _, r := range rs {
		if r.RouteType == routeType && (mac == "" || r.MAC == mac) {
			out = append(out, r)
		}
	}
	return out
}

// TestGoBGPToFRR runs gobgpd as route reflector on 127.0.0.1 and FRR bgpd
// on 127.0.0.3 as an ordinary iBGP neighbour connecting to gobgpd's port,
// injects EVPN and VPNv4 routes into gobgpd and checks FRR receives, then
// loses, them.
func TestGoBGPToFRR(t *testing.T) {
	g := StartGoBGP(t, GoBGPConfig{RouterID: addr1, AS: 64512, Clients: []netip.Addr{addr3}})
	f := StartFRR(t, FRRConfig{RouterID: addr3, AS: 64512,
		Neighbors: []FRRNeighbor{{Addr: addr1, Port: g.Config.ListenPort}}})
	g.WaitEstablished(t, addr3, establishTimeout)
	f.WaitEstablished(t, addr1, establishTimeout)

	macIP := EVPNMacIP{RD: "127.0.0.1:5", MAC: mustMAC(t, "aa:bb:cc:dd:ee:01"),
		IP: netip.MustParseAddr("10.0.0.1"), Label: 100, RTs: []string{"64512:100"}, NextHop: addr1}
	macOnly := EVPNMacIP{RD: "127.0.0.1:5", MAC: mustMAC(t, "aa:bb:cc:dd:ee:02"),
		Label: 100, RTs: []string{"64512:100"}, NextHop: addr1}
	mcast := EVPNMulticast{RD: "127.0.0.1:5", OriginIP: addr1, Label: 100, RTs: []string{"64512:100"}, NextHop: addr1}
	vpn := VPNv4Route{RD: "64512:7", Prefix: netip.MustParsePrefix("10.1.0.0/24"), Label: 200,
		RTs: []string{"64512:7"}, NextHop: addr1}
	for _, err := range []error{g.AddEVPNMacIP(macIP), g.AddEVPNMacIP(macOnly), g.AddEVPNMulticast(mcast), g.AddVPNv4(vpn)} {
		if err != nil {
			t.Fatal(err)
		}
	}

	// gobgpd's own RIB, through the parser.
	rib, err := g.RIB("l2vpn-evpn")
	if err != nil {
		t.Fatal(err)
	}
	if len(rib) != 3 {
		t.Fatalf("gobgpd EVPN RIB has %d paths, want 3: %+v", len(rib), rib)
	}
	var got *GoBGPRoute
	for i := range rib {
		if rib[i].MAC == "aa:bb:cc:dd:ee:01" {
			got = &rib[i]
		}
	}
	if got == nil || got.EVPNType != 2 || got.IP != "10.0.0.1" || got.RD != "127.0.0.1:5" ||
		got.NextHop != addr1 || !slices.Equal(got.RTs, []string{"64512:100"}) ||
		!slices.Equal(got.Labels, []uint32{100}) || !got.Best {
		t.Fatalf("gobgpd MAC/IP route parsed as %+v", got)
	}
	vrib, err := g.RIB("l3vpn-ipv4-unicast")
	if err != nil {
		t.Fatal(err)
	}
	if len(vrib) != 1 || vrib[0].RD != "64512:7" || vrib[0].NextHop != addr1 ||
		!slices.Equal(vrib[0].Labels, []uint32{200}) || !slices.Equal(vrib[0].RTs, []string{"64512:7"}) {
		t.Fatalf("gobgpd VPNv4 RIB parsed as %+v", vrib)
	}
	out, err := g.AdjOut(addr3, "vpnv4")
	if err != nil || len(out) != 1 {
		t.Fatalf("gobgpd adj-out to FRR for vpnv4 = %+v, %v; want the one route", out, err)
	}

	WaitFor(t, establishTimeout, "FRR to receive the EVPN routes", func() (bool, error) {
		rs, err := f.EVPNRoutes()
		if err != nil {
			return false, err
		}
		m1, m2, im := findFRR(rs, 2, "aa:bb:cc:dd:ee:01"), findFRR(rs, 2, "aa:bb:cc:dd:ee:02"), findFRR(rs, 3, "")
		if len(m1) != 1 || len(m2) != 1 || len(im) != 1 {
			return false, fmt.Errorf("FRR EVPN table: %+v", rs)
		}
		r := m1[0]
		if r.IP != "10.0.0.1" || r.RD != "127.0.0.1:5" || r.NextHop != addr1 ||
			!slices.Equal(r.RTs, []string{"64512:100"}) || !r.Valid || r.PeerID != "127.0.0.1" {
			return false, fmt.Errorf("FRR MAC/IP route is %+v", r)
		}
		return true, nil
	})

	WaitFor(t, establishTimeout, "FRR to receive the VPNv4 route", func() (bool, error) {
		rs, err := f.VPNv4Routes()
		if err != nil {
			return false, err
		}
		want := FRRVPNRoute{RD: "64512:7", Prefix: vpn.Prefix, NextHop: addr1, Label: 200,
			RTs: []string{"64512:7"}, ExtCommunity: "RT:64512:7", Valid: true, Best: true, PeerID: "127.0.0.1"}
		if len(rs) != 1 || fmt.Sprint(rs[0]) != fmt.Sprint(want) {
			return false, fmt.Errorf("FRR VPNv4 table %+v, want [%+v]", rs, want)
		}
		return true, nil
	})

	for _, err := range []error{g.DelEVPNMacIP(macIP), g.DelEVPNMacIP(macOnly), g.DelEVPNMulticast(mcast), g.DelVPNv4(vpn)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	WaitFor(t, establishTimeout, "FRR to lose the EVPN routes", func() (bool, error) {
		rs, err := f.EVPNRoutes()
		if err != nil {
			return false, err
		}
		return len(rs) == 0, fmt.Errorf("FRR still has %+v", rs)
	})
	WaitFor(t, establishTimeout, "FRR to lose the VPNv4 route", func() (bool, error) {
		rs, err := f.VPNv4Routes()
		return err == nil && len(rs) == 0, fmt.Errorf("FRR VPNv4 table %+v, %v", rs, err)
	})
	for _, fam := range []string{"evpn", "vpnv4"} {
		if rs, err := g.RIB(fam); err != nil || len(rs) != 0 {
			t.Errorf("gobgpd %s RIB after withdrawal = %+v, %v; want empty", fam, rs, err)
		}
	}

	if err := f.Stop(); err != nil {
		t.Errorf("bgpd did not stop cleanly: %v", err)
	}
	WaitFor(t, establishTimeout, "gobgpd to see the FRR session drop", func() (bool, error) {
		up, err := neighborEstablished(g.Neighbors, addr3)
		return !up && err != nil && strings.Contains(err.Error(), "session with"), err
	})
	if err := g.Stop(); err != nil {
		t.Errorf("gobgpd did not stop cleanly: %v", err)
	}
}

// TestFRRRouteReflector runs FRR bgpd as route reflector on 127.0.0.4 with
// two passive clients, gobgpd on 127.0.0.5 and 127.0.0.6 connecting to it,
// and checks a route injected at one client is reflected to the other.
func TestFRRRouteReflector(t *testing.T) {
	rr := StartFRR(t, FRRConfig{RouterID: addr4, Clients: []netip.Addr{addr5, addr6}})
	peer := []Peer{{Addr: addr4, Port: rr.Config.ListenPort}}
	fam := []string{"l2vpn-evpn", "l3vpn-ipv4-unicast"}
	a := StartGoBGP(t, GoBGPConfig{RouterID: addr5, Peers: peer, Families: fam})
	b := StartGoBGP(t, GoBGPConfig{RouterID: addr6, Peers: peer, Families: fam})
	for _, c := range []netip.Addr{addr5, addr6} {
		rr.WaitEstablished(t, c, establishTimeout)
	}
	a.WaitEstablished(t, addr4, establishTimeout)
	b.WaitEstablished(t, addr4, establishTimeout)

	r := EVPNMacIP{RD: "127.0.0.5:1", MAC: mustMAC(t, "02:00:00:00:00:05"), Label: 42,
		RTs: []string{"64512:42"}, NextHop: addr5}
	if err := a.AddEVPNMacIP(r); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, establishTimeout, "the route to be reflected to 127.0.0.6", func() (bool, error) {
		rs, err := b.AdjIn(addr4, "l2vpn-evpn")
		if err != nil {
			return false, err
		}
		if len(rs) != 1 || rs[0].MAC != "02:00:00:00:00:05" || rs[0].NextHop != addr5 ||
			!slices.Equal(rs[0].RTs, []string{"64512:42"}) {
			return false, fmt.Errorf("adj-in from the RR: %+v", rs)
		}
		return true, nil
	})
	if err := a.DelEVPNMacIP(r); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, establishTimeout, "the withdrawal to be reflected", func() (bool, error) {
		rs, err := b.RIB("evpn")
		return err == nil && len(rs) == 0, fmt.Errorf("RIB %+v, %v", rs, err)
	})
}

// fakeTB records Fatalf instead of stopping the test.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	if f.fatal == "" {
		f.fatal = fmt.Sprintf(format, args...)
	}
}

func TestRequireToolFailsLoudly(t *testing.T) {
	tests := []struct {
		name, tool, hint string
	}{
		{"gobgp in PATH", "testenv-no-such-gobgpd", gobgpHint},
		{"frr by path", "/usr/lib/frr/testenv-no-such-bgpd", frrHint},
		{"not executable", filepath.Join(t.TempDir(), "plain"), frrHint},
		{"directory", t.TempDir(), frrHint},
	}
	os.WriteFile(tests[2].tool, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeTB{}
			requireTool(f, tc.tool, tc.hint)
			if !strings.Contains(f.fatal, tc.tool) || !strings.Contains(f.fatal, `"`+tc.hint+`"`) {
				t.Errorf("Fatalf message %q lacks the tool or the hint %q", f.fatal, tc.hint)
			}
		})
	}
	if f := (&fakeTB{}); requireTool(f, "sh", gobgpHint) == "" || f.fatal != "" {
		t.Errorf("requireTool(sh) failed: %s", f.fatal)
	}
}

func TestWaitFor(t *testing.T) {
	n := 0
	WaitFor(t, time.Minute, "three polls", func() (bool, error) {
		n++
		return n == 3, errors.New("not yet")
	})
	if n != 3 {
		t.Errorf("cond ran %d times, want 3", n)
	}
	f := &fakeTB{}
	WaitFor(f, 120*time.Millisecond, "the impossible", func() (bool, error) {
		return false, errors.New("still impossible")
	})
	if !strings.Contains(f.fatal, "the impossible") || !strings.Contains(f.fatal, "still impossible") {
		t.Errorf("timeout message %q lacks what or the last error", f.fatal)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatalf("port %d from FreePort is not free: %v", p, err)
	}
	l.Close()
}

func TestStartProcess(t *testing.T) {
	t.Run("exit status and log", func(t *testing.T) {
		p := StartProcess(t, "sh", []string{"-c", "echo out $TESTENV_X; echo err >&2; exit 3"}, []string{"TESTENV_X=xval"})
		err := p.Wait(time.Minute)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || p.ExitCode() != 3 || !p.Exited() {
			t.Fatalf("Wait = %v, ExitCode = %d, Exited = %v; want exit status 3", err, p.ExitCode(), p.Exited())
		}
		if log := p.Log(); !strings.Contains(log, "out xval\n") || !strings.Contains(log, "err\n") {
			t.Errorf("log %q lacks stdout with the env value or stderr", log)
		}
	})
	t.Run("true", func(t *testing.T) {
		p := StartProcess(t, "true", nil, nil)
		if err := p.Wait(time.Minute); err != nil || p.ExitCode() != 0 {
			t.Errorf("true: Wait = %v, ExitCode = %d", err, p.ExitCode())
		}
	})
	t.Run("stop", func(t *testing.T) {
		p := StartProcess(t, "sleep", []string{"1000"}, nil)
		if err := p.Wait(100 * time.Millisecond); !errors.Is(err, ErrStillRunning) {
			t.Fatalf("Wait on a sleeping process = %v, want ErrStillRunning", err)
		}
		err := p.Stop()
		if !p.Exited() || err == nil || !strings.Contains(err.Error(), "terminated") {
			t.Errorf("Stop = %v, Exited = %v; want terminated by SIGTERM", err, p.Exited())
		}
	})
	t.Run("kill after ignored SIGTERM", func(t *testing.T) {
		// An ignored signal stays ignored across exec.
		p := StartProcess(t, "sh", []string{"-c", `trap "" TERM; exec sleep 1000`}, nil)
		WaitFor(t, time.Minute, "sleep to replace sh", func() (bool, error) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID()))
			return strings.TrimSpace(string(b)) == "sleep", err
		})
		err := p.Stop()
		if err == nil || !strings.Contains(err.Error(), "was killed") || !p.Exited() {
			t.Errorf("Stop = %v; want killed after ignoring SIGTERM", err)
		}
	})
	t.Run("cleanup kills", func(t *testing.T) {
		var p *Process
		t.Run("inner", func(t *testing.T) { p = StartProcess(t, "sleep", []string{"1000"}, nil) })
		if !p.Exited() {
			t.Errorf("process %d still runs after its test's cleanup", p.PID())
		}
	})
}

func TestBuildInto(t *testing.T) {
	tests := []struct {
		name    string
		main    string
		wantErr string // "" for success
	}{
		{"builds", "package main\n\nfunc main() { println(\"hi\") }\n", ""},
		{"compile error", "package main\n\nfunc main() { undefinedThing() }\n", "undefined: undefinedThing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			files := map[string]string{
				"go.mod":             "module example.com/testenvbuild\n\ngo 1.21\n",
				"cmd/hello/main.go":  tc.main,
				"cmd/hello2/main.go": "package main\n\nfunc main() {}\n",
			}
			for name, text := range files {
				os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
				if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			bin := filepath.Join(t.TempDir(), "bin")
			err := buildInto(root, bin)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("buildInto = %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []string{"hello", "hello2"} {
				if st, err := os.Stat(filepath.Join(bin, b)); err != nil || st.Mode()&0o111 == 0 {
					t.Errorf("binary %s not built: %v", b, err)
				}
			}
		})
	}
}

func TestWriteBagpipeConf(t *testing.T) {
	no := false
	tests := []struct {
		name string
		conf BagpipeConf
		want string
	}{
		{
			name: "defaults",
			conf: BagpipeConf{LocalAddress: addr3, Peers: []netip.Addr{addr1}, APIPort: 8082},
			want: `[BGP]
local_address = 127.0.0.3
my_as = 64512
peers = 127.0.0.1

[API]
host = 127.0.0.1
port = 8082

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = dummy

[DATAPLANE_DRIVER_IPVPN]
dataplane_driver = dummy
`,
		},
		{
			name: "everything",
			conf: BagpipeConf{LocalAddress: addr5, Peers: []netip.Addr{addr1, addr4}, AS: 65001, BGPPort: 17900,
				APIHost: "127.0.0.5", APIPort: 9000, Passive: true, EnableRTC: &no,
				EVPNDriver: "linux", IPVPNDriver: "ovs",
				Extra: map[string]map[string]string{
					"bgp":                   {"hold_time": "9"},
					"COMMON":                {"root_helper": ""},
					"DATAPLANE_DRIVER_EVPN": {"vxlan_dst_port": "4790"},
				}},
			want: `[BGP]
bgp_port = 17900
enable_rtc = false
hold_time = 9
local_address = 127.0.0.5
my_as = 65001
passive = true
peers = 127.0.0.1,127.0.0.4

[API]
host = 127.0.0.5
port = 9000

[DATAPLANE_DRIVER_EVPN]
dataplane_driver = linux
vxlan_dst_port = 4790

[DATAPLANE_DRIVER_IPVPN]
dataplane_driver = ovs

[COMMON]
root_helper = 
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := WriteBagpipeConf(t, t.TempDir(), tc.conf)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("bgp.conf:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}
