package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Interface settings of a netns port, as upstream's rest_attach.py.
const (
	// rawIfName is the namespace side of the veth when a VLAN
	// sub-interface is the port (--ovs-vlan).
	rawIfName = "ns2vpn-raw"
	// vethCreateMTU is the MTU both veth ends get at creation.
	vethCreateMTU = 65535
	// hostMTU is then set on the host side (so that an OVS bridge the port
	// joins can keep a large MTU).
	hostMTU = 9000
	// nsMTU is set on the interface inside the namespace.
	nsMTU = 1420
)

// NetnsPort is a "netns" port: a network namespace, standing for a VM,
// linked to the current network namespace by a veth pair.
type NetnsPort struct {
	// Namespace is the name of the namespace (as with ip netns).
	Namespace string
	// HostIf is the veth end left in the current network namespace: the
	// local port attached to the VPN.
	HostIf string
	// NSIf is the interface inside the namespace that carries the address
	// (with VLAN set, a VLAN sub-interface of the veth end "ns2vpn-raw").
	NSIf string
	// VLAN, when non-zero, is the VLAN id of NSIf.
	VLAN int
	// MAC, when set, is given to NSIf.
	MAC net.HardwareAddr
	// Addr is the address and prefix length of NSIf.
	Addr netip.Prefix
	// Gateway is the default route's next hop inside the namespace.
	Gateway netip.Addr
}

// CreateNetnsPort sets up p as upstream's create_special_netns_port does,
// with netlink: it creates the namespace if missing (ip netns add
// semantics, see nsStore), deletes stale interfaces of a previous run,
// creates the veth pair (host end in the current network namespace, MTU
// 65535 then 9000 on the host end), brings lo and the interfaces up, sets
// the MAC and the address, adds the default route via p.Gateway and sets
// MTU 1420 inside. Like upstream, failures to add the address, the route
// or the inner MTU are reported on warn but not fatal.
func CreateNetnsPort(p NetnsPort, warn io.Writer) error {
	store := locateNSStore()
	ns, err := store.ensure(p.Namespace)
	if err != nil {
		return err
	}
	defer ns.Close()
	nsh, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("cannot open a netlink socket in namespace %s: %w", p.Namespace, err)
	}
	defer nsh.Close()

	vethNS := p.NSIf
	if p.VLAN != 0 {
		vethNS = rawIfName
	}
	for _, name := range []string{vethNS, p.NSIf} {
		if l, err := nsh.LinkByName(name); err == nil {
			if err := nsh.LinkDel(l); err != nil {
				return fmt.Errorf("cannot delete the stale interface %s in namespace %s: %w", name, p.Namespace, err)
			}
		}
	}
	if _, err := deleteHostIf(p.HostIf, warn); err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: p.HostIf, MTU: vethCreateMTU},
		PeerName:      vethNS,
		PeerMTU:       vethCreateMTU,
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("cannot create the veth pair %s (here) <-> %s (namespace %s): %w", p.HostIf, vethNS, p.Namespace, err)
	}
	host, err := netlink.LinkByName(p.HostIf)
	if err != nil {
		return fmt.Errorf("cannot find the new veth end %s: %w", p.HostIf, err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("cannot bring %s up: %w", p.HostIf, err)
	}
	if err := netlink.LinkSetMTU(host, hostMTU); err != nil {
		return fmt.Errorf("cannot set MTU %d on %s: %w", hostMTU, p.HostIf, err)
	}
	if lo, err := nsh.LinkByName("lo"); err == nil {
		if err := nsh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("cannot bring lo up in namespace %s: %w", p.Namespace, err)
		}
	}
	inner, err := nsh.LinkByName(vethNS)
	if err != nil {
		return fmt.Errorf("cannot find the veth end %s in namespace %s: %w", vethNS, p.Namespace, err)
	}
	if err := nsh.LinkSetUp(inner); err != nil {
		return fmt.Errorf("cannot bring %s up in namespace %s: %w", vethNS, p.Namespace, err)
	}
	if p.VLAN != 0 {
		vlan := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: p.NSIf, ParentIndex: inner.Attrs().Index}, VlanId: p.VLAN}
		if err := nsh.LinkAdd(vlan); err != nil {
			return fmt.Errorf("cannot create VLAN %d interface %s on %s in namespace %s (does the kernel have 802.1Q VLAN support, module 8021q?): %w", p.VLAN, p.NSIf, vethNS, p.Namespace, err)
		}
		if inner, err = nsh.LinkByName(p.NSIf); err != nil {
			return fmt.Errorf("cannot find the new VLAN interface %s in namespace %s: %w", p.NSIf, p.Namespace, err)
		}
		if err := nsh.LinkSetUp(inner); err != nil {
			return fmt.Errorf("cannot bring %s up in namespace %s: %w", p.NSIf, p.Namespace, err)
		}
	}
	if p.MAC != nil {
		if err := nsh.LinkSetHardwareAddr(inner, p.MAC); err != nil {
			return fmt.Errorf("cannot set MAC %s on %s in namespace %s: %w", p.MAC, p.NSIf, p.Namespace, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr.Addr().AsSlice(), Mask: net.CIDRMask(p.Addr.Bits(), p.Addr.Addr().BitLen())}}
	if err := nsh.AddrAdd(inner, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		fmt.Fprintf(warn, "warning: cannot add %s to %s in namespace %s: %v\n", p.Addr, p.NSIf, p.Namespace, err)
	}
	route := &netlink.Route{LinkIndex: inner.Attrs().Index, Gw: p.Gateway.AsSlice()}
	if err := nsh.RouteAdd(route); err != nil && !errors.Is(err, unix.EEXIST) {
		fmt.Fprintf(warn, "warning: cannot add the default route via %s in namespace %s: %v\n", p.Gateway, p.Namespace, err)
	}
	if err := nsh.LinkSetMTU(inner, nsMTU); err != nil {
		fmt.Fprintf(warn, "warning: cannot set MTU %d on %s in namespace %s: %v\n", nsMTU, p.NSIf, p.Namespace, err)
	}
	return nil
}

