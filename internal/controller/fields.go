package controller

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// body is one resource object of a request ({"network": {...}} → {...}).
// Each getter removes the field it reads, so that what is left at the end
// is unknown.
type body map[string]json.RawMessage

// decodeResource extracts the object under key (e.g. "network") of a
// request body.
func decodeResource(raw []byte, key string) (body, error) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &outer); err != nil {
		return nil, badRequest("the request body is not a JSON object: %v", err)
	}
	if _, bulk := outer[key+"s"]; bulk {
		return nil, badRequest("bulk requests (%q) are not supported: send one %q object per request", key+"s", key)
	}
	inner, ok := outer[key]
	if !ok || len(outer) != 1 {
		return nil, badRequest("the request body must be {%q: {...}}", key)
	}
	var b body
	if err := json.Unmarshal(inner, &b); err != nil || b == nil {
		return nil, badRequest("%q must be a JSON object", key)
	}
	return b, nil
}

// has says whether field is present (even null).
func (b body) has(field string) bool { _, ok := b[field]; return ok }

// isNull says whether field is present and null.
func (b body) isNull(field string) bool {
	v, ok := b[field]
	return ok && strings.TrimSpace(string(v)) == "null"
}

// take decodes field into dst and removes it; absent → false.
func (b body) take(field string, dst any, want string) (bool, error) {
	raw, ok := b[field]
	if !ok {
		return false, nil
	}
	delete(b, field)
	if err := json.Unmarshal(raw, dst); err != nil {
		return true, invalidInput(field, "%s is not %s", strings.TrimSpace(string(raw)), want)
	}
	return true, nil
}

// str reads a string field.
func (b body) str(field string, dst *string) error {
	_, err := b.take(field, dst, "a string")
	return err
}

// boolean reads a boolean field.
func (b body) boolean(field string, dst *bool) error {
	_, err := b.take(field, dst, "a boolean")
	return err
}

// uuid reads a field holding a UUID.
func (b body) uuid(field string, dst *string) error {
	var s string
	ok, err := b.take(field, &s, "a string")
	if err != nil || !ok {
		return err
	}
	if !validUUID(s) {
		return invalidInput(field, "'%s' is not a valid UUID", s)
	}
	*dst = s
	return nil
}

// project reads project_id / tenant_id (which must agree) into dst.
func (b body) project(dst *string) error {
	var p, t string
	if err := b.str("project_id", &p); err != nil {
		return err
	}
	if err := b.str("tenant_id", &t); err != nil {
		return err
	}
	if p != "" && t != "" && p != t {
		return invalidInput("project_id", "project_id %q and tenant_id %q differ", p, t)
	}
	if p == "" {
		p = t
	}
	*dst = p
	return nil
}

// rejectReadOnly fails if the body sets one of fields (update requests).
func (b body) rejectReadOnly(fields ...string) error {
	for _, f := range fields {
		if b.has(f) {
			return badRequest("Cannot update read-only attribute %s", f)
		}
	}
	return nil
}

// leftover fails if fields remain that no getter read.
func (b body) leftover() error {
	if len(b) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(b))
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("'%s'", k)
	}
	return badRequest("Unrecognized attribute(s) %s", strings.Join(q, ", "))
}
