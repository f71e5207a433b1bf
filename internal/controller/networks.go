package controller

import (
	"context"
	"strconv"
	"strings"

	"fmt"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"net/http"
)

// CreateNetwork creates a network from the fields of a "network" request
// object, allocating its segmentation id and route target.
func (c *Controller) CreateNetwork(ctx context.Context, b body) (*Network, error) {
	n := Network{AdminStateUp: true, Status: "ACTIVE", NetworkType: "vxlan", Subnets: []string{}}
	if err := b.uuid("id", &n.ID); err != nil {
		return nil, err
	}
	if n.ID == "" {
		n.ID = newUUID()
	}
	for _, err := range []error{b.str("name", &n.Name), b.str("description", &n.Description),
		b.project(&n.ProjectID), b.boolean("admin_state_up", &n.AdminStateUp), b.boolean("shared", &n.Shared)} {
		if err != nil {
			return nil, err
		}
	}
	n.TenantID = n.ProjectID
	var ntype string
	if err := b.str("provider:network_type", &ntype); err != nil {
		return nil, err
	}
	if ntype != "" && ntype != "vxlan" {
		return nil, invalidInput("provider:network_type", "only vxlan networks are supported, not %q", ntype)
	}
	var seg *uint32
	if b.isNull("provider:segmentation_id") {
		delete(b, "provider:segmentation_id")
	} else if _, err := b.take("provider:segmentation_id", &seg, "an integer"); err != nil {
		return nil, err
	}
	if seg != nil && (*seg < 1 || *seg > 1<<24-1) {
		return nil, invalidInput("provider:segmentation_id", "%d is outside the VXLAN range 1..16777215", *seg)
	}
	if b.isNull("provider:physical_network") {
		delete(b, "provider:physical_network")
	}
	if err := b.leftover(); err != nil {
		return nil, err
	}
	n.CreatedAt, n.UpdatedAt = now(), now()
	n.RevisionNumber = 1
	_, err := c.commit(ctx, func() (*plan, error) {
		var old Network
		if rev, err := c.getJSON(ctx, c.netKey(n.ID), &old); err != nil || rev != 0 {
			if err == nil {
				err = newErr(http.StatusConflict, "NetworkExists", "a network with id %s already exists", n.ID)
			}
			return nil, err
		}
		vni, nn, err := c.pickSegment(ctx, seg)
		if err != nil {
			return nil, err
		}
		n.SegmentationID = vni
		n.RouteTargets = []string{fmt.Sprintf("%d:%d", c.asn, nn)}
		p := &plan{}
		p.absent(c.netKey(n.ID))
		p.absent(c.vniKey(vni))
		p.absent(c.rtKey(nn))
		p.put(c.netKey(n.ID), &n)
		p.put(c.vniKey(vni), n.ID)
		p.put(c.rtKey(nn), n.ID)
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	c.log.Info("network created", "network", n.ID, "vni", n.SegmentationID, "route_targets", n.RouteTargets)
	return &n, nil
}

// pickSegment chooses a free segmentation id (or checks the requested
// one) and a free route-target number.
func (c *Controller) pickSegment(ctx context.Context, want *uint32) (vni, nn uint32, err error) {
	// One read of both allocation sets, at one revision.
	vp, rp := c.prefix+"alloc/vni/", c.prefix+"alloc/rt/"
	resp, err := c.cli.Txn(ctx).Then(clientv3.OpGet(vp, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(rp, clientv3.WithPrefix(), clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return 0, 0, fmt.Errorf("etcd read of the allocations failed: %w", err)
	}
	usedVNI := numbersOf(resp.Responses[0].GetResponseRange().Kvs, vp)
	usedRT := numbersOf(resp.Responses[1].GetResponseRange().Kvs, rp)
	fromSeg := len(c.rtnns) == 0
	switch {
	case want != nil:
		if usedVNI[*want] {
			return 0, 0, newErr(http.StatusConflict, "TunnelIdInUse",
				"Unable to create the network. The tunnel ID %d is in use.", *want)
		}
		vni = *want
	default:
		if fromSeg {
			for v := range usedRT { // nn = vni: a VNI whose RT is taken is not free
				usedVNI[v] = true
			}
		}
		var ok bool
		if vni, ok = c.vnis.Pick(usedVNI); !ok {
			return 0, 0, newErr(http.StatusServiceUnavailable, "NoNetworkAvailable",
				"Unable to create the network. No segmentation id is free in the VNI ranges %s (all %d in use): delete a network or widen --vni-ranges.",
				c.vnis, c.vnis.Size())
		}
	}
	if fromSeg {
		if usedRT[vni] {
			return 0, 0, newErr(http.StatusConflict, "RouteTargetInUse",
				"Unable to create the network. The route target %d:%d of segmentation id %d is in use.", c.asn, vni, vni)
		}
		return vni, vni, nil
	}
	nn, ok := c.rtnns.Pick(usedRT)
	if !ok {
		return 0, 0, newErr(http.StatusServiceUnavailable, "RouteTargetsExhausted",
			"Unable to create the network. No route target number is free in rt_nn_ranges %s (all %d in use): delete a network or widen --rt-nn-ranges.",
			c.rtnns, c.rtnns.Size())
	}
	return vni, nn, nil
}

// GetNetwork returns a network.
func (c *Controller) GetNetwork(ctx context.Context, id string) (*Network, error) {
	n, _, err := c.readNetwork(ctx, id)
	return n, err
}

func (c *Controller) readNetwork(ctx context.Context, id string) (*Network, int64, error) {
	if !validUUID(id) {
		return nil, 0, invalidInput("network_id", "'%s' is not a valid UUID", id)
	}
	var n Network
	rev, err := c.getJSON(ctx, c.netKey(id), &n)
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		return nil, 0, notFound("Network", id)
	}
	return &n, rev, nil
}

// ListNetworks returns every network.
func (c *Controller) ListNetworks(ctx context.Context) ([]*Network, error) {
	return listJSON[Network](ctx, c, c.prefix+"networks/")
}

// UpdateNetwork changes a network's name, description, admin_state_up or
// shared flag. A network that is administratively down has no attachments:
// changing admin_state_up removes or restores those of its ports in the
// same transaction.
func (c *Controller) UpdateNetwork(ctx context.Context, id string, b body) (*Network, error) {
	if err := b.rejectReadOnly("id", "project_id", "tenant_id", "status", "subnets", "provider:network_type",
		"provider:segmentation_id", "provider:physical_network", "route_targets", "revision_number", "created_at", "updated_at"); err != nil {
		return nil, err
	}
	var name, desc *string
	var up, shared *bool
	for _, err := range []error{take(b, "name", &name, "a string"), take(b, "description", &desc, "a string"),
		take(b, "admin_state_up", &up, "a boolean"), take(b, "shared", &shared, "a boolean")} {
		if err != nil {
			return nil, err
		}
	}
	if err := b.leftover(); err != nil {
		return nil, err
	}
	var out *Network
	_, err := c.commit(ctx, func() (*plan, error) {
		old, subs, p, err := c.portContext(ctx, id)
		if err != nil {
			return nil, err
		}
		n := *old
		setIf(&n.Name, name)
		setIf(&n.Description, desc)
		setIf(&n.AdminStateUp, up)
		setIf(&n.Shared, shared)
		n.RevisionNumber++
		n.UpdatedAt = now()
		if n.AdminStateUp != old.AdminStateUp {
			if err := c.refreshPorts(ctx, p, old, &n, subs, subs); err != nil {
				return nil, err
			}
		}
		p.put(c.netKey(id), &n)
		out = &n
		return p, nil
	})
	return out, err
}

// DeleteNetwork deletes a network without ports, with its subnets, and
// releases its segmentation id and route target.
func (c *Controller) DeleteNetwork(ctx context.Context, id string) error {
	_, err := c.commit(ctx, func() (*plan, error) {
		n, rev, err := c.readNetwork(ctx, id)
		if err != nil {
			return nil, err
		}
		ports, err := c.keySuffixes(ctx, c.netPortsPrefix(id))
		if err != nil {
			return nil, err
		}
		if len(ports) > 0 {
			return nil, newErr(http.StatusConflict, "NetworkInUse",
				"Unable to complete operation on network %s. There are one or more ports still in use on the network (%d ports, e.g. %s): delete them first.",
				id, len(ports), ports[0])
		}
		p := &plan{}
		p.same(c.netKey(id), rev)
		p.empty(c.netPortsPrefix(id))
		p.del(c.netKey(id))
		p.del(c.vniKey(n.SegmentationID))
		for _, rt := range n.RouteTargets {
			if nn, ok := rtNN(rt); ok {
				p.del(c.rtKey(nn))
			}
		}
		for _, s := range n.Subnets {
			p.del(c.subnetKey(s))
			p.delPrefix(c.ipPrefix(s))
		}
		p.delPrefix(c.prefix + "alloc/mac/" + id + "/")
		return p, nil
	})
	if err == nil {
		c.log.Info("network deleted", "network", id)
	}
	return err
}

// take reads an optional field into a pointer (nil when absent).
func take[T any](b body, field string, dst **T, want string) error {
	if !b.has(field) {
		return nil
	}
	v := new(T)
	if _, err := b.take(field, v, want); err != nil {
		return err
	}
	*dst = v
	return nil
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// numbersOf returns the numbers that end the keys under prefix.
func numbersOf(kvs []*mvccpb.KeyValue, prefix string) map[uint32]bool {
	used := make(map[uint32]bool, len(kvs))
	for _, kv := range kvs {
		if v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), prefix), 10, 32); err == nil {
			used[uint32(v)] = true
		}
	}
	return used
}
