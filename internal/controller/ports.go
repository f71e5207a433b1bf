package controller

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bagpipe-go/bagpipe/internal/controller/alloc"
)

// fixedReq is one requested address of a port: an address, a subnet to
// allocate from, or both.
type fixedReq struct {
	SubnetID string
	IP       netip.Addr
}

// parseFixedIPs reads the fixed_ips field (nil, false when absent).
func parseFixedIPs(b body) ([]fixedReq, bool, error) {
	var raw []map[string]json.RawMessage
	ok, err := b.take("fixed_ips", &raw, "a list of {\"subnet_id\", \"ip_address\"} objects")
	if err != nil || !ok {
		return nil, ok, err
	}
	out := make([]fixedReq, 0, len(raw))
	for _, m := range raw {
		var r fixedReq
		item := body(m)
		var ip string
		if err := item.uuid("subnet_id", &r.SubnetID); err != nil {
			return nil, true, err
		}
		if err := item.str("ip_address", &ip); err != nil {
			return nil, true, err
		}
		if err := item.leftover(); err != nil {
			return nil, true, err
		}
		if ip != "" {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return nil, true, invalidInput("fixed_ips", "'%s' is not a valid IP address", ip)
			}
			r.IP = a
		}
		if r.SubnetID == "" && !r.IP.IsValid() {
			return nil, true, invalidInput("fixed_ips", "each entry needs a subnet_id, an ip_address or both")
		}
		out = append(out, r)
	}
	return out, true, nil
}

// portFields reads the fields that create and update share.
func portFields(b body, p *Port) error {
	var profile map[string]any
	var vnic string
	var sgs []string
	for _, err := range []error{b.str("name", &p.Name), b.str("description", &p.Description),
		b.boolean("admin_state_up", &p.AdminStateUp), b.str("device_id", &p.DeviceID),
		b.str("device_owner", &p.DeviceOwner), b.str("binding:host_id", &p.HostID),
		b.str("binding:vnic_type", &vnic)} {
		if err != nil {
			return err
		}
	}
	if strings.Contains(p.HostID, "/") {
		return invalidInput("binding:host_id", "'%s' contains '/'", p.HostID)
	}
	if vnic != "" && vnic != "normal" {
		return invalidInput("binding:vnic_type", "only 'normal' is supported, not '%s'", vnic)
	}
	if ok, err := b.take("binding:profile", &profile, "an object"); err != nil {
		return err
	} else if ok {
		p.Profile = profile
	}
	if ok, err := b.take("security_groups", &sgs, "a list of strings"); err != nil {
		return err
	} else if ok {
		p.SecurityGroups = sgs
	}
	if p.Profile == nil {
		p.Profile = map[string]any{}
	}
	if p.SecurityGroups == nil {
		p.SecurityGroups = []string{}
	}
	p.VIFType = "unbound"
	if p.HostID != "" {
		p.VIFType = "bridge"
	}
	return nil
}

// parseMACField reads mac_address ("" when absent).
func parseMACField(b body) (string, error) {
	var s string
	ok, err := b.take("mac_address", &s, "a string")
	if err != nil || !ok {
		return "", err
	}
	m, valid := normMAC(s)
	if !valid {
		return "", invalidInput("mac_address", "'%s' is not a valid unicast MAC address", s)
	}
	return m, nil
}

// CreatePort creates a port, generating its MAC and allocating its
// addresses when not given.
func (c *Controller) CreatePort(ctx context.Context, b body) (*Port, error) {
	p := Port{AdminStateUp: true, Status: "DOWN", VNICType: "normal", VIFDetails: map[string]any{}}
	for _, err := range []error{b.uuid("id", &p.ID), b.project(&p.ProjectID), b.uuid("network_id", &p.NetworkID),
		portFields(b, &p)} {
		if err != nil {
			return nil, err
		}
	}
	p.TenantID = p.ProjectID
	if p.ID == "" {
		p.ID = newUUID()
	}
	if p.NetworkID == "" {
		return nil, invalidInput("network_id", "it is required")
	}
	mac, err := parseMACField(b)
	if err != nil {
		return nil, err
	}
	reqs, haveIPs, err := parseFixedIPs(b)
	if err != nil {
		return nil, err
	}
	if err := b.leftover(); err != nil {
		return nil, err
	}
	p.CreatedAt, p.UpdatedAt, p.RevisionNumber = now(), now(), 1
	_, err = c.commit(ctx, func() (*plan, error) {
		n, subs, pl, err := c.portContext(ctx, p.NetworkID)
		if err != nil {
			return nil, err
		}
		if r, err := c.getJSON(ctx, c.portKey(p.ID), new(Port)); err != nil || r != 0 {
			if err == nil {
				err = newErr(http.StatusConflict, "PortExists", "a port with id %s already exists", p.ID)
			}
			return nil, err
		}
		if p.MACAddress, err = c.claimMAC(ctx, n.ID, mac, ""); err != nil {
			return nil, err
		}
		if !haveIPs {
			p.FixedIPs, err = c.defaultIP(ctx, n, subs)
		} else {
			p.FixedIPs, err = c.resolveIPs(ctx, n, subs, reqs, nil)
		}
		if err != nil {
			return nil, err
		}
		pl.absent(c.portKey(p.ID))
		c.portPlan(pl, nil, &p, n, subs)
		return pl, nil
	})
	if err != nil {
		return nil, err
	}
	c.log.Info("port created", "port", p.ID, "network", p.NetworkID, "mac", p.MACAddress, "host", p.HostID)
	return &p, nil
}