// DeleteNetnsPort undoes CreateNetnsPort (upstream leaves everything in
// place on detach): it deletes the veth pair through its host end hostIf,
// then deletes namespace ns if bagpipe-rest-attach created it (it leaves
// a namespace made by someone else). It reports whether the veth pair
// existed and whether the namespace was deleted.
func DeleteNetnsPort(ns, hostIf string, warn io.Writer) (vethDeleted, nsDeleted bool, err error) {
	if vethDeleted, err = deleteHostIf(hostIf, warn); err != nil {
		return false, false, err
	}
	nsDeleted, err = locateNSStore().removeIfCreated(ns)
	return vethDeleted, nsDeleted, err
}

// NetnsMAC returns the MAC address of interface ifname in namespace ns.
func NetnsMAC(ns, ifname string) (net.HardwareAddr, error) {
	h, err := locateNSStore().open(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nsh, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("cannot open a netlink socket in namespace %s: %w", ns, err)
	}
	defer nsh.Close()
	l, err := nsh.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("cannot read the MAC of %s in namespace %s (give --mac, or attach first): %w", ifname, ns, err)
	}
	return l.Attrs().HardwareAddr, nil
}

// deleteHostIf deletes interface name of the current network namespace if
// it exists (reporting whether it did), removing it from Open vSwitch
// first when it is an OVS port (otherwise OVS would take a re-created
// interface back, as upstream notes).
func deleteHostIf(name string, warn io.Writer) (bool, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return false, nil //nolint:nilerr // absent: nothing to delete
	}
	if m := l.Attrs().MasterIndex; m != 0 {
		if master, err := netlink.LinkByIndex(m); err == nil && master.Type() == "openvswitch" {
			if out, err := exec.Command("ovs-vsctl", "--if-exists", "del-port", name).CombinedOutput(); err != nil {
				fmt.Fprintf(warn, "warning: ovs-vsctl del-port %s: %v: %s\n", name, err, bytes.TrimSpace(out))
			}
		}
	}
	if err := netlink.LinkDel(l); err != nil {
		return false, fmt.Errorf("cannot delete interface %s: %w", name, err)
	}
	return true, nil
}

