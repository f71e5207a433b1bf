package lab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// VM is a fake VM of a lab: a network namespace that bagpipe-rest-attach
// --port netns creates, linked by a veth to the node namespace it runs in
// and plugged into an E-VPN (or IP VPN, see Type) instance there.
type VM struct {
	// Node is the namespace of the compute node.
	Node string
	// NS is the VM's namespace (--netns).
	NS string
	// Network is the E-VPN instance id (--vpn-instance-id).
	Network string
	// RT is the route target, import and export (--rt).
	RT string
	// IP is the VM's address and prefix length (--ip).
	IP netip.Prefix
	// MAC is the VM's MAC (--mac); "" lets the veth keep its random MAC,
	// which bagpipe-rest-attach then reads from the namespace.
	MAC string
	// ConfigFile is the node's bgp.conf, from which bagpipe-rest-attach
	// reads the API port (--config-file).
	ConfigFile string
	// Type is the network type (--network-type): "" means "evpn".
	Type string
	// Gateway is the gateway IP (--gateway-ip); unset lets
	// bagpipe-rest-attach take the second-to-last address of the subnet.
	Gateway netip.Addr
}

// HostIf is the node side of the VM's veth: upstream's default name
// "ns-<netns>", cut to 15 characters.
func (v VM) HostIf() string {
	n := "ns-" + v.NS
	if len(n) > 15 {
		n = n[:15]
	}
	return n
}

// RestAttachArgs are the bagpipe-rest-attach arguments attaching
// (attach true) or detaching the VM.
func (v VM) RestAttachArgs(attach bool) []string {
	op := "--detach"
	if attach {
		op = "--attach"
	}
	typ := v.Type
	if typ == "" {
		typ = "evpn"
	}
	args := []string{op, "--port", "netns", "--network-type", typ,
		"--vpn-instance-id", v.Network, "--ip", v.IP.String(), "--rt", v.RT, "--netns", v.NS}
	if v.Gateway.IsValid() {
		args = append(args, "--gateway-ip", v.Gateway.String())
	}
	if v.MAC != "" {
		args = append(args, "--mac", v.MAC)
	}
	if v.ConfigFile != "" {
		args = append(args, "--config-file", v.ConfigFile)
	}
	return args
}

// RestAttach runs "ip netns exec <node> <restAttach> <RestAttachArgs>"
// and returns its output, with an error when it fails.
func (v VM) RestAttach(restAttach string, attach bool) (string, error) {
	args := v.RestAttachArgs(attach)
	out, err := Command(v.Node, restAttach, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s bagpipe-rest-attach %s: %w:\n%s", v.Node, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ReadMAC returns the MAC of the VM's interface (tovpn) as ip prints it.
func (v VM) ReadMAC() (string, error) {
	out, err := exec.Command("ip", "-n", v.NS, "-br", "link", "show", "tovpn").Output()
	if err != nil {
		return "", fmt.Errorf("reading the MAC of VM %s: %w", v.NS, err)
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "", fmt.Errorf("reading the MAC of VM %s: unexpected output %q", v.NS, out)
	}
	return f[2], nil
}
