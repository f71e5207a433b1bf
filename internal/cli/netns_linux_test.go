package cli

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS returns a namespace name unique to this test process and
// registers the removal of the namespace, its marker and host interface.
func testNS(t *testing.T, suffix string) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces: run it as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2's ip is needed (apt-get install iproute2): %v", err)
	}
	name := fmt.Sprintf("clit%d%s", os.Getpid(), suffix)
	host := HostIfName(name)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(host); err == nil {
			netlink.LinkDel(l)
		}
		exec.Command("ip", "netns", "del", name).Run()
		os.Remove(markerDir + "/" + name)
	})
	return name, host
}

// nsState is what a netns port looks like through netlink.
type nsState struct {
	mac     string
	mtu     int
	addrs   []string
	gateway string
	loUp    bool
	kind    string // of the interface carrying the address
	vlan    int
}

func readNS(t *testing.T, ns, ifname string) nsState {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, ns, err)
	}
	s := nsState{mac: l.Attrs().HardwareAddr.String(), mtu: l.Attrs().MTU, kind: l.Type()}
	if v, ok := l.(*netlink.Vlan); ok {
		s.vlan = v.VlanId
	}
	addrs, _ := nh.AddrList(l, netlink.FAMILY_V4)
	for _, a := range addrs {
		s.addrs = append(s.addrs, a.IPNet.String())
	}
	routes, _ := nh.RouteList(l, netlink.FAMILY_V4)
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			s.gateway = r.Gw.String()
		}
	}
	if lo, err := nh.LinkByName("lo"); err == nil {
		s.loUp = lo.Attrs().Flags&net.FlagUp != 0
	}
	return s
}

// kernelHasVLAN reports whether the running kernel can create 802.1Q
// interfaces (CONFIG_VLAN_8021Q), probed in a throw-away namespace. It
// switches the calling thread's namespace: call it on a locked thread
// that is then discarded.
func kernelHasVLAN() (bool, error) {
	name := fmt.Sprintf("clitprobe%d", os.Getpid())
	h, err := netns.NewNamed(name)
	if err != nil {
		return false, fmt.Errorf("cannot create a probe namespace: %w", err)
	}
	defer netns.DeleteNamed(name)
	defer h.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "pa"}, PeerName: "pb"}); err != nil {
		return false, fmt.Errorf("cannot create a probe veth: %w", err)
	}
	pa, err := netlink.LinkByName("pa")
	if err != nil {
		return false, err
	}
	return netlink.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "pa.5", ParentIndex: pa.Attrs().Index}, VlanId: 5}) == nil, nil
}

