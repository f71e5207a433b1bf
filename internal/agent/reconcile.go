// Package agent is bagpipe-agent: it follows a host's attachment feed on
// bagpipe-controller and makes the local bagpipe-bgp match it, the way
// upstream's Neutron agent drove bagpipe-bgp (reference §9.2): attach what
// is missing (E-VPN first), detach what is gone (IP VPN first, with the
// body of the attachment being removed), replay everything when bagpipe-bgp
// restarted (its /ping value changed), and report port status back.
//
// The decision of what to send is the pure function Reconcile; the loops
// around it (feed, ping, status reports) only feed it and carry out its
// actions.
package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Attachment is one bagpipe-bgp attach_localport body, as the controller
// sent it (Raw, sent as is), with the fields that identify its endpoint.
type Attachment struct {
	// Raw is the body.
	Raw json.RawMessage
	// VPNType is "evpn" or "ipvpn".
	VPNType string
	// Key identifies the endpoint in bagpipe-bgp: vpn type, instance,
	// local port, MAC and IP.
	Key string
}

// detachKeys are the fields of an attachment a detach_localport body
// carries (upstream's detach_info plus the ids; reference §2.4).
var detachKeys = []string{"vpn_type", "vpn_instance_id", "mac_address", "ip_address", "local_port", "advertise_subnet"}

// ParseAttachment checks that raw is a JSON object with a vpn_type and a
// vpn_instance_id and returns it as an Attachment.
func ParseAttachment(raw json.RawMessage) (Attachment, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Attachment{}, fmt.Errorf("attachment %s is not a JSON object: %w", raw, err)
	}
	var typ, inst string
	if err := json.Unmarshal(m["vpn_type"], &typ); err != nil || typ == "" {
		return Attachment{}, fmt.Errorf("attachment %s has no vpn_type string", raw)
	}
	if err := json.Unmarshal(m["vpn_instance_id"], &inst); err != nil || inst == "" {
		return Attachment{}, fmt.Errorf("attachment %s has no vpn_instance_id string", raw)
	}
	var key bytes.Buffer
	for _, k := range []string{"vpn_type", "vpn_instance_id", "local_port", "mac_address", "ip_address"} {
		key.Write(bytes.TrimSpace(m[k]))
		key.WriteByte('|')
	}
	return Attachment{Raw: append(json.RawMessage(nil), raw...), VPNType: typ, Key: key.String()}, nil
}

// DetachBody returns the detach_localport body of a: its identifying
// fields (detachKeys), values copied from the attachment.
func (a Attachment) DetachBody() json.RawMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(a.Raw, &m); err != nil {
		return a.Raw // ParseAttachment made sure it is an object
	}
	out := map[string]json.RawMessage{}
	for _, k := range detachKeys {
		if v, ok := m[k]; ok {
			out[k] = v
		}
	}
	b, _ := json.Marshal(out)
	return b
}

// Op is what an action does.
type Op string

// The two operations on bagpipe-bgp.
const (
	OpAttach Op = "attach"
	OpDetach Op = "detach"
)

// Action is one request to bagpipe-bgp: POST /attach_localport or
// /detach_localport with Body, for port PortID.
type Action struct {
	Op     Op
	PortID string
	// Attachment is the attachment added or removed.
	Attachment Attachment
}

// Body returns the request body of the action.
func (a Action) Body() json.RawMessage {
	if a.Op == OpDetach {
		return a.Attachment.DetachBody()
	}
	return a.Attachment.Raw
}

// typeRank orders VPN types: on attach E-VPN first, on detach IP VPN
// first (the IP VPN of a port may be plugged into its E-VPN, reference
// §9.2 and §5.5).
func typeRank(op Op, vpnType string) int {
	evpnFirst := op == OpAttach
	if (vpnType == "evpn") == evpnFirst {
		return 0
	}
	return 1
}

// Reconcile returns the actions that turn applied (what bagpipe-bgp has,
// by port id) into desired (what the controller wants, by port id):
//
//   - an applied attachment whose endpoint is not desired any more is
//     detached, with the body of the applied attachment;
//   - a desired attachment that is not applied is attached;
//   - an attachment whose endpoint is applied but whose body changed is
//     detached (old body) and attached again (new body), so that
//     bagpipe-bgp ends up with exactly the new one.
//
// Every detach comes before every attach; detaches are IP VPN first,
// attaches E-VPN first; within that, by port id and then by position in
// the port's list. Reconcile(d, d) is empty. It does not change its
// arguments.
func Reconcile(desired, applied map[string][]Attachment) []Action {
	var detach, attach []Action
	type ord struct {
		a   Action
		idx int
	}
	var dl, al []ord
	for port, have := range applied {
		want := desired[port]
		for i, h := range have {
			if !containsExact(want, h) {
				dl = append(dl, ord{Action{Op: OpDetach, PortID: port, Attachment: h}, i})
			}
		}
	}
	for port, want := range desired {
		have := applied[port]
		for i, w := range want {
			if !containsExact(have, w) {
				al = append(al, ord{Action{Op: OpAttach, PortID: port, Attachment: w}, i})
			}
		}
	}
	less := func(l []ord) func(i, j int) bool {
		return func(i, j int) bool {
			a, b := l[i], l[j]
			if ra, rb := typeRank(a.a.Op, a.a.Attachment.VPNType), typeRank(b.a.Op, b.a.Attachment.VPNType); ra != rb {
				return ra < rb
			}
			if a.a.PortID != b.a.PortID {
				return a.a.PortID < b.a.PortID
			}
			return a.idx < b.idx
		}
	}
	sort.SliceStable(dl, less(dl))
	sort.SliceStable(al, less(al))
	for _, o := range dl {
		detach = append(detach, o.a)
	}
	for _, o := range al {
		attach = append(attach, o.a)
	}
	return append(detach, attach...)
}

// containsExact says whether l holds an attachment with a's key and body.
func containsExact(l []Attachment, a Attachment) bool {
	for _, x := range l {
		if x.Key == a.Key && bytes.Equal(x.Raw, a.Raw) {
			return true
		}
	}
	return false
}

// Record updates applied (in place) with the outcome of a successful
// action: an attach adds (or replaces) the endpoint's attachment, a detach
// removes it; a port left with nothing is removed.
func Record(applied map[string][]Attachment, a Action) {
	var l []Attachment
	for _, x := range applied[a.PortID] {
		if x.Key == a.Attachment.Key {
			continue // same endpoint: replaced (attach) or removed (detach)
		}
		l = append(l, x)
	}
	if a.Op == OpAttach {
		l = append(l, a.Attachment)
	}
	if len(l) == 0 {
		delete(applied, a.PortID)
	} else {
		applied[a.PortID] = l
	}
}
