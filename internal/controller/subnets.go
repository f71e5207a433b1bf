package controller

import (
	"context"
	"net/http"
	"net/netip"
	"reflect"
	"slices"

	"github.com/bagpipe-go/bagpipe/internal/controller/alloc"
)

// prefix returns the subnet's CIDR, parsed.
func (s *Subnet) prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(s.CIDR)
	return p
}

// gateway returns the gateway address (invalid when there is none).
func (s *Subnet) gateway() netip.Addr {
	if s.GatewayIP == nil {
		return netip.Addr{}
	}
	a, _ := netip.ParseAddr(*s.GatewayIP)
	return a
}

// pools returns the allocation pools, parsed.
func (s *Subnet) pools() []alloc.Pool {
	out := make([]alloc.Pool, 0, len(s.AllocationPools))
	for _, p := range s.AllocationPools {
		a, _ := netip.ParseAddr(p.Start)
		b, _ := netip.ParseAddr(p.End)
		out = append(out, alloc.Pool{Start: a, End: b})
	}
	return out
}

// parseGateway reads gateway_ip: absent → the first usable address, null →
// none.
func parseGateway(b body, prefix netip.Prefix, dflt bool) (gw *string, set bool, err error) {
	if b.isNull("gateway_ip") {
		delete(b, "gateway_ip")
		return nil, true, nil
	}
	var s string
	ok, err := b.take("gateway_ip", &s, "a string")
	if err != nil {
		return nil, false, err
	}
	if !ok {
		if !dflt {
			return nil, false, nil
		}
		first, _ := alloc.Bounds(prefix)
		if !alloc.Usable(prefix, first) {
			first = first.Next()
		}
		g := first.String()
		return &g, true, nil
	}
	a, perr := netip.ParseAddr(s)
	if perr != nil || !alloc.Usable(prefix, a) {
		return nil, false, invalidInput("gateway_ip", "'%s' is not a valid gateway address of subnet %s (it must be a usable address inside it)", s, prefix)
	}
	g := a.String()
	return &g, true, nil
}

