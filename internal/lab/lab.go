// Package lab builds small bagpipe labs on one Linux machine out of
// network namespaces, for the end-to-end tests (test/e2e) and the demo
// (cmd/bagpipe-demo).
//
// The topology is an "underlay" LAN: a switch namespace holding a Linux
// bridge, and one namespace per machine (compute node, route reflector)
// with a veth "eth0" into that bridge and an address of 10.201.0.0/24.
// Every namespace of a lab has a name starting with the lab's prefix, so
// that DeleteNamespaces(prefix) removes a whole lab, including the VM
// namespaces bagpipe-rest-attach created inside it when they were named
// with the same prefix.
//
// Namespaces are made with "ip netns add" (a bind mount under /run/netns,
// visible to "ip netns exec" and to every tool), links with "ip link";
// processes run under "ip netns exec NAME", which execs the program (the
// PID is the program's). Everything needs root (CAP_NET_ADMIN and
// CAP_SYS_ADMIN).
package lab

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Underlay addressing.
var (
	// UnderlaySubnet is the underlay LAN of every lab.
	UnderlaySubnet = netip.MustParsePrefix("10.201.0.0/24")
	// RRAddr is the route reflector's underlay address.
	RRAddr = netip.MustParseAddr("10.201.0.254")
)

// SwitchBridge is the name of the bridge inside the switch namespace.
const SwitchBridge = "br0"

// UplinkName is the name of a machine's underlay interface.
const UplinkName = "eth0"

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// restAttachMarkers is where bagpipe-rest-attach marks the namespaces it
// created (see internal/cli); DeleteNamespace removes the marker too.
const restAttachMarkers = "/run/bagpipe-rest-attach/netns"

// NodeAddr returns the underlay address of the n-th compute node
// (1-based): 10.201.0.n.
func NodeAddr(n int) netip.Addr {
	a := UnderlaySubnet.Addr().As4()
	a[3] = byte(n)
	return netip.AddrFrom4(a)
}

// CheckTools returns an error when the caller is not root or when one of
// the programs a lab needs is missing: ip (namespaces, links), nsenter
// (bagpipe-rest-attach --port netns under ip netns exec) and ping.
func CheckTools() error {
	if os.Geteuid() != 0 {
		return errors.New("a lab needs root (network namespaces, veths, bridges): run it as root")
	}
	var missing []string
	for _, tool := range []string{"ip", "nsenter", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools %s: apt-get install iproute2 util-linux iputils-ping", strings.Join(missing, ", "))
	}
	return nil
}

// IP runs "ip args..." and returns its error with the output.
func IP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Command returns the command running name args... inside namespace ns
// (ip netns exec ns name args...).
func Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// NamespaceExists reports whether a named namespace exists.
func NamespaceExists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return err == nil
}

// AddNamespace creates a named namespace (ip netns add) and brings its
// loopback up.
func AddNamespace(name string) error {
	if err := IP("netns", "add", name); err != nil {
		return err
	}
	return IP("-n", name, "link", "set", "lo", "up")
}

// Namespaces lists the named namespaces whose name starts with prefix.
func Namespaces(prefix string) ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// PIDs returns the processes running in a named namespace (ip netns pids).
func PIDs(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

// DeleteNamespaces deletes every named namespace whose name starts with
// prefix, after killing (SIGTERM, then SIGKILL after grace) the processes
// still running in them. prefix must not be empty.
func DeleteNamespaces(prefix string, grace time.Duration) error {
	if prefix == "" {
		return errors.New("lab: refusing to delete every namespace (empty prefix)")
	}
	names, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	var pids []int
	for _, n := range names {
		pids = append(pids, PIDs(n)...)
	}
	StopPIDs(pids, grace)
	var errs []error
	for _, n := range names {
		if err := DeleteNamespace(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DeleteNamespace deletes a named namespace (ip netns del) and the
// bagpipe-rest-attach marker of that name. A missing namespace is not an
// error.
func DeleteNamespace(name string) error {
	os.Remove(filepath.Join(restAttachMarkers, name))
	if !NamespaceExists(name) {
		return nil
	}
	return IP("netns", "del", name)
}

// StopPIDs sends SIGTERM to each process, waits up to grace for all of
// them to exit, then sends SIGKILL to those left. Processes that are
// children of the caller must also be reaped by it (exec.Cmd.Wait).
func StopPIDs(pids []int, grace time.Duration) {
	for _, p := range pids {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for _, p := range pids {
		for Alive(p) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if Alive(p) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// Alive reports whether process pid exists and is not a zombie.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// Underlay is the switch of a lab and the machines plugged into it.
type Underlay struct {
	// Prefix starts the name of every namespace of the lab.
	Prefix string
	// Switch is the switch namespace, holding SwitchBridge.
	Switch string
}

// NewUnderlay creates the switch namespace prefix+"sw" with its bridge up.
// On error, what was created is deleted.
func NewUnderlay(prefix string) (*Underlay, error) {
	u := &Underlay{Prefix: prefix, Switch: prefix + "sw"}
	err := AddNamespace(u.Switch)
	if err == nil {
		err = IP("-n", u.Switch, "link", "add", SwitchBridge, "type", "bridge")
	}
	if err == nil {
		err = IP("-n", u.Switch, "link", "set", SwitchBridge, "up")
	}
	if err != nil {
		DeleteNamespace(u.Switch)
		return nil, fmt.Errorf("creating the underlay switch %s: %w", u.Switch, err)
	}
	return u, nil
}

// AddMachine creates the namespace prefix+name with a veth UplinkName
// holding addr/24, plugged into the switch bridge (switch side
// "p-"+name), and returns the namespace name.
func (u *Underlay) AddMachine(name string, addr netip.Addr) (string, error) {
	ns := u.Prefix + name
	swPort := "p-" + name
	steps := [][]string{
		{"link", "add", UplinkName, "netns", ns, "type", "veth", "peer", "name", swPort, "netns", u.Switch},
		{"-n", u.Switch, "link", "set", swPort, "master", SwitchBridge, "up"},
		{"-n", ns, "addr", "add", netip.PrefixFrom(addr, UnderlaySubnet.Bits()).String(), "dev", UplinkName},
		{"-n", ns, "link", "set", UplinkName, "up"},
	}
	if err := AddNamespace(ns); err != nil {
		return "", fmt.Errorf("creating machine %s: %w", name, err)
	}
	for _, s := range steps {
		if err := IP(s...); err != nil {
			DeleteNamespace(ns)
			return "", fmt.Errorf("plugging machine %s into the underlay: %w", name, err)
		}
	}
	return ns, nil
}

// Close deletes every namespace of the lab (see DeleteNamespaces).
func (u *Underlay) Close() error { return DeleteNamespaces(u.Prefix, 5*time.Second) }

// Ping runs "ping -n -c count -W wait dst" in namespace ns and returns
// how many replies came back, and ping's output.
func Ping(ns string, dst netip.Addr, count, wait int) (received int, out string) {
	b, _ := Command(ns, "ping", "-n", "-c", strconv.Itoa(count), "-W", strconv.Itoa(wait), dst.String()).CombinedOutput()
	return pingReceived(string(b)), string(b)
}

// pingReceived reads the number of replies from ping's summary line
// "3 packets transmitted, 3 received, 0% packet loss, time 2003ms"; 0
// when there is none.
func pingReceived(out string) int {
	for _, line := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(line, " packets transmitted, "); ok {
			if n, _, ok := strings.Cut(rest, " received"); ok {
				r, _ := strconv.Atoi(n)
				return r
			}
		}
	}
	return 0
}
