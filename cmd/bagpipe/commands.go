package main

import (
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// resolve returns the id of the resource of kind named ref: ref itself
// when it is a UUID, else the id of the only resource with that name.
func (c *cmd) resolve(kind, ref string) (string, error) {
	if uuidRE.MatchString(ref) {
		return ref, nil
	}
	l, err := c.client().List(c.ctx, kind, url.Values{"name": {ref}, "fields": {"id"}})
	if err != nil {
		return "", err
	}
	switch len(l) {
	case 0:
		return "", fmt.Errorf("no %s has the id or name %q (see bagpipe %s list)", kind, ref, kind)
	case 1:
		return str(l[0]["id"]), nil
	}
	ids := make([]string, len(l))
	for i, r := range l {
		ids[i] = str(r["id"])
	}
	return "", fmt.Errorf("%d %ss are named %q (%s): give the id", len(l), kind, ref, strings.Join(ids, ", "))
}

// boolFlag is an optional boolean flag (nil: not given).
type boolFlag struct{ v *bool }

func (b *boolFlag) String() string {
	if b.v == nil {
		return ""
	}
	return strconv.FormatBool(*b.v)
}
func (b *boolFlag) IsBoolFlag() bool { return true }
func (b *boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	b.v = &v
	return nil
}

// optString is an optional string flag (nil: not given).
type optString struct{ v *string }

func (o *optString) String() string {
	if o.v == nil {
		return ""
	}
	return *o.v
}
func (o *optString) Set(s string) error { o.v = &s; return nil }

// setIf puts o's value under key when the flag was given.
func (o *optString) setIf(m map[string]any, key string) {
	if o.v != nil {
		m[key] = *o.v
	}
}

// gatewayValue turns --gateway into the attribute: "none" is null.
func gatewayValue(s string) any {
	if s == "none" || s == "" {
		return nil
	}
	return s
}

func (c *cmd) networkCreate(args []string) error {
	fs := newFlagSet("network create", c.g)
	vni := fs.Uint("vni", 0, "segmentation id")
	desc := &optString{}
	fs.Var(desc, "description", "")
	up := &boolFlag{}
	fs.Var(up, "admin-state-up", "")
	pos, err := c.parse(fs, args, 1, 1, "one network NAME")
	if err != nil {
		return err
	}
	attrs := map[string]any{"name": pos[0]}
	if *vni != 0 {
		attrs["provider:network_type"] = "vxlan"
		attrs["provider:segmentation_id"] = *vni
	}
	desc.setIf(attrs, "description")
	if up.v != nil {
		attrs["admin_state_up"] = *up.v
	}
	r, err := c.client().Create(c.ctx, "network", attrs)
	if err != nil {
		return err
	}
	return c.printOne(r)
}

func (c *cmd) networkUpdate(args []string) error {
	fs := newFlagSet("network update", c.g)
	name, desc := &optString{}, &optString{}
	fs.Var(name, "name", "")
	fs.Var(desc, "description", "")
	up := &boolFlag{}
	fs.Var(up, "admin-state-up", "")
	pos, err := c.parse(fs, args, 1, 1, "one NETWORK")
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	name.setIf(attrs, "name")
	desc.setIf(attrs, "description")
	if up.v != nil {
		attrs["admin_state_up"] = *up.v
	}
	return c.update("network", pos[0], attrs)
}

func (c *cmd) subnetCreate(args []string) error {
	fs := newFlagSet("subnet create", c.g)
	network := fs.String("network", "", "network id or name")
	cidr := fs.String("cidr", "", "CIDR")
	gw, name, desc := &optString{}, &optString{}, &optString{}
	fs.Var(gw, "gateway", "")
	fs.Var(name, "name", "")
	fs.Var(desc, "description", "")
	if _, err := c.parse(fs, args, 0, 0, "no positional argument"); err != nil {
		return err
	}
	if *network == "" || *cidr == "" {
		return usagef("subnet create: --network and --cidr are required")
	}
	netID, err := c.resolve("network", *network)
	if err != nil {
		return err
	}
	attrs := map[string]any{"network_id": netID, "cidr": *cidr, "ip_version": 4}
	if strings.Contains(*cidr, ":") {
		attrs["ip_version"] = 6
	}
	if gw.v != nil {
		attrs["gateway_ip"] = gatewayValue(*gw.v)
	}
	name.setIf(attrs, "name")
	desc.setIf(attrs, "description")
	r, err := c.client().Create(c.ctx, "subnet", attrs)
	if err != nil {
		return err
	}
	return c.printOne(r)
}

func (c *cmd) subnetUpdate(args []string) error {
	fs := newFlagSet("subnet update", c.g)
	gw, name, desc := &optString{}, &optString{}, &optString{}
	fs.Var(gw, "gateway", "")
	fs.Var(name, "name", "")
	fs.Var(desc, "description", "")
	pos, err := c.parse(fs, args, 1, 1, "one SUBNET")
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	if gw.v != nil {
		attrs["gateway_ip"] = gatewayValue(*gw.v)
	}
	name.setIf(attrs, "name")
	desc.setIf(attrs, "description")
	return c.update("subnet", pos[0], attrs)
}

func (c *cmd) portUpdate(args []string) error {
	fs := newFlagSet("port update", c.g)
	name, host, owner, desc := &optString{}, &optString{}, &optString{}, &optString{}
	fs.Var(name, "name", "")
	fs.Var(host, "host", "")
	fs.Var(owner, "device-owner", "")
	fs.Var(desc, "description", "")
	up := &boolFlag{}
	fs.Var(up, "admin-state-up", "")
	pos, err := c.parse(fs, args, 1, 1, "one PORT")
	if err != nil {
		return err
	}
	attrs := map[string]any{}
	name.setIf(attrs, "name")
	host.setIf(attrs, "binding:host_id")
	owner.setIf(attrs, "device_owner")
	desc.setIf(attrs, "description")
	if up.v != nil {
		attrs["admin_state_up"] = *up.v
	}
	return c.update("port", pos[0], attrs)
}

// update sends attrs to the resource named ref and prints it.
func (c *cmd) update(kind, ref string, attrs map[string]any) error {
	if len(attrs) == 0 {
		return usagef("%s update: nothing to change (give at least one attribute flag)", kind)
	}
	id, err := c.resolve(kind, ref)
	if err != nil {
		return err
	}
	r, err := c.client().Update(c.ctx, kind, id, attrs)
	if err != nil {
		return err
	}
	return c.printOne(r)
}

// listFilters are the filter flags of each kind's list: flag → attribute
// (the network is resolved to its id).
var listFilters = map[string][][2]string{
	"network": {{"name", "name"}},
	"subnet":  {{"network", "network_id"}, {"name", "name"}},
	"port":    {{"network", "network_id"}, {"host", "binding:host_id"}, {"name", "name"}},
}

func (c *cmd) list(kind string, args []string) error {
	fs := newFlagSet(kind+" list", c.g)
	vals := map[string]*optString{}
	for _, f := range listFilters[kind] {
		vals[f[0]] = &optString{}
		fs.Var(vals[f[0]], f[0], "")
	}
	if _, err := c.parse(fs, args, 0, 0, "no positional argument"); err != nil {
		return err
	}
	q := url.Values{}
	for _, f := range listFilters[kind] {
		v := vals[f[0]].v
		if v == nil {
			continue
		}
		val := *v
		if f[0] == "network" {
			id, err := c.resolve("network", val)
			if err != nil {
				return err
			}
			val = id
		}
		q.Set(f[1], val)
	}
	l, err := c.client().List(c.ctx, kind, q)
	if err != nil {
		return err
	}
	return c.printList(kind, l)
}

func (c *cmd) show(kind string, args []string) error {
	fs := newFlagSet(kind+" show", c.g)
	pos, err := c.parse(fs, args, 1, 1, "one "+strings.ToUpper(kind))
	if err != nil {
		return err
	}
	id, err := c.resolve(kind, pos[0])
	if err != nil {
		return err
	}
	r, err := c.client().Show(c.ctx, kind, id)
	if err != nil {
		return err
	}
	return c.printOne(r)
}

// delete deletes every resource named in args; after, when not nil, runs
// after each deletion.
func (c *cmd) delete(kind string, args []string, fs *flag.FlagSet) error {
	if fs == nil {
		fs = newFlagSet(kind+" delete", c.g)
	}
	pos, err := c.parse(fs, args, 1, -1, "at least one "+strings.ToUpper(kind))
	if err != nil {
		return err
	}
	for _, ref := range pos {
		id, err := c.resolve(kind, ref)
		if err != nil {
			return err
		}
		if err := c.client().Delete(c.ctx, kind, id); err != nil {
			return err
		}
		if !c.g.json {
			fmt.Fprintf(c.stdout, "Deleted %s %s\n", kind, id)
		}
	}
	return nil
}

// str renders a JSON value for a table cell.
func str(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case []any:
		parts := make([]string, len(t))
		for i, x := range t {
			parts[i] = str(x)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		return compactJSON(t)
	}
	return fmt.Sprint(v)
}
