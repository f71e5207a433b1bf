package scale

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Namespace is a network namespace created for one daemon under test, joined
// to the root namespace by a veth pair: the root side carries Peer (where
// bagpipe-scale's route reflector listens), the namespace side carries Local
// (the daemon's local_address, BGP source, VTEP and REST address).
type Namespace struct {
	// Name is the namespace name under /var/run/netns.
	Name string
	// Peer is the root-side address (the route reflector's).
	Peer netip.Addr
	// Local is the namespace-side address (the daemon's).
	Local netip.Addr
	// RemoteVTEP is a further address of the subnet, owned by nobody, used
	// as the next hop of injected routes (a fake remote VTEP).
	RemoteVTEP netip.Addr
	// Handle is a netlink handle inside the namespace.
	Handle *netlink.Handle
	// NsHandle is an open handle of the namespace (for subscriptions).
	NsHandle netns.NsHandle

	rootIf string
	log    *slog.Logger

	// vms is the companion namespace "<Name>-vm" holding the VM ends of
	// the ports (created by the first AddPorts), with IPv6 disabled.
	vms       string
	vmsHandle *netlink.Handle
	vmsNs     netns.NsHandle
}

// run runs a command and returns its error with its output.
func run(args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NewNamespace creates namespace number k of this process (a unique name
// "bpscale-<pid>-<k>"), a veth pair and the addresses 10.<200+k>.<pid%250>.1
// (root side) and .2 (namespace side) on a /24. It needs root and iproute2.
// Close removes everything.
func NewNamespace(k int, log *slog.Logger) (*Namespace, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the ip command is needed to create namespaces: %w (apt-get install iproute2)", err)
	}
	pid := os.Getpid()
	third := byte(pid % 250)
	n := &Namespace{
		Name:       fmt.Sprintf("bpscale-%d-%d", pid, k),
		Peer:       netip.AddrFrom4([4]byte{10, byte(200 + k), third, 1}),
		Local:      netip.AddrFrom4([4]byte{10, byte(200 + k), third, 2}),
		RemoteVTEP: netip.AddrFrom4([4]byte{10, byte(200 + k), third, 100}),
		rootIf:     fmt.Sprintf("bps%d-%d", pid%1000000, k),
		NsHandle:   netns.None(),
		vmsNs:      netns.None(),
		log:        log.With("netns", fmt.Sprintf("bpscale-%d-%d", pid, k)),
	}
	if addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4); err == nil {
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && netip.PrefixFrom(ip.Unmap(), 24).Masked() == netip.PrefixFrom(n.Peer, 24).Masked() {
				return nil, fmt.Errorf("subnet %s/24 is already used in the root namespace (%s): remove what a crashed run left (ip netns list; ip link del %s)", n.Peer, a.IP, n.rootIf)
			}
		}
	}
	steps := [][]string{
		{"ip", "netns", "add", n.Name},
		{"ip", "link", "add", n.rootIf, "type", "veth", "peer", "name", "bps0", "netns", n.Name},
		{"ip", "addr", "add", n.Peer.String() + "/24", "dev", n.rootIf},
		{"ip", "link", "set", n.rootIf, "up"},
		{"ip", "-n", n.Name, "addr", "add", n.Local.String() + "/24", "dev", "bps0"},
		{"ip", "-n", n.Name, "link", "set", "bps0", "up"},
		{"ip", "-n", n.Name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			n.Close()
			return nil, fmt.Errorf("creating namespace %s: %w", n.Name, err)
		}
	}
	var err error
	if n.NsHandle, err = netns.GetFromName(n.Name); err != nil {
		n.Close()
		return nil, fmt.Errorf("opening namespace %s: %w", n.Name, err)
	}
	if n.Handle, err = netlink.NewHandleAt(n.NsHandle); err != nil {
		n.Close()
		return nil, fmt.Errorf("netlink handle in namespace %s: %w", n.Name, err)
	}
	return n, nil
}

// AddPorts creates veth pairs name(i)/"q"+name(i), both up, to serve as VM
// ports for the linux driver: name(i) in the namespace (the tap the daemon
// plugs into its bridge), "q"+name(i) in the companion namespace
// "<Name>-vm", which stands for the VMs. IPv6 is disabled there: the VM
// ends stand for VM kernels, which do not run on the host's network stack.
// Left in the daemon's namespace with IPv6 on, each new port's DAD, MLD
// and router solicitations are flooded by the bridge to every other VM
// end, whose IPv6 receive path (a route lookup over one ff00::/8 route per
// interface) then dominates the machine: attach p99 ~100 ms at 1,000
// ports, measured with perf, a cost no compute node has.
func (n *Namespace) AddPorts(names []string) error {
	if err := n.vmNamespace(); err != nil {
		return err
	}
	for _, name := range names {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "q" + name, PeerNamespace: netlink.NsFd(n.vmsNs)}
		if err := n.Handle.LinkAdd(v); err != nil {
			return fmt.Errorf("creating VM port %s in %s: %w", name, n.Name, err)
		}
		for _, end := range []struct {
			h    *netlink.Handle
			name string
		}{{n.Handle, name}, {n.vmsHandle, "q" + name}} {
			l, err := end.h.LinkByName(end.name)
			if err != nil {
				return fmt.Errorf("finding VM port %s: %w", end.name, err)
			}
			if err := end.h.LinkSetUp(l); err != nil {
				return fmt.Errorf("setting VM port %s up: %w", end.name, err)
			}
		}
	}
	return nil
}

// vmNamespace creates the companion namespace of the VM ends once.
func (n *Namespace) vmNamespace() error {
	if n.vmsHandle != nil {
		return nil
	}
	name := n.Name + "-vm"
	steps := [][]string{
		{"ip", "netns", "add", name},
		{"ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
	}
	n.vms = name
	for _, s := range steps {
		if err := run(s...); err != nil {
			return fmt.Errorf("creating the VM namespace %s: %w", name, err)
		}
	}
	var err error
	if n.vmsNs, err = netns.GetFromName(name); err != nil {
		return fmt.Errorf("opening namespace %s: %w", name, err)
	}
	if n.vmsHandle, err = netlink.NewHandleAt(n.vmsNs); err != nil {
		return fmt.Errorf("netlink handle in namespace %s: %w", name, err)
	}
	return nil
}

// Close deletes the namespace (its veth end goes with it, and so does the
// root side) and closes the handles. It is safe to call more than once.
func (n *Namespace) Close() error {
	if n.Handle != nil {
		n.Handle.Close()
		n.Handle = nil
	}
	if n.NsHandle.IsOpen() {
		n.NsHandle.Close()
		n.NsHandle = netns.None()
	}
	if n.vmsHandle != nil {
		n.vmsHandle.Close()
		n.vmsHandle = nil
	}
	if n.vmsNs.IsOpen() {
		n.vmsNs.Close()
		n.vmsNs = netns.None()
	}
	var errs []error
	if n.vms != "" {
		if _, err := os.Stat("/var/run/netns/" + n.vms); err == nil {
			if err := run("ip", "netns", "del", n.vms); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if _, err := os.Stat("/var/run/netns/" + n.Name); err == nil {
		if err := run("ip", "netns", "del", n.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := netlink.LinkByName(n.rootIf); err == nil {
		if err := run("ip", "link", "del", n.rootIf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
