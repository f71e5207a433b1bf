package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/cli"
)

// tapName is the local port name the controller puts in a port's
// attachments ("tap" and the first 11 characters of the port id, as Nova
// names taps; see controller.TapName).
func tapName(portID string) string {
	if len(portID) > 11 {
		portID = portID[:11]
	}
	return "tap" + portID
}

func (c *cmd) portCreate(args []string) error {
	fs := newFlagSet("port create", c.g)
	network := fs.String("network", "", "network id or name")
	name, mac, ip, host, owner, desc := &optString{}, &optString{}, &optString{}, &optString{}, &optString{}, &optString{}
	fs.Var(name, "name", "")
	fs.Var(mac, "mac", "")
	fs.Var(ip, "ip", "")
	fs.Var(host, "host", "")
	fs.Var(owner, "device-owner", "")
	fs.Var(desc, "description", "")
	up := &boolFlag{}
	fs.Var(up, "admin-state-up", "")
	netns := fs.String("netns", "", "also create this network namespace as the port's VM (lab use)")
	if _, err := c.parse(fs, args, 0, 0, "no positional argument"); err != nil {
		return err
	}
	if *network == "" {
		return usagef("port create: --network is required")
	}
	if *netns != "" && host.v == nil {
		return usagef("port create: --netns needs --host, the host the port is bound to (run this command in that host's network namespace)")
	}
	netID, err := c.resolve("network", *network)
	if err != nil {
		return err
	}
	attrs := map[string]any{"network_id": netID}
	name.setIf(attrs, "name")
	mac.setIf(attrs, "mac_address")
	owner.setIf(attrs, "device_owner")
	desc.setIf(attrs, "description")
	if ip.v != nil {
		attrs["fixed_ips"] = []any{map[string]any{"ip_address": *ip.v}}
	}
	if up.v != nil {
		attrs["admin_state_up"] = *up.v
	}
	if *netns == "" {
		host.setIf(attrs, "binding:host_id")
		r, err := c.client().Create(c.ctx, "port", attrs)
		if err != nil {
			return err
		}
		return c.printOne(r)
	}
	// With --netns, the port is bound only once its tap exists, so that
	// the agent never attaches an interface that is not there yet.
	r, err := c.client().Create(c.ctx, "port", attrs)
	if err != nil {
		return err
	}
	id := str(r["id"])
	if err := c.plugNetns(r, *netns); err != nil {
		c.rollback(id, *netns)
		return err
	}
	r, err = c.client().Update(c.ctx, "port", id, map[string]any{"binding:host_id": *host.v})
	if err != nil {
		c.rollback(id, *netns)
		return fmt.Errorf("cannot bind port %s to host %s (the port and namespace %s were removed): %w", id, *host.v, *netns, err)
	}
	return c.printOne(r)
}

// plugNetns creates namespace ns with the port's MAC and first address,
// linked by a veth whose end here is the port's tap.
func (c *cmd) plugNetns(port map[string]any, ns string) error {
	id := str(port["id"])
	ips, _ := port["fixed_ips"].([]any)
	if len(ips) == 0 {
		return fmt.Errorf("port %s has no address: a --netns port needs a subnet on its network", id)
	}
	fip, _ := ips[0].(map[string]any)
	addr, err := netip.ParseAddr(str(fip["ip_address"]))
	if err != nil {
		return fmt.Errorf("port %s has an unusable address %q: %w", id, str(fip["ip_address"]), err)
	}
	sub, err := c.client().Show(c.ctx, "subnet", str(fip["subnet_id"]))
	if err != nil {
		return err
	}
	cidr, err := netip.ParsePrefix(str(sub["cidr"]))
	if err != nil {
		return fmt.Errorf("subnet %s has an unusable cidr %q: %w", str(sub["id"]), str(sub["cidr"]), err)
	}
	p := cli.NetnsPort{Namespace: ns, HostIf: tapName(id), NSIf: cli.DefaultIf2VPN,
		Addr: netip.PrefixFrom(addr, cidr.Bits())}
	if gw := str(sub["gateway_ip"]); gw != "" {
		if p.Gateway, err = netip.ParseAddr(gw); err != nil {
			return fmt.Errorf("subnet %s has an unusable gateway %q: %w", str(sub["id"]), gw, err)
		}
	}
	if p.MAC, err = net.ParseMAC(str(port["mac_address"])); err != nil {
		return fmt.Errorf("port %s has an unusable MAC %q: %w", id, str(port["mac_address"]), err)
	}
	if err := cli.CreateNetnsPort(p, c.stderr); err != nil {
		return fmt.Errorf("cannot create namespace %s for port %s: %w", ns, id, err)
	}
	if !c.g.json {
		fmt.Fprintf(c.stdout, "Namespace %s plugged: %s (here) <-> %s %s %s (in %s)\n", ns, p.HostIf, p.NSIf, p.MAC, p.Addr, ns)
	}
	return nil
}

// rollback deletes a port whose namespace could not be set up or bound.
func (c *cmd) rollback(id, ns string) {
	if _, _, err := cli.DeleteNetnsPort(ns, tapName(id), c.stderr); err != nil {
		fmt.Fprintf(c.stderr, "warning: cannot remove namespace %s: %v\n", ns, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.client().Delete(ctx, "port", id); err != nil {
		fmt.Fprintf(c.stderr, "warning: cannot delete port %s: %v\n", id, err)
	}
}

// portDelete deletes ports; with --netns, also the namespace made by port
// create --netns and the port's veth.
func (c *cmd) portDelete(args []string) error {
	fs := newFlagSet("port delete", c.g)
	netns := fs.String("netns", "", "also remove this namespace and the port's veth")
	var ids []string
	// Resolve names before deletion, to know the taps.
	pos, err := parseAll(fs, args)
	if err != nil {
		return usagef("port delete: %v", err)
	}
	if len(pos) == 0 {
		return usagef("port delete: want at least one PORT")
	}
	for _, ref := range pos {
		id, err := c.resolve("port", ref)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	if err := c.delete("port", ids, newFlagSet("port delete", c.g)); err != nil {
		return err
	}
	if *netns == "" {
		return nil
	}
	var errs []error
	for _, id := range ids {
		veth, nsGone, err := cli.DeleteNetnsPort(*netns, tapName(id), c.stderr)
		if err != nil {
			errs = append(errs, fmt.Errorf("cannot remove namespace %s of port %s: %w", *netns, id, err))
			continue
		}
		if veth && !c.g.json {
			fmt.Fprintf(c.stdout, "Removed local port %s\n", tapName(id))
		}
		if nsGone && !c.g.json {
			fmt.Fprintf(c.stdout, "Removed namespace %s\n", *netns)
		}
	}
	return errors.Join(errs...)
}
