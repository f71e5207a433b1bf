package linuxipvpn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/netnsref"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsHandle opens a namespace given as in Options.NetNS.
func nsHandle(ns string) (netns.NsHandle, error) {
	h, err := netnsref.Open(ns)
	if err != nil {
		return h, fmt.Errorf("linux IP VPN driver: opening network namespace %q: %w (create it first, or leave the namespace empty)", ns, err)
	}
	return h, nil
}

// openSockets opens the driver's netlink Handle and its raw socket in ns.
func openSockets(ns string) (*netlink.Handle, *rawConn, error) {
	target, cur := netns.None(), netns.None()
	if ns != "" {
		var err error
		if target, err = nsHandle(ns); err != nil {
			return nil, nil, err
		}
		defer target.Close()
		if cur, err = netns.Get(); err != nil {
			return nil, nil, fmt.Errorf("linux IP VPN driver: reading the current network namespace: %w", err)
		}
		defer cur.Close()
	}
	h, err := netlink.NewHandleAt(target, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("linux IP VPN driver: opening a netlink socket in namespace %q: %w (the driver needs CAP_NET_ADMIN)", ns, err)
	}
	sock, err := nl.GetNetlinkSocketAt(target, cur, unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, nil, fmt.Errorf("linux IP VPN driver: opening a netlink socket in namespace %q: %w", ns, err)
	}
	tv := unix.NsecToTimeval((30 * time.Second).Nanoseconds())
	if err := h.SetSocketTimeout(30 * time.Second); err == nil {
		err = sock.SetSendTimeout(&tv)
		if err == nil {
			err = sock.SetReceiveTimeout(&tv)
		}
	}
	if err != nil {
		h.Close()
		sock.Close()
		return nil, nil, fmt.Errorf("linux IP VPN driver: setting netlink socket timeouts: %w", err)
	}
	return h, &rawConn{sockets: map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}}, nil
}

// writeSysctl writes /proc/sys/<key> as seen from namespace ns.
func writeSysctl(ns, key, value string) error {
	return inNetNS(ns, func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
			return fmt.Errorf("linux IP VPN driver: setting %s = %s: %w (the driver needs root)", strings.ReplaceAll(key, "/", "."), value, err)
		}
		return nil
	})
}

// readSysctl reads /proc/sys/<key> as seen from namespace ns.
func readSysctl(ns, key string) (string, error) {
	var v string
	err := inNetNS(ns, func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", key))
		v = strings.TrimSpace(string(b))
		return err
	})
	return v, err
}