// nsStore is where named network namespaces persist: bind mounts of
// /run/netns/<name>, in the mount namespace of the caller, or, when the
// caller runs in a private mount namespace of its own (as under
// "ip netns exec NODE", which makes one so that its mounts do not leak),
// in the mount namespace of the nearest ancestor process outside it.
// Otherwise a namespace created under ip netns exec would vanish with the
// tool. Namespaces are added and deleted by exec'ing "ip netns add|del"
// (through nsenter --mount when the store is an ancestor's), which does
// the bind mount; everything else is done with netlink.
type nsStore struct {
	// root prefixes paths: "" or /proc/<pid>/root.
	root string
	// mntNS is "" or the /proc/<pid>/ns/mnt to run ip netns in.
	mntNS string
}

// markerDir holds one empty file per namespace bagpipe-rest-attach
// created, so that detach deletes only those.
const markerDir = "/run/bagpipe-rest-attach/netns"

func locateNSStore() nsStore {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nsStore{}
	}
	for pid := os.Getppid(); pid > 0; {
		m, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt")
		if err != nil {
			break
		}
		if m != self {
			p := "/proc/" + strconv.Itoa(pid)
			return nsStore{root: p + "/root", mntNS: p + "/ns/mnt"}
		}
		if pid == 1 {
			break
		}
		pid = parentPID(pid)
	}
	return nsStore{}
}

// parentPID returns the parent of pid from /proc/<pid>/stat, or 0.
func parentPID(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func (s nsStore) path(name string) string   { return s.root + "/run/netns/" + name }
func (s nsStore) marker(name string) string { return s.root + markerDir + "/" + name }

func checkNSName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return fmt.Errorf("%q is not a valid network namespace name (no '/', not empty): use --netns", name)
	}
	return nil
}

// open returns a handle on the named namespace; it fails if the name is
// not a mounted namespace.
func (s nsStore) open(name string) (netns.NsHandle, error) {
	if err := checkNSName(name); err != nil {
		return netns.None(), err
	}
	fd, err := unix.Open(s.path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("network namespace %s does not exist: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return netns.None(), fmt.Errorf("network namespace %s does not exist (%s is not a mounted namespace)", name, s.path(name))
	}
	return netns.NsHandle(fd), nil
}

// ensure opens the named namespace, creating it (and its marker) when
// missing.
func (s nsStore) ensure(name string) (netns.NsHandle, error) {
	if h, err := s.open(name); err == nil {
		return h, nil
	} else if err := checkNSName(name); err != nil {
		return h, err
	}
	// A plain file left where a bind mount was lost blocks ip netns add.
	if st, err := os.Lstat(s.path(name)); err == nil && st.Mode().IsRegular() && st.Size() == 0 {
		os.Remove(s.path(name))
	}
	if err := s.ip("add", name); err != nil {
		return netns.None(), err
	}
	h, err := s.open(name)
	if err != nil {
		return h, fmt.Errorf("ip netns add %s succeeded but: %w", name, err)
	}
	// Without the marker, detach just leaves the namespace in place.
	_ = os.MkdirAll(filepath.Dir(s.marker(name)), 0o755)
	_ = os.WriteFile(s.marker(name), nil, 0o644)
	return h, nil
}

// removeIfCreated deletes the named namespace if its marker exists.
func (s nsStore) removeIfCreated(name string) (bool, error) {
	if checkNSName(name) != nil {
		return false, nil
	}
	if _, err := os.Stat(s.marker(name)); err != nil {
		return false, nil //nolint:nilerr // no marker: not ours
	}
	if h, err := s.open(name); err == nil {
		h.Close()
		if err := s.ip("del", name); err != nil {
			return false, err
		}
	}
	os.Remove(s.marker(name))
	return true, nil
}

// ip runs "ip netns <op> <name>" in the store's mount namespace.
func (s nsStore) ip(op, name string) error {
	args := []string{"ip", "netns", op, name}
	if s.mntNS != "" {
		args = append([]string{"nsenter", "--mount=" + s.mntNS, "--"}, args...)
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s failed (iproute2 and util-linux's nsenter are needed): %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
