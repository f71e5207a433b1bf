//go:build !linux

package cli

import (
	"errors"
	"io"
	"net"
	"net/netip"
)

// errNoNetns is returned off Linux: network namespaces are Linux-only.
var errNoNetns = errors.New("--port netns needs Linux network namespaces")

// NetnsPort is a "netns" port (Linux only; see netns_linux.go).
type NetnsPort struct {
	Namespace, HostIf, NSIf string
	VLAN                    int
	MAC                     net.HardwareAddr
	Addr                    netip.Prefix
	Gateway                 netip.Addr
}

// CreateNetnsPort fails off Linux.
func CreateNetnsPort(NetnsPort, io.Writer) error { return errNoNetns }

// DeleteNetnsPort fails off Linux.
func DeleteNetnsPort(string, string, io.Writer) (bool, bool, error) {
	return false, false, errNoNetns
}

// NetnsMAC fails off Linux.
func NetnsMAC(string, string) (net.HardwareAddr, error) { return nil, errNoNetns }
