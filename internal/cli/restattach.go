package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
)

// attachShortUsage is what optparse prints before a usage error.
const attachShortUsage = "Usage: bagpipe-rest-attach [--attach|--detach] --network-type (ipvpn|evpn) --port (<port>|netns) --ip <ip>[/<mask>] [options] (see --help)\n\n"

// RestAttachMain runs bagpipe-rest-attach with args (without the program
// name) and returns the exit status: 0 on success, 1 when the API answers
// with an error or cannot be reached or the netns port cannot be set up,
// 2 for command-line errors.
func RestAttachMain(args []string, stdout, stderr io.Writer) int {
	o, err := ParseAttachArgs(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2 // the flag package has reported it
	}
	if err := o.ResolveAPIPort(); err != nil {
		return attachFail(stderr, err)
	}
	if err := o.Normalize(stdout); err != nil {
		return attachFail(stderr, err)
	}
	if o.NetnsMode() {
		if err := prepareNetnsPort(o, stdout, stderr); err != nil {
			return attachFail(stderr, err)
		}
	}
	if id, ok := strings.CutPrefix(o.Port, "evpn:"); ok && o.NetworkType == IPVPN {
		fmt.Fprintf(stdout, "will plug evpn %s into the IPVPN\n", id)
	} else if !ok && o.OVSPreplug && o.NetworkType == IPVPN {
		if err := ovsPreplug(o, stdout, stderr); err != nil {
			return attachFail(stderr, err)
		}
	}
	body, err := o.Body()
	if err != nil {
		return attachFail(stderr, err)
	}
	js, err := PythonJSON(body)
	if err != nil {
		return attachFail(stderr, err)
	}
	fmt.Fprintf(stdout, "request: %s\n", js)

	c := NewClient(o.Server, o.APIPort)
	resp, err := c.Post(context.Background(), "/"+o.Operation+"_localport", js)
	status := 0
	var he *HTTPError
	switch {
	case errors.As(err, &he):
		fmt.Fprintf(stdout, "   %s\n", he.Body)
		fmt.Fprintf(stderr, "error %d, reason: %s: %s\n", he.Code, he.Reason, he.Description)
		status = 1
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", err)
		status = 1
	default:
		fmt.Fprintf(stdout, "response: %d %s\n", 200, strings.TrimSpace(string(resp)))
	}
	if o.NetnsMode() && o.Operation == "detach" {
		vethRemoved, nsRemoved, err := DeleteNetnsPort(o.Netns, o.If2Netns, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 1
		}
		if vethRemoved {
			fmt.Fprintf(stdout, "Removed local port %s\n", o.If2Netns)
		}
		if nsRemoved {
			fmt.Fprintf(stdout, "Removed namespace %s\n", o.Netns)
		}
	}
	return status
}

// attachFail reports err: usage errors as optparse does (status 2),
// others as plain errors (status 1).
func attachFail(stderr io.Writer, err error) int {
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%sbagpipe-rest-attach: error: %s\n", attachShortUsage, ue.Msg)
		return 2
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	return 1
}

// prepareNetnsPort creates the namespace port on attach, then points the
// options at its host-side interface and its MAC.
func prepareNetnsPort(o *AttachOptions, stdout, stderr io.Writer) error {
	if o.Operation == "attach" {
		fmt.Fprintf(stdout, "Will plug local namespace %s into network\n", o.Netns)
		pfx, err := netip.ParsePrefix(o.IP)
		if err != nil {
			return usageErrorf("--ip %s is not an IP address with an optional /mask: %v", o.IP, err)
		}
		gw, err := netip.ParseAddr(o.GatewayIP)
		if err != nil {
			return usageErrorf("--gateway-ip %s is not an IP address: %v", o.GatewayIP, err)
		}
		p := NetnsPort{Namespace: o.Netns, HostIf: o.If2Netns, NSIf: o.If2VPN, VLAN: o.OVSVLAN, Addr: pfx, Gateway: gw}
		if o.MAC != "" {
			if p.MAC, err = net.ParseMAC(o.MAC); err != nil {
				return usageErrorf("--mac %s is not a MAC address: %v", o.MAC, err)
			}
		}
		if err := CreateNetnsPort(p, stderr); err != nil {
			return fmt.Errorf("cannot plug namespace %s: %w", o.Netns, err)
		}
	}
	o.Port = o.If2Netns
	if o.MAC == "" {
		mac, err := NetnsMAC(o.Netns, o.If2VPN)
		if err != nil {
			return err
		}
		o.MAC = mac.String()
	}
	fmt.Fprintf(stdout, "Local port: %s (%s)\n", o.Port, o.MAC)
	return nil
}

// ovsPreplug (re-)adds the port to the OVS bridge, as upstream.
func ovsPreplug(o *AttachOptions, stdout, stderr io.Writer) error {
	fmt.Fprintf(stdout, "pre-plugging %s into %s\n", o.Port, o.OVSBridge)
	if out, err := exec.Command("ovs-vsctl", "del-port", o.OVSBridge, o.Port).CombinedOutput(); err != nil {
		fmt.Fprintf(stderr, "warning: ovs-vsctl del-port %s %s: %v: %s\n", o.OVSBridge, o.Port, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("ovs-vsctl", "add-port", o.OVSBridge, o.Port).CombinedOutput(); err != nil {
		return fmt.Errorf("ovs-vsctl add-port %s %s failed (is Open vSwitch running?): %w: %s", o.OVSBridge, o.Port, err, strings.TrimSpace(string(out)))
	}
	return nil
}