// portContext reads a port's network and subnets, and starts a plan that
// requires them unchanged.
func (c *Controller) portContext(ctx context.Context, netID string) (*Network, map[string]*Subnet, *plan, error) {
	n, nrev, err := c.readNetwork(ctx, netID)
	if err != nil {
		return nil, nil, nil, err
	}
	pl := &plan{}
	pl.same(c.netKey(n.ID), nrev)
	subs := make(map[string]*Subnet, len(n.Subnets))
	for _, id := range n.Subnets {
		s, rev, err := c.readSubnet(ctx, id)
		if err != nil {
			return nil, nil, nil, err
		}
		subs[id] = s
		pl.same(c.subnetKey(id), rev)
	}
	return n, subs, pl, nil
}

// claimMAC checks that mac is free on the network (or generates a free
// one when mac is ""); keep is the port's current MAC, which it may keep.
func (c *Controller) claimMAC(ctx context.Context, netID, mac, keep string) (string, error) {
	for range 16 {
		m := mac
		if m == "" {
			m = alloc.RandomMAC()
		}
		if m == keep {
			return m, nil
		}
		resp, err := c.cli.Get(ctx, c.macKey(netID, m), clientv3.WithCountOnly())
		if err != nil {
			return "", err
		}
		if resp.Count == 0 {
			return m, nil
		}
		if mac != "" {
			return "", newErr(http.StatusConflict, "MacAddressInUse",
				"Unable to complete operation for network %s. The mac address %s is in use.", netID, mac)
		}
	}
	return "", newErr(http.StatusConflict, "MacAddressGenerationFailure",
		"Unable to generate unique mac on network %s.", netID)
}

// usedAddrs returns the allocated addresses of a subnet.
func (c *Controller) usedAddrs(ctx context.Context, subnetID string) (map[netip.Addr]bool, error) {
	keys, err := c.keySuffixes(ctx, c.ipPrefix(subnetID))
	if err != nil {
		return nil, err
	}
	used := make(map[netip.Addr]bool, len(keys))
	for _, k := range keys {
		if a, err := netip.ParseAddr(k); err == nil {
			used[a] = true
		}
	}
	return used, nil
}

// defaultIP allocates one address from the first subnet of n with a free
// one (no address when n has no subnet).
func (c *Controller) defaultIP(ctx context.Context, n *Network, subs map[string]*Subnet) ([]FixedIP, error) {
	if len(n.Subnets) == 0 {
		return []FixedIP{}, nil
	}
	for _, id := range n.Subnets {
		s := subs[id]
		used, err := c.usedAddrs(ctx, id)
		if err != nil {
			return nil, err
		}
		if a, ok := alloc.PickAddr(s.pools(), used, s.gateway()); ok {
			return []FixedIP{{SubnetID: id, IPAddress: a.String()}}, nil
		}
	}
	return nil, newErr(http.StatusConflict, "IpAddressGenerationFailure",
		"No more IP addresses available on network %s: every allocation pool of its %d subnet(s) is in use.", n.ID, len(n.Subnets))
}

