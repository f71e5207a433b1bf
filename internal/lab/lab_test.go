package lab

import (
	"context"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

func TestPingReceived(t *testing.T) {
	tests := []struct {
		name, out string
		want      int
	}{
		{"all", "PING 10.10.0.2 (10.10.0.2) 56(84) bytes of data.\n64 bytes from 10.10.0.2: icmp_seq=1 ttl=64 time=0.2 ms\n\n--- 10.10.0.2 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 2052ms\n", 3},
		{"some", "2 packets transmitted, 1 received, 50% packet loss, time 1001ms\n", 1},
		{"none", "--- 10.10.0.3 ping statistics ---\n2 packets transmitted, 0 received, 100% packet loss, time 1020ms\n", 0},
		{"errors", "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1020ms\n", 0},
		{"no summary", "Cannot open network namespace \"x\": No such file or directory\n", 0},
	}
	for _, tt := range tests {
		if got := pingReceived(tt.out); got != tt.want {
			t.Errorf("%s: pingReceived = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestNodeAddr(t *testing.T) {
	for n, want := range map[int]string{1: "10.201.0.1", 2: "10.201.0.2", 254: "10.201.0.254"} {
		if got := NodeAddr(n).String(); got != want {
			t.Errorf("NodeAddr(%d) = %s, want %s", n, got, want)
		}
	}
	if NodeAddr(254) != RRAddr {
		t.Errorf("RRAddr %s is not NodeAddr(254)", RRAddr)
	}
}

func TestVMArgs(t *testing.T) {
	v := VM{Node: "labA", NS: "e2e1a2b-vmA", Network: "net1", RT: "64512:100",
		IP: netip.MustParsePrefix("10.10.0.1/24"), MAC: "02:00:0a:0a:00:01", ConfigFile: "/tmp/bgp.conf"}
	want := []string{"--attach", "--port", "netns", "--network-type", "evpn", "--vpn-instance-id", "net1",
		"--ip", "10.10.0.1/24", "--rt", "64512:100", "--netns", "e2e1a2b-vmA", "--mac", "02:00:0a:0a:00:01",
		"--config-file", "/tmp/bgp.conf"}
	if got := v.RestAttachArgs(true); !slices.Equal(got, want) {
		t.Errorf("RestAttachArgs(attach) = %q, want %q", got, want)
	}
	v.MAC, v.ConfigFile = "", ""
	want = append([]string{"--detach"}, want[1:13]...)
	if got := v.RestAttachArgs(false); !slices.Equal(got, want) {
		t.Errorf("RestAttachArgs(detach) = %q, want %q", got, want)
	}
	v.Type, v.Gateway = "ipvpn", netip.MustParseAddr("10.10.0.254")
	want = []string{"--attach", "--port", "netns", "--network-type", "ipvpn", "--vpn-instance-id", "net1",
		"--ip", "10.10.0.1/24", "--rt", "64512:100", "--netns", "e2e1a2b-vmA", "--gateway-ip", "10.10.0.254"}
	if got := v.RestAttachArgs(true); !slices.Equal(got, want) {
		t.Errorf("RestAttachArgs(ipvpn attach) = %q, want %q", got, want)
	}
	for ns, want := range map[string]string{
		"vmA":                 "ns-vmA",
		"e2e1a2b-vmA":         "ns-e2e1a2b-vmA",
		"averyveryverylongvm": "ns-averyveryver", // 15 characters, as rest-attach
	} {
		if got := (VM{NS: ns}).HostIf(); got != want {
			t.Errorf("HostIf of %s = %s, want %s", ns, got, want)
		}
	}
}

func TestBagpipeConf(t *testing.T) {
	got := BagpipeConf(NodeAddr(1), RRAddr, "linux")
	for _, want := range []string{"local_address = 10.201.0.1\n", "peers = 10.201.0.254\n", "my_as = 64512\n",
		"[API]\nhost = 127.0.0.1\nport = 8082\n", "[DATAPLANE_DRIVER_EVPN]\ndataplane_driver = linux\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("bgp.conf lacks %q:\n%s", want, got)
		}
	}
	g := GoBGPConf(RRAddr, []netip.Addr{NodeAddr(1), NodeAddr(2)})
	for _, want := range []string{`router-id = "10.201.0.254"`, `local-address-list = ["10.201.0.254"]`,
		`neighbor-address = "10.201.0.1"`, `neighbor-address = "10.201.0.2"`, `afi-safi-name = "rtc"`, "passive-mode = true"} {
		if !strings.Contains(g, want) {
			t.Errorf("gobgpd config lacks %q:\n%s", want, g)
		}
	}
	if n := strings.Count(g, "[[neighbors]]"); n != 2 {
		t.Errorf("gobgpd config has %d neighbours, want 2:\n%s", n, g)
	}
}

// newTestPrefix returns a lab prefix whose namespaces are deleted at
// cleanup.
func newTestPrefix(t *testing.T) string {
	t.Helper()
	if err := CheckTools(); err != nil {
		t.Fatal(err)
	}
	prefix, err := NewPrefix("labt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeleteNamespaces(prefix, 2*time.Second); err != nil {
			t.Error(err)
		}
		ReleasePrefix(prefix)
	})
	return prefix
}

// TestUnderlay builds a switch and two machines, pings across, and checks
// that DeleteNamespaces removes them all.
func TestUnderlay(t *testing.T) {
	prefix := newTestPrefix(t)
	u, err := NewUnderlay(prefix)
	if err != nil {
		t.Fatal(err)
	}
	a, err := u.AddMachine("A", NodeAddr(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.AddMachine("B", NodeAddr(2)); err != nil {
		t.Fatal(err)
	}
	if got, out := Ping(a, NodeAddr(2), 1, 5); got != 1 {
		t.Fatalf("machine A cannot ping machine B over the underlay:\n%s", out)
	}
	if got, out := Ping(a, netip.MustParseAddr("10.201.0.3"), 1, 1); got != 0 {
		t.Fatalf("ping to an absent machine got a reply:\n%s", out)
	}
	names, err := Namespaces(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{prefix + "A", prefix + "B", prefix + "sw"}; !slices.Equal(names, want) {
		t.Fatalf("namespaces %v, want %v", names, want)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	if names, _ := Namespaces(prefix); len(names) != 0 {
		t.Fatalf("Close left %v", names)
	}
}

// TestDialContextIn listens on 127.0.0.1 inside a namespace and reaches
// the listener through DialContextIn; the same address in the test's own
// namespace is another socket.
func TestDialContextIn(t *testing.T) {
	prefix := newTestPrefix(t)
	ns := prefix + "x"
	if err := AddNamespace(ns); err != nil {
		t.Fatal(err)
	}
	ln := listenIn(t, ns)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from "+ns)
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	c, err := DialContextIn(ns)(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("dialing %s in %s: %v", addr, ns, err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "hello from "+ns {
		t.Fatalf("read %q", b)
	}
	if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
		// Something of the host listens on that port: not ours.
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) == "hello from "+ns {
			t.Fatalf("the namespace's listener was reached from the host namespace")
		}
	}
	if _, err := DialContextIn(ns)(context.Background(), "tcp", "localhost:80"); err == nil {
		t.Fatal("DialContextIn accepted a host name")
	}
	if _, err := DialContextIn(prefix+"absent")(context.Background(), "tcp", addr); err == nil {
		t.Fatal("DialContextIn dialed in a namespace that does not exist")
	}
}

// listenIn opens a TCP listener on 127.0.0.1:0 inside namespace ns.
func listenIn(t *testing.T, ns string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		t.Fatal(err)
	}
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err := netns.Set(orig); err != nil {
		panic("cannot return to the original network namespace: " + err.Error())
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	return ln
}