// inNetNS runs f on a thread in namespace ns ("" for the current one):
// /proc/sys/net belongs to the namespace of the thread that opens it.
func inNetNS(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	target, err := nsHandle(ns)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread stays locked if it cannot return to its namespace:
		// Go then discards it with the goroutine.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// rpFilterWarning explains what reverse-path filtering mode v
// (net.ipv4.conf.all.rp_filter) does to VRF traffic, "" if nothing. The
// kernel checks a packet's source with a lookup from the loopback
// interface, which our "iif <port>" rules do not match: the check uses
// the main table, not the VRF's.
func rpFilterWarning(v string) string {
	switch v {
	case "1":
		return "net.ipv4.conf.all.rp_filter is 1 (strict): the kernel drops VRF traffic whose source is not routed by the main table through the same interface, i.e. all of it; set it to 0 (or 2 with a default route in the main table)"
	case "2":
		return "net.ipv4.conf.all.rp_filter is 2 (loose): VRF traffic passes only if the main table routes its source somewhere (a default route does); set it to 0 if the node has no default route"
	}
	return ""
}

// ensureDevice creates the collect_md VXLAN device, or checks and adopts
// the existing one, and brings it up. It updates d.vxIndex.
func (d *Driver) ensureDevice() error {
	l, err := d.h.LinkByName(DeviceName)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("linux IP VPN driver: looking up %s: %w", DeviceName, err)
	}
	if err == nil {
		a := l.Attrs()
		if a.Alias != DeviceAlias {
			return fmt.Errorf("linux IP VPN driver: interface %s exists but is not ours (alias %q, want %q); delete or rename it", DeviceName, a.Alias, DeviceAlias)
		}
		vx, ok := l.(*netlink.Vxlan)
		if !ok || !vx.FlowBased || vx.Port != d.opts.VXLANPort || vx.Learning {
			d.log.Info("recreating the VXLAN device: its configuration changed", "device", DeviceName, "port", d.opts.VXLANPort)
			if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
				return fmt.Errorf("linux IP VPN driver: deleting the outdated %s: %w", DeviceName, err)
			}
			l = nil
		}
	} else {
		l = nil
	}
	if l == nil {
		la := netlink.NewLinkAttrs()
		la.Name = DeviceName
		la.HardwareAddr = GatewayMAC
		vx := &netlink.Vxlan{LinkAttrs: la, FlowBased: true, Port: d.opts.VXLANPort, Learning: false}
		if err := d.h.LinkAdd(vx); err != nil {
			return fmt.Errorf("linux IP VPN driver: creating the collect_md VXLAN device %s: %w", DeviceName, err)
		}
		if l, err = d.h.LinkByName(DeviceName); err != nil {
			return fmt.Errorf("linux IP VPN driver: %s vanished after creation: %w", DeviceName, err)
		}
		if err := d.h.LinkSetAlias(l, DeviceAlias); err != nil {
			_ = d.h.LinkDel(l)
			return fmt.Errorf("linux IP VPN driver: marking %s as ours: %w", DeviceName, err)
		}
	}
	if l.Attrs().HardwareAddr.String() != GatewayMAC.String() {
		if err := d.h.LinkSetHardwareAddr(l, GatewayMAC); err != nil {
			return fmt.Errorf("linux IP VPN driver: setting the MAC of %s to %s: %w", DeviceName, GatewayMAC, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := d.h.LinkSetUp(l); err != nil {
			if errors.Is(err, unix.EADDRINUSE) {
				return fmt.Errorf("linux IP VPN driver: bringing %s up: UDP port %d is in use (%w); a collect_md VXLAN device cannot share its port with the classic VXLAN devices of the E-VPN linux driver: set a different vxlan_dst_port in [DATAPLANE_DRIVER_IPVPN] and [DATAPLANE_DRIVER_EVPN]", DeviceName, d.opts.VXLANPort, err)
			}
			return fmt.Errorf("linux IP VPN driver: bringing %s up: %w", DeviceName, err)
		}
	}
	tx, err := d.ensureTXDevice(l.Attrs().Index)
	if err != nil {
		return err
	}
	d.mu.Lock()
	changed := d.vxIndex != 0 && d.vxIndex != tx
	d.vxIndex = tx
	d.mu.Unlock()
	if changed {
		d.log.Warn("the VXLAN devices were recreated: remote routes are rewritten by the reconcile", "device", TXDeviceName)
	}
	return nil
}

// ensureTXDevice creates or checks the macvlan TXDeviceName on the VXLAN
// device (index parent) and returns its index.
func (d *Driver) ensureTXDevice(parent int) (int, error) {
	l, err := d.h.LinkByName(TXDeviceName)
	if err != nil && !isNotFound(err) {
		return 0, fmt.Errorf("linux IP VPN driver: looking up %s: %w", TXDeviceName, err)
	}
	if err == nil {
		a := l.Attrs()
		if a.Alias != DeviceAlias {
			return 0, fmt.Errorf("linux IP VPN driver: interface %s exists but is not ours (alias %q, want %q); delete or rename it", TXDeviceName, a.Alias, DeviceAlias)
		}
		if _, ok := l.(*netlink.Macvlan); !ok || a.ParentIndex != parent {
			if err := d.h.LinkDel(l); err != nil && !isNotFound(err) {
				return 0, fmt.Errorf("linux IP VPN driver: deleting the outdated %s: %w", TXDeviceName, err)
			}
			l = nil
		}
	} else {
		l = nil
	}
	if l == nil {
		la := netlink.NewLinkAttrs()
		la.Name = TXDeviceName
		la.ParentIndex = parent
		la.HardwareAddr = TXMAC
		if err := d.h.LinkAdd(&netlink.Macvlan{LinkAttrs: la, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
			return 0, fmt.Errorf("linux IP VPN driver: creating the macvlan %s on %s: %w", TXDeviceName, DeviceName, err)
		}
		if l, err = d.h.LinkByName(TXDeviceName); err != nil {
			return 0, fmt.Errorf("linux IP VPN driver: %s vanished after creation: %w", TXDeviceName, err)
		}
		if err := d.h.LinkSetAlias(l, DeviceAlias); err != nil {
			_ = d.h.LinkDel(l)
			return 0, fmt.Errorf("linux IP VPN driver: marking %s as ours: %w", TXDeviceName, err)
		}
	}
	if l.Attrs().HardwareAddr.String() != TXMAC.String() {
		if err := d.h.LinkSetHardwareAddr(l, TXMAC); err != nil {
			return 0, fmt.Errorf("linux IP VPN driver: setting the MAC of %s: %w", TXDeviceName, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := d.h.LinkSetUp(l); err != nil {
			return 0, fmt.Errorf("linux IP VPN driver: bringing %s up: %w", TXDeviceName, err)
		}
	}
	return l.Attrs().Index, nil
}

// vx returns the index of the device remote routes use (TXDeviceName).
func (d *Driver) vx() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vxIndex
}

// moveLocalRule replaces the pref-0 "lookup local" rule by one at
// prefLocal (ours: protocol rtProto), so the VRF rules come first and VMs
// cannot reach the host's own addresses (dataplanes.md §2).
func (d *Driver) moveLocalRule() error {
	rules, err := d.raw.rules()
	if err != nil {
		return fmt.Errorf("linux IP VPN driver: listing rules: %w", err)
	}
	local := rule{Pref: prefLocal, Table: rtTableLocal}
	var atZero, ours bool
	for _, r := range rules {
		if r.Table == rtTableLocal && !r.Other && r.rule == (rule{Pref: 0, Table: rtTableLocal}) {
			atZero = true
		}
		if r.rule == local && r.Protocol == rtProto {
			ours = true
		}
	}
	if !ours {
		if err := d.raw.ruleAdd(local, rtProto); err != nil {
			return fmt.Errorf("linux IP VPN driver: adding the rule %s: %w", local, err)
		}
	}
	if atZero {
		if err := d.raw.ruleDel(rule{Pref: 0, Table: rtTableLocal}, 0); err != nil {
			return fmt.Errorf("linux IP VPN driver: deleting the pref 0 local-table rule: %w", err)
		}
		d.log.Info("moved the local-table rule after the VPN rules", "pref", prefLocal)
	}
	return nil
}

// restoreLocalRule undoes moveLocalRule if our moved rule is there.
func (d *Driver) restoreLocalRule() error {
	rules, err := d.raw.rules()
	if err != nil {
		return err
	}
	local := rule{Pref: prefLocal, Table: rtTableLocal}
	for _, r := range rules {
		if r.rule == local && r.Protocol == rtProto {
			if err := d.raw.ruleAdd(rule{Pref: 0, Table: rtTableLocal}, unix.RTPROT_KERNEL); err != nil {
				return fmt.Errorf("restoring the pref 0 local-table rule: %w", err)
			}
			return d.raw.ruleDel(local, rtProto)
		}
	}
	return nil
}

// dropRule drops the traffic received on the VXLAN device that no "tun_id
// <label>" rule delivered: its VNI is no local endpoint's label.
var dropRule = rule{Pref: prefDrop, Iif: DeviceName, Action: frActBlackhole}

// ensureDropRule adds dropRule (ours: protocol rtProto) unless present.
func (d *Driver) ensureDropRule() error {
	if err := d.raw.ruleAdd(dropRule, rtProto); err != nil {
		return fmt.Errorf("linux IP VPN driver: adding the rule %s: %w", dropRule, err)
	}
	return nil
}

// removeDropRule deletes dropRule if present.
func (d *Driver) removeDropRule() error {
	if err := d.raw.ruleDel(dropRule, rtProto); err != nil {
		return fmt.Errorf("deleting the rule %s: %w", dropRule, err)
	}
	return nil
}