// resolveIPs turns requested addresses into fixed IPs: given addresses are
// checked (inside a subnet of n, not taken unless in keep), subnet-only
// entries get a free address of their subnet.
func (c *Controller) resolveIPs(ctx context.Context, n *Network, subs map[string]*Subnet, reqs []fixedReq, keep []FixedIP) ([]FixedIP, error) {
	usedBy := map[string]map[netip.Addr]bool{}
	used := func(id string) (map[netip.Addr]bool, error) {
		if u, ok := usedBy[id]; ok {
			return u, nil
		}
		u, err := c.usedAddrs(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, k := range keep {
			if a, err := netip.ParseAddr(k.IPAddress); err == nil && k.SubnetID == id {
				delete(u, a)
			}
		}
		usedBy[id] = u
		return u, nil
	}
	subnetOf := func(r fixedReq) (*Subnet, error) {
		if r.SubnetID != "" {
			s := subs[r.SubnetID]
			if s == nil {
				return nil, newErr(http.StatusBadRequest, "InvalidInput",
					"Invalid input for operation: Failed to create port on network %s, because fixed_ips included invalid subnet %s.", n.ID, r.SubnetID)
			}
			return s, nil
		}
		for _, id := range n.Subnets {
			if subs[id].prefix().Contains(r.IP) {
				return subs[id], nil
			}
		}
		return nil, newErr(http.StatusBadRequest, "InvalidIpForNetwork",
			"IP address %s is not a valid IP for any of the subnets on the specified network %s.", r.IP, n.ID)
	}
	out := make([]FixedIP, len(reqs))
	for pass := range 2 { // given addresses first, so that picks avoid them
		for i, r := range reqs {
			if r.IP.IsValid() != (pass == 0) {
				continue
			}
			s, err := subnetOf(r)
			if err != nil {
				return nil, err
			}
			u, err := used(s.ID)
			if err != nil {
				return nil, err
			}
			a := r.IP
			if pass == 0 {
				if !alloc.Usable(s.prefix(), a) {
					return nil, newErr(http.StatusBadRequest, "InvalidIpForSubnet",
						"IP address %s is not a valid IP for the specified subnet %s (%s).", a, s.ID, s.CIDR)
				}
				if u[a] {
					return nil, newErr(http.StatusConflict, "IpAddressAlreadyAllocated",
						"IP address %s already allocated in subnet %s", a, s.ID)
				}
			} else {
				var ok bool
				if a, ok = alloc.PickAddr(s.pools(), u, s.gateway()); !ok {
					return nil, newErr(http.StatusConflict, "IpAddressGenerationFailure",
						"No more IP addresses available for subnet %s (%s).", s.ID, s.CIDR)
				}
			}
			u[a] = true
			out[i] = FixedIP{SubnetID: s.ID, IPAddress: a.String()}
		}
	}
	return out, nil
}

// ipKey is the allocation key of a fixed IP.
func (c *Controller) ipKey(f FixedIP) string { return c.ipPrefix(f.SubnetID) + f.IPAddress }

// portPlan adds to pl what writing port new over old (nil for create or
// delete) changes: MAC and address claims, the network's port index and
// the host attachments.
func (c *Controller) portPlan(pl *plan, old, new *Port, n *Network, subs map[string]*Subnet) {
	id := ""
	if old != nil {
		id = old.ID
	} else {
		id = new.ID
		pl.put(c.netPortsPrefix(n.ID)+id, "")
	}
	if new == nil {
		pl.del(c.portKey(id))
		pl.del(c.netPortsPrefix(n.ID) + id)
	} else {
		pl.put(c.portKey(id), new)
	}
	if old != nil && (new == nil || old.MACAddress != new.MACAddress) {
		pl.del(c.macKey(n.ID, old.MACAddress))
	}
	if new != nil && (old == nil || old.MACAddress != new.MACAddress) {
		pl.absent(c.macKey(n.ID, new.MACAddress))
		pl.put(c.macKey(n.ID, new.MACAddress), id)
	}
	var oldIPs, newIPs []FixedIP
	if old != nil {
		oldIPs = old.FixedIPs
	}
	if new != nil {
		newIPs = new.FixedIPs
	}
	for _, f := range oldIPs {
		if !slices.Contains(newIPs, f) {
			pl.del(c.ipKey(f))
		}
	}
	for _, f := range newIPs {
		if !slices.Contains(oldIPs, f) {
			pl.absent(c.ipKey(f))
			pl.put(c.ipKey(f), id)
		}
	}
	var oa, na *PortAttachments
	if old != nil {
		oa = ComputeAttachments(old, n, subs)
	}
	if new != nil {
		na = ComputeAttachments(new, n, subs)
	}
	if oa != nil && (na == nil || old.HostID != new.HostID) {
		pl.del(c.attachPrefix(old.HostID) + id)
	}
	if na != nil && (oa == nil || old.HostID != new.HostID || !reflect.DeepEqual(oa, na)) {
		pl.put(c.attachPrefix(new.HostID)+id, na)
	}
}

// GetPort returns a port.
func (c *Controller) GetPort(ctx context.Context, id string) (*Port, error) {
	p, _, err := c.readPort(ctx, id)
	return p, err
}

func (c *Controller) readPort(ctx context.Context, id string) (*Port, int64, error) {
	if !validUUID(id) {
		return nil, 0, invalidInput("port_id", "'%s' is not a valid UUID", id)
	}
	var p Port
	rev, err := c.getJSON(ctx, c.portKey(id), &p)
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		return nil, 0, notFound("Port", id)
	}
	return &p, rev, nil
}