// TestNetnsPort creates, re-creates (stale interfaces replaced) and
// deletes netns ports, plain and with a VLAN sub-interface, and checks
// them with netlink. On a kernel without 802.1Q the VLAN variant must fail
// with an error saying so, and clean up on delete.
func TestNetnsPort(t *testing.T) {
	// NewNamed switches the calling thread: probe from a locked goroutine.
	var vlanOK bool
	var probeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		vlanOK, probeErr = kernelHasVLAN()
	}()
	<-done
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	for _, vlan := range []int{0, 42} {
		t.Run(fmt.Sprintf("vlan %d", vlan), func(t *testing.T) {
			ns, host := testNS(t, fmt.Sprintf("v%d", vlan))
			mac, _ := net.ParseMAC("52:54:00:12:34:56")
			p := NetnsPort{Namespace: ns, HostIf: host, NSIf: "tovpn", VLAN: vlan, MAC: mac,
				Addr: netip.MustParsePrefix("10.9.8.7/24"), Gateway: netip.MustParseAddr("10.9.8.254")}
			for round := 0; round < 2; round++ {
				var warn strings.Builder
				err := CreateNetnsPort(p, &warn)
				if vlan != 0 && !vlanOK {
					t.Logf("kernel without 802.1Q VLAN support: checking the error path only")
					if err == nil || !strings.Contains(err.Error(), "802.1Q") {
						t.Fatalf("CreateNetnsPort with a VLAN on a kernel without 802.1Q: %v, want an error naming 802.1Q", err)
					}
					break
				}
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if warn.Len() != 0 {
					t.Errorf("round %d: warnings: %s", round, warn.String())
				}
				got := readNS(t, ns, "tovpn")
				want := nsState{mac: "52:54:00:12:34:56", mtu: 1420, addrs: []string{"10.9.8.7/24"}, gateway: "10.9.8.254", loUp: true, kind: "veth"}
				if vlan != 0 {
					want.kind, want.vlan = "vlan", vlan
					raw := readNS(t, ns, rawIfName)
					if raw.kind != "veth" || raw.mtu != 65535 {
						t.Errorf("round %d: %s is %s with MTU %d, want a veth with MTU 65535", round, rawIfName, raw.kind, raw.mtu)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("round %d: inside %s: %+v, want %+v", round, ns, got, want)
				}
				hl, err := netlink.LinkByName(host)
				if err != nil {
					t.Fatalf("round %d: host side %s not in this namespace: %v", round, host, err)
				}
				if hl.Type() != "veth" || hl.Attrs().MTU != 9000 || hl.Attrs().Flags&net.FlagUp == 0 {
					t.Errorf("round %d: host side %s: type %s MTU %d flags %v, want an up veth with MTU 9000", round, host, hl.Type(), hl.Attrs().MTU, hl.Attrs().Flags)
				}
			}
			if m, err := NetnsMAC(ns, "tovpn"); (vlan == 0 || vlanOK) && (err != nil || m.String() != "52:54:00:12:34:56") {
				t.Errorf("NetnsMAC = %v, %v", m, err)
			}
			veth, removed, err := DeleteNetnsPort(ns, host, io.Discard)
			if err != nil || !removed || !veth {
				t.Fatalf("DeleteNetnsPort = %v, %v, %v; want the veth and the namespace removed", veth, removed, err)
			}
			if veth, removed, err := DeleteNetnsPort(ns, host, io.Discard); err != nil || veth || removed {
				t.Errorf("second DeleteNetnsPort = %v, %v, %v; want nothing left to remove", veth, removed, err)
			}
			if _, err := netlink.LinkByName(host); err == nil {
				t.Errorf("host side %s still exists", host)
			}
			if h, err := netns.GetFromName(ns); err == nil {
				h.Close()
				t.Errorf("namespace %s still exists", ns)
			}
		})
	}
}

// TestNetnsPortKeepsForeignNamespace: a namespace that existed before is
// reused and not deleted on detach; without --mac the kernel's MAC stays.
func TestNetnsPortKeepsForeignNamespace(t *testing.T) {
	ns, host := testNS(t, "f")
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	p := NetnsPort{Namespace: ns, HostIf: host, NSIf: "eth0",
		Addr: netip.MustParsePrefix("10.9.9.1/16"), Gateway: netip.MustParseAddr("10.9.255.254")}
	if err := CreateNetnsPort(p, io.Discard); err != nil {
		t.Fatal(err)
	}
	got := readNS(t, ns, "eth0")
	if got.gateway != "10.9.255.254" || len(got.addrs) != 1 || got.addrs[0] != "10.9.9.1/16" || got.mac == "" {
		t.Errorf("inside %s: %+v", ns, got)
	}
	veth, removed, err := DeleteNetnsPort(ns, host, io.Discard)
	if err != nil || removed || !veth {
		t.Fatalf("DeleteNetnsPort = %v, %v, %v; want the veth removed and the namespace kept", veth, removed, err)
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatalf("namespace %s was deleted: %v", ns, err)
	}
	h.Close()
	if _, err := netlink.LinkByName(host); err == nil {
		t.Errorf("host side %s still exists", host)
	}
}

// TestNSStoreOpen: only a mounted namespace counts; bad names are refused.
func TestNSStoreOpen(t *testing.T) {
	s := nsStore{root: t.TempDir()}
	if err := os.MkdirAll(s.root+"/run/netns", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.path("plain"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if h, err := s.open("plain"); err == nil {
		h.Close()
		t.Error("a plain file was taken for a namespace")
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := s.open(bad); err == nil || !strings.Contains(err.Error(), "not a valid") {
			t.Errorf("open(%q): %v", bad, err)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/proc/self/ns/net", &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Errorf("/proc/self/ns/net statfs type %x, %v: NSFS_MAGIC check would never succeed", st.Type, err)
	}
}

// TestParentPID reads the parent from /proc/<pid>/stat.
func TestParentPID(t *testing.T) {
	if got := parentPID(os.Getpid()); got != os.Getppid() {
		t.Errorf("parentPID(self) = %d, want %d", got, os.Getppid())
	}
	if got := parentPID(-5); got != 0 {
		t.Errorf("parentPID(-5) = %d", got)
	}
}
