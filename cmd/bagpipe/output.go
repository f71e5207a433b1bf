package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/bagpipe-go/bagpipe/internal/ctlclient"
)

// column is one column of a list table.
type column struct {
	title string
	cell  func(ctlclient.Resource) string
}

// attr is a column showing one attribute.
func attr(title, key string) column {
	return column{title, func(r ctlclient.Resource) string { return str(r[key]) }}
}

// columns are the list tables' columns by kind.
var columns = map[string][]column{
	"network": {attr("ID", "id"), attr("NAME", "name"), attr("VNI", "provider:segmentation_id"),
		attr("ROUTE TARGETS", "route_targets"), attr("SUBNETS", "subnets"), upColumn, attr("STATUS", "status")},
	"subnet": {attr("ID", "id"), attr("NAME", "name"), attr("NETWORK", "network_id"), attr("CIDR", "cidr"),
		attr("GATEWAY", "gateway_ip")},
	"port": {attr("ID", "id"), attr("NAME", "name"), attr("NETWORK", "network_id"), attr("MAC", "mac_address"),
		{"IP ADDRESSES", fixedIPs}, attr("HOST", "binding:host_id"), upColumn, attr("STATUS", "status")},
}

// upColumn shows admin_state_up as UP / DOWN.
var upColumn = column{"ADMIN", func(r ctlclient.Resource) string {
	if up, ok := r["admin_state_up"].(bool); ok && !up {
		return "DOWN"
	}
	return "UP"
}}

// fixedIPs lists a port's addresses.
func fixedIPs(r ctlclient.Resource) string {
	l, _ := r["fixed_ips"].([]any)
	var out []string
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, str(m["ip_address"]))
		}
	}
	return strings.Join(out, ",")
}

// printList prints resources as a table (or JSON).
func (c *cmd) printList(kind string, l []ctlclient.Resource) error {
	if c.g.json {
		return c.printJSON(l)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	cols := columns[kind]
	titles := make([]string, len(cols))
	for i, col := range cols {
		titles[i] = col.title
	}
	fmt.Fprintln(tw, strings.Join(titles, "\t"))
	for _, r := range l {
		cells := make([]string, len(cols))
		for i, col := range cols {
			cells[i] = cell(col.cell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell keeps a table cell on one line and never empty.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// printOne prints one resource as a FIELD / VALUE table (or JSON).
func (c *cmd) printOne(r ctlclient.Resource) error {
	if c.g.json {
		return c.printJSON(r)
	}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIELD\tVALUE")
	for _, k := range keys {
		v := str(r[k])
		if k == "fixed_ips" {
			v = fixedIPsLong(r)
		}
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(v))
	}
	return tw.Flush()
}

// fixedIPsLong lists a port's addresses with their subnets.
func fixedIPsLong(r ctlclient.Resource) string {
	l, _ := r["fixed_ips"].([]any)
	var out []string
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, fmt.Sprintf("%s (subnet %s)", str(m["ip_address"]), str(m["subnet_id"])))
		}
	}
	return strings.Join(out, ", ")
}

// printJSON prints v as indented JSON.
func (c *cmd) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot render JSON: %w", err)
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// compactJSON renders v on one line.
func compactJSON(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}