// ListPorts returns every port.
func (c *Controller) ListPorts(ctx context.Context) ([]*Port, error) {
	return listJSON[Port](ctx, c, c.prefix+"ports/")
}

// UpdatePort changes a port; changes of binding:host_id, admin_state_up,
// mac_address or fixed_ips move its attachments in the same transaction.
func (c *Controller) UpdatePort(ctx context.Context, id string, b body) (*Port, error) {
	if err := b.rejectReadOnly("id", "project_id", "tenant_id", "network_id", "status", "binding:vif_type",
		"binding:vif_details", "revision_number", "created_at", "updated_at"); err != nil {
		return nil, err
	}
	mac, err := parseMACField(b)
	if err != nil {
		return nil, err
	}
	reqs, haveIPs, err := parseFixedIPs(b)
	if err != nil {
		return nil, err
	}
	var out *Port
	_, err = c.commit(ctx, func() (*plan, error) {
		old, rev, err := c.readPort(ctx, id)
		if err != nil {
			return nil, err
		}
		p := *old
		nb := make(body, len(b))
		for k, v := range b {
			nb[k] = v
		}
		if err := portFields(nb, &p); err != nil {
			return nil, err
		}
		if err := nb.leftover(); err != nil {
			return nil, err
		}
		n, subs, pl, err := c.portContext(ctx, p.NetworkID)
		if err != nil {
			return nil, err
		}
		if mac != "" {
			if p.MACAddress, err = c.claimMAC(ctx, n.ID, mac, old.MACAddress); err != nil {
				return nil, err
			}
		}
		if haveIPs {
			if p.FixedIPs, err = c.resolveIPs(ctx, n, subs, reqs, old.FixedIPs); err != nil {
				return nil, err
			}
		}
		if p.HostID != old.HostID || !p.AdminStateUp {
			p.Status = "DOWN" // until the agent of the (new) host reports it up
		}
		p.RevisionNumber++
		p.UpdatedAt = now()
		pl.same(c.portKey(id), rev)
		c.portPlan(pl, old, &p, n, subs)
		out = &p
		return pl, nil
	})
	return out, err
}

// SetPortStatus records the status an agent reports for a port ("ACTIVE"
// or "DOWN").
func (c *Controller) SetPortStatus(ctx context.Context, id, status string) (*Port, error) {
	if status != "ACTIVE" && status != "DOWN" {
		return nil, invalidInput("status", "'%s' is not one of ACTIVE, DOWN", status)
	}
	var out *Port
	_, err := c.commit(ctx, func() (*plan, error) {
		p, rev, err := c.readPort(ctx, id)
		if err != nil {
			return nil, err
		}
		out = p
		pl := &plan{}
		if p.Status == status {
			pl.same(c.portKey(id), rev)
			return pl, nil
		}
		p.Status = status
		p.RevisionNumber++
		p.UpdatedAt = now()
		pl.same(c.portKey(id), rev)
		pl.put(c.portKey(id), p)
		return pl, nil
	})
	return out, err
}

// DeletePort deletes a port and releases its MAC and addresses.
func (c *Controller) DeletePort(ctx context.Context, id string) error {
	_, err := c.commit(ctx, func() (*plan, error) {
		old, rev, err := c.readPort(ctx, id)
		if err != nil {
			return nil, err
		}
		n, subs, pl, err := c.portContext(ctx, old.NetworkID)
		if err != nil {
			return nil, err
		}
		pl.same(c.portKey(id), rev)
		c.portPlan(pl, old, nil, n, subs)
		return pl, nil
	})
	if err == nil {
		c.log.Info("port deleted", "port", id)
	}
	return err
}
