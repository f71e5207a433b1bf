package ovs

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// remoteMAC returns the MAC of remote PE pe for bare MPLS (reference
// §7.2): Options.ResolveMAC, or a ping through the bridge followed by a
// kernel neighbour lookup (upstream uses fping and `ip neigh`). Results
// are cached for the driver's life: a PE whose MAC changes needs a
// restart, as upstream needs a route refresh.
func (d *Driver) remoteMAC(pe netip.Addr) (route.MAC, error) {
	d.mu.Lock()
	if d.macs == nil {
		d.macs = map[netip.Addr]route.MAC{}
	}
	m, ok := d.macs[pe]
	d.mu.Unlock()
	if ok {
		return m, nil
	}
	resolve := d.opts.ResolveMAC
	if resolve == nil {
		resolve = d.resolveMACDefault
	}
	m, err := resolve(pe)
	if err != nil {
		return route.MAC{}, err
	}
	d.mu.Lock()
	d.macs[pe] = m
	d.mu.Unlock()
	return m, nil
}

// nsCommand prefixes a command with `ip netns exec NS` when the driver
// was given a namespace.
func (d *Driver) nsCommand(args ...string) (string, []string) {
	if d.opts.NetNS == "" {
		return args[0], args[1:]
	}
	return "ip", append([]string{"netns", "exec", d.opts.NetNS}, args...)
}

// resolveMACByNeighbour pings pe out of the bridge's IP interface to
// trigger ARP, then reads the neighbour entry.
func (d *Driver) resolveMACByNeighbour(pe netip.Addr) (route.MAC, error) {
	br := d.opts.Bridge
	name, args := d.nsCommand("ping", "-c", "1", "-W", "1", "-I", br, pe.String())
	if _, err := d.r.run("", name, args...); err != nil {
		// The ping only triggers ARP resolution, which may have worked.
		d.log.Info("can't ping remote PE, proceeding anyway", "pe", pe, "err", err)
	}
	name, args = d.nsCommand("ip", "-4", "neigh", "show", "to", pe.String(), "dev", br)
	out, err := d.r.run("", name, args...)
	if err != nil {
		return route.MAC{}, fmt.Errorf("remote PE %s MAC address not found: %w", pe, err)
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "lladdr" && !strings.Contains(out, "FAILED") && !strings.Contains(out, "INCOMPLETE") {
			if m, err := route.ParseMAC(f[i+1]); err == nil {
				return m, nil
			}
		}
	}
	return route.MAC{}, fmt.Errorf("remote PE %s MAC address not found on %s (neighbour: %q); is the PE reachable through the bridge?", pe, br, strings.TrimSpace(out))
}