// CreateSubnet creates a subnet on an existing network.
func (c *Controller) CreateSubnet(ctx context.Context, b body) (*Subnet, error) {
	s := Subnet{EnableDHCP: true}
	if err := b.uuid("id", &s.ID); err != nil {
		return nil, err
	}
	if s.ID == "" {
		s.ID = newUUID()
	}
	for _, err := range []error{b.str("name", &s.Name), b.str("description", &s.Description),
		b.project(&s.ProjectID), b.boolean("enable_dhcp", &s.EnableDHCP), b.uuid("network_id", &s.NetworkID)} {
		if err != nil {
			return nil, err
		}
	}
	s.TenantID = s.ProjectID
	if s.NetworkID == "" {
		return nil, invalidInput("network_id", "it is required")
	}
	var cidr string
	if err := b.str("cidr", &cidr); err != nil {
		return nil, err
	}
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, invalidInput("cidr", "'%s' is not a valid IP subnet", cidr)
	}
	if prefix.Masked() != prefix {
		return nil, invalidInput("cidr", "'%s' isn't a recognized IP subnet cidr, '%s' is recommended", cidr, prefix.Masked())
	}
	s.CIDR = prefix.String()
	s.IPVersion = 4
	if prefix.Addr().Is6() {
		s.IPVersion = 6
	}
	var ver int
	if ok, err := b.take("ip_version", &ver, "an integer"); err != nil {
		return nil, err
	} else if ok && ver != s.IPVersion {
		return nil, invalidInput("ip_version", "cidr %s is IPv%d, not IPv%d", s.CIDR, s.IPVersion, ver)
	}
	if s.GatewayIP, _, err = parseGateway(b, prefix, true); err != nil {
		return nil, err
	}
	var pools []AllocationPool
	if ok, err := b.take("allocation_pools", &pools, "a list of {\"start\", \"end\"} objects"); err != nil {
		return nil, err
	} else if ok {
		if err := checkPools(prefix, pools, s.gateway()); err != nil {
			return nil, err
		}
		s.AllocationPools = pools
	} else {
		s.AllocationPools = []AllocationPool{}
		for _, p := range alloc.DefaultPools(prefix, s.gateway()) {
			s.AllocationPools = append(s.AllocationPools, AllocationPool{p.Start.String(), p.End.String()})
		}
	}
	if err := b.leftover(); err != nil {
		return nil, err
	}
	s.CreatedAt, s.UpdatedAt, s.RevisionNumber = now(), now(), 1
	_, err = c.commit(ctx, func() (*plan, error) {
		n, rev, err := c.readNetwork(ctx, s.NetworkID)
		if err != nil {
			return nil, err
		}
		var old Subnet
		if r, err := c.getJSON(ctx, c.subnetKey(s.ID), &old); err != nil || r != 0 {
			if err == nil {
				err = newErr(http.StatusConflict, "SubnetExists", "a subnet with id %s already exists", s.ID)
			}
			return nil, err
		}
		for _, id := range n.Subnets {
			var o Subnet
			if _, err := c.getJSON(ctx, c.subnetKey(id), &o); err != nil {
				return nil, err
			}
			if o.prefix().Overlaps(prefix) {
				return nil, newErr(http.StatusBadRequest, "InvalidInput",
					"Invalid input for operation: Requested subnet with cidr: %s for network: %s overlaps with subnet %s (%s).", s.CIDR, n.ID, o.ID, o.CIDR)
			}
		}
		n.Subnets = append(n.Subnets, s.ID)
		n.RevisionNumber++
		n.UpdatedAt = now()
		p := &plan{}
		p.same(c.netKey(n.ID), rev)
		p.absent(c.subnetKey(s.ID))
		p.put(c.netKey(n.ID), n)
		p.put(c.subnetKey(s.ID), &s)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// checkPools validates allocation pools against the subnet and gateway.
func checkPools(prefix netip.Prefix, pools []AllocationPool, gw netip.Addr) error {
	var parsed []alloc.Pool
	for _, p := range pools {
		a, err1 := netip.ParseAddr(p.Start)
		z, err2 := netip.ParseAddr(p.End)
		if err1 != nil || err2 != nil || !alloc.Usable(prefix, a) || !alloc.Usable(prefix, z) || a.Compare(z) > 0 {
			return newErr(http.StatusBadRequest, "InvalidAllocationPool",
				"The allocation pool %s-%s spans beyond the subnet cidr %s or is not a valid range.", p.Start, p.End, prefix)
		}
		np := alloc.Pool{Start: a, End: z}
		for _, o := range parsed {
			if o.Overlaps(np) {
				return newErr(http.StatusBadRequest, "OverlappingAllocationPools",
					"Found overlapping allocation pools: %s-%s and %s-%s for subnet %s.", o.Start, o.End, a, z, prefix)
			}
		}
		if gw.IsValid() && np.Contains(gw) {
			return newErr(http.StatusConflict, "GatewayConflictWithAllocationPools",
				"Gateway ip %s conflicts with allocation pool %s-%s.", gw, a, z)
		}
		parsed = append(parsed, np)
	}
	return nil
}

// GetSubnet returns a subnet.
func (c *Controller) GetSubnet(ctx context.Context, id string) (*Subnet, error) {
	s, _, err := c.readSubnet(ctx, id)
	return s, err
}

func (c *Controller) readSubnet(ctx context.Context, id string) (*Subnet, int64, error) {
	if !validUUID(id) {
		return nil, 0, invalidInput("subnet_id", "'%s' is not a valid UUID", id)
	}
	var s Subnet
	rev, err := c.getJSON(ctx, c.subnetKey(id), &s)
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		return nil, 0, notFound("Subnet", id)
	}
	return &s, rev, nil
}

// ListSubnets returns every subnet.
func (c *Controller) ListSubnets(ctx context.Context) ([]*Subnet, error) {
	return listJSON[Subnet](ctx, c, c.prefix+"subnets/")
}

// UpdateSubnet changes a subnet's name, description, enable_dhcp or
// gateway_ip; a new gateway is pushed into the attachments of its ports.
func (c *Controller) UpdateSubnet(ctx context.Context, id string, b body) (*Subnet, error) {
	if err := b.rejectReadOnly("id", "project_id", "tenant_id", "network_id", "cidr", "ip_version",
		"allocation_pools", "revision_number", "created_at", "updated_at"); err != nil {
		return nil, err
	}
	var name, desc *string
	var dhcp *bool
	for _, err := range []error{take(b, "name", &name, "a string"), take(b, "description", &desc, "a string"),
		take(b, "enable_dhcp", &dhcp, "a boolean")} {
		if err != nil {
			return nil, err
		}
	}
	cur, _, err := c.readSubnet(ctx, id)
	if err != nil {
		return nil, err
	}
	gw, gwSet, err := parseGateway(b, cur.prefix(), false)
	if err != nil {
		return nil, err
	}
	if err := b.leftover(); err != nil {
		return nil, err
	}
	var out *Subnet
	_, err = c.commit(ctx, func() (*plan, error) {
		prev, rev, err := c.readSubnet(ctx, id)
		if err != nil {
			return nil, err
		}
		cp := *prev
		s := &cp
		setIf(&s.Name, name)
		setIf(&s.Description, desc)
		setIf(&s.EnableDHCP, dhcp)
		p := &plan{}
		if gwSet {
			s.GatewayIP = gw
			if g := s.gateway(); g.IsValid() {
				for _, pool := range s.pools() {
					if pool.Contains(g) {
						return nil, newErr(http.StatusConflict, "GatewayConflictWithAllocationPools",
							"Gateway ip %s conflicts with allocation pool %s-%s.", g, pool.Start, pool.End)
					}
				}
			}
			n, nrev, err := c.readNetwork(ctx, s.NetworkID)
			if err != nil {
				return nil, err
			}
			p.same(c.netKey(n.ID), nrev)
			if err := c.refreshPorts(ctx, p, n, n, map[string]*Subnet{id: prev}, map[string]*Subnet{id: s}); err != nil {
				return nil, err
			}
		}
		s.RevisionNumber++
		s.UpdatedAt = now()
		p.same(c.subnetKey(id), rev)
		p.put(c.subnetKey(id), s)
		out = s
		return p, nil
	})
	return out, err
}

// refreshPorts adds to p the attachment changes of the ports of network
// nn when it and its subnets change from (on, os) to (nn, ns); the maps
// need only hold the subnets that change.
func (c *Controller) refreshPorts(ctx context.Context, p *plan, on, nn *Network, os, ns map[string]*Subnet) error {
	ids, err := c.keySuffixes(ctx, c.netPortsPrefix(nn.ID))
	if err != nil {
		return err
	}
	for _, id := range ids {
		port, prev, err := c.readPort(ctx, id)
		if err != nil {
			return err
		}
		oa, na := ComputeAttachments(port, on, os), ComputeAttachments(port, nn, ns)
		if reflect.DeepEqual(oa, na) {
			continue
		}
		p.same(c.portKey(id), prev)
		if na == nil {
			p.del(c.attachPrefix(port.HostID) + id)
		} else {
			p.put(c.attachPrefix(port.HostID)+id, na)
		}
	}
	return nil
}

// DeleteSubnet deletes a subnet none of whose addresses is allocated.
func (c *Controller) DeleteSubnet(ctx context.Context, id string) error {
	_, err := c.commit(ctx, func() (*plan, error) {
		s, rev, err := c.readSubnet(ctx, id)
		if err != nil {
			return nil, err
		}
		used, err := c.keySuffixes(ctx, c.ipPrefix(id))
		if err != nil {
			return nil, err
		}
		if len(used) > 0 {
			return nil, newErr(http.StatusConflict, "SubnetInUse",
				"Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet (%d addresses, e.g. %s): delete those ports first.",
				id, len(used), used[0])
		}
		n, nrev, err := c.readNetwork(ctx, s.NetworkID)
		if err != nil {
			return nil, err
		}
		n.Subnets = slices.DeleteFunc(n.Subnets, func(x string) bool { return x == id })
		n.RevisionNumber++
		n.UpdatedAt = now()
		p := &plan{}
		p.same(c.subnetKey(id), rev)
		p.same(c.netKey(n.ID), nrev)
		p.empty(c.ipPrefix(id))
		p.del(c.subnetKey(id))
		p.put(c.netKey(n.ID), n)
		return p, nil
	})
	return err
}
