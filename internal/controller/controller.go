// Package controller is bagpipe-controller's Neutron-side logic: networks,
// subnets and ports with the shapes of Neutron's v2.0 API, the bagpipe ML2
// allocations (a VXLAN segmentation id per network, and route targets
// "<as_number>:<nn>"), and for each compute host the bagpipe-bgp
// attachments of its bound ports, served as a watchable feed.
//
// All state lives in etcd (see package store). Every write is one etcd
// transaction whose comparisons (key absent, key unchanged since it was
// read, prefix empty) make allocations race-free across goroutines and
// across controllers sharing a cluster; a transaction whose comparisons
// fail is re-planned from fresh reads. A rejected request changes nothing.
//
// Keys, under Config.Prefix:
//
//	networks/<id>           Network JSON
//	subnets/<id>            Subnet JSON
//	ports/<id>              Port JSON
//	alloc/vni/<n>           network id holding segmentation id n
//	alloc/rt/<nn>           network id holding route target number nn
//	alloc/ip/<subnet>/<ip>  port id holding the address
//	alloc/mac/<net>/<mac>   port id holding the MAC on that network
//	netports/<net>/<port>   index of a network's ports
//	attach/<host>/<port>    PortAttachments JSON of a bound, up port
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bagpipe-go/bagpipe/internal/controller/alloc"
)

// maxAttempts bounds how often one request re-plans its transaction after
// losing a race.
const maxAttempts = 500

// DefaultASNumber is the default AS number of route targets (upstream's
// default for the bagpipe ML2 agent extension).
const DefaultASNumber = 64512

// Config configures a Controller.
type Config struct {
	// Client is the etcd client (see store.Open).
	Client *clientv3.Client
	// Prefix is prepended to every key (default "/bagpipe/").
	Prefix string
	// ASNumber is the AS number of route targets (upstream as_number).
	ASNumber uint32
	// VNIRanges are the segmentation ids given to networks.
	VNIRanges alloc.Ranges
	// RTNNRanges are the route-target numbers given to networks
	// (upstream rt_nn_ranges); empty means nn = segmentation id.
	RTNNRanges alloc.Ranges
	// Log receives the controller's messages (default slog.Default()).
	Log *slog.Logger
}

// Controller implements the API over etcd. Its methods are safe for
// concurrent use, and so are several Controllers on one etcd cluster.
type Controller struct {
	cli    *clientv3.Client
	prefix string
	asn    uint32
	vnis   alloc.Ranges
	rtnns  alloc.Ranges
	log    *slog.Logger
}

// New checks cfg and returns a Controller.
func New(cfg Config) (*Controller, error) {
	if cfg.Client == nil {
		return nil, errors.New("controller: no etcd client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "/bagpipe/"
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.ASNumber == 0 {
		return nil, errors.New("controller: as_number must be between 1 and 4294967295")
	}
	if len(cfg.VNIRanges) == 0 {
		return nil, errors.New("controller: no VNI range: give e.g. --vni-ranges 1001:2000")
	}
	for _, r := range cfg.VNIRanges {
		if r.Lo < 1 || r.Hi > 1<<24-1 {
			return nil, fmt.Errorf("controller: VNI range %d:%d outside 1:16777215", r.Lo, r.Hi)
		}
	}
	// RFC 4360 §3: a two-octet AS specific RT has a 4-octet local
	// administrator, a four-octet AS specific RT (RFC 5668) a 2-octet one.
	if cfg.ASNumber > 0xffff {
		nn := cfg.RTNNRanges
		if len(nn) == 0 {
			nn = cfg.VNIRanges
		}
		for _, r := range nn {
			if r.Hi > 0xffff {
				return nil, fmt.Errorf("controller: with a 4-byte as_number %d, route target numbers must be at most 65535 (range %d:%d)", cfg.ASNumber, r.Lo, r.Hi)
			}
		}
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Controller{cli: cfg.Client, prefix: cfg.Prefix, asn: cfg.ASNumber, vnis: cfg.VNIRanges,
		rtnns: cfg.RTNNRanges, log: log.With("component", "controller")}, nil
}

func (c *Controller) netKey(id string) string    { return c.prefix + "networks/" + id }
func (c *Controller) subnetKey(id string) string { return c.prefix + "subnets/" + id }
func (c *Controller) portKey(id string) string   { return c.prefix + "ports/" + id }
func (c *Controller) vniKey(v uint32) string {
	return c.prefix + "alloc/vni/" + strconv.FormatUint(uint64(v), 10)
}
func (c *Controller) rtKey(v uint32) string {
	return c.prefix + "alloc/rt/" + strconv.FormatUint(uint64(v), 10)
}
func (c *Controller) ipPrefix(subnet string) string { return c.prefix + "alloc/ip/" + subnet + "/" }
func (c *Controller) macKey(net, mac string) string { return c.prefix + "alloc/mac/" + net + "/" + mac }
func (c *Controller) netPortsPrefix(net string) string {
	return c.prefix + "netports/" + net + "/"
}
func (c *Controller) attachPrefix(host string) string { return c.prefix + "attach/" + host + "/" }

// plan is one etcd transaction being built.
type plan struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

func (p *plan) absent(key string) {
	p.cmps = append(p.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
}
func (p *plan) present(key string) {
	p.cmps = append(p.cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
}
func (p *plan) same(key string, modRev int64) {
	p.cmps = append(p.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", modRev))
}

// empty requires that no key starts with prefix.
func (p *plan) empty(prefix string) {
	p.cmps = append(p.cmps, clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix())
}
func (p *plan) put(key string, v any) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("controller: cannot marshal %T: %v", v, err))
		}
		s = string(b)
	}
	p.ops = append(p.ops, clientv3.OpPut(key, s))
}
func (p *plan) del(key string) { p.ops = append(p.ops, clientv3.OpDelete(key)) }
func (p *plan) delPrefix(prefix string) {
	p.ops = append(p.ops, clientv3.OpDelete(prefix, clientv3.WithPrefix()))
}

// commit builds and runs a transaction until its comparisons hold, and
// returns the revision it was committed at. build reads what it needs
// afresh on each attempt; an error from build ends the loop.
func (c *Controller) commit(ctx context.Context, build func() (*plan, error)) (int64, error) {
	for range maxAttempts {
		p, err := build()
		if err != nil {
			return 0, err
		}
		resp, err := c.cli.Txn(ctx).If(p.cmps...).Then(p.ops...).Commit()
		if err != nil {
			return 0, fmt.Errorf("etcd transaction failed: %w", err)
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
	}
	return 0, errConflict
}

// getJSON reads key into v; it returns the key's mod revision, 0 if absent.
func (c *Controller) getJSON(ctx context.Context, key string, v any) (int64, error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("etcd read of %s failed: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("corrupt record at %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

// listJSON reads every record under prefix, in key order.
func listJSON[T any](ctx context.Context, c *Controller, prefix string) ([]*T, error) {
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd read of %s failed: %w", prefix, err)
	}
	out := make([]*T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		v := new(T)
		if err := json.Unmarshal(kv.Value, v); err != nil {
			return nil, fmt.Errorf("corrupt record at %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// keySuffixes returns the last path element of each key under prefix.
func (c *Controller) keySuffixes(ctx context.Context, prefix string) ([]string, error) {
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd read of %s failed: %w", prefix, err)
	}
	out := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = strings.TrimPrefix(string(kv.Key), prefix)
	}
	return out, nil
}
