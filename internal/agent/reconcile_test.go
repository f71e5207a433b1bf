package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// att builds an attachment body and parses it.
func att(t *testing.T, typ, inst, tap, mac, ip, extra string) Attachment {
	t.Helper()
	body := fmt.Sprintf(`{"vpn_type":%q,"vpn_instance_id":%q,"mac_address":%q,"ip_address":%q,"local_port":{"linuxif":%q},"import_rt":["64512:1"],"export_rt":["64512:1"]%s}`,
		typ, inst, mac, ip, tap, extra)
	a, err := ParseAttachment(json.RawMessage(body))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// render writes actions as "op port type ip" lines.
func render(acts []Action) string {
	var b strings.Builder
	for _, a := range acts {
		var m map[string]any
		_ = json.Unmarshal(a.Body(), &m)
		fmt.Fprintf(&b, "%s %s %s %v", a.Op, a.PortID, a.Attachment.VPNType, m["ip_address"])
		if _, ok := m["import_rt"]; ok {
			b.WriteString(" +rt")
		}
		if gw, ok := m["gateway_ip"]; ok {
			fmt.Fprintf(&b, " gw=%v", gw)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestReconcile(t *testing.T) {
	e1 := att(t, "evpn", "evpn_n1", "tap1", "fa:16:3e:00:00:01", "10.0.0.1", "")
	e1gw := att(t, "evpn", "evpn_n1", "tap1", "fa:16:3e:00:00:01", "10.0.0.1", `,"gateway_ip":"10.0.0.254"`)
	e1ip := att(t, "evpn", "evpn_n1", "tap1", "fa:16:3e:00:00:01", "10.0.0.9", "")
	i1 := att(t, "ipvpn", "ipvpn_n1", "tap1", "fa:16:3e:00:00:01", "10.0.0.1", "")
	e2 := att(t, "evpn", "evpn_n1", "tap2", "fa:16:3e:00:00:02", "10.0.0.2", "")
	i2 := att(t, "ipvpn", "ipvpn_n1", "tap2", "fa:16:3e:00:00:02", "10.0.0.2", "")
	type set = map[string][]Attachment
	for _, tc := range []struct {
		name             string
		desired, applied set
		want             string
	}{
		{"nothing", set{}, set{}, ""},
		{"in sync", set{"p1": {e1, i1}}, set{"p1": {i1, e1}}, ""},
		{"attach: E-VPN before IP VPN, ports in id order",
			set{"p2": {i2, e2}, "p1": {i1, e1}}, set{},
			"attach p1 evpn 10.0.0.1 +rt\nattach p2 evpn 10.0.0.2 +rt\nattach p1 ipvpn 10.0.0.1 +rt\nattach p2 ipvpn 10.0.0.2 +rt\n"},
		{"detach: IP VPN before E-VPN, detach body without RTs",
			set{}, set{"p1": {e1, i1}, "p2": {e2}},
			"detach p1 ipvpn 10.0.0.1\ndetach p1 evpn 10.0.0.1\ndetach p2 evpn 10.0.0.2\n"},
		{"one port gone, one new: detach first",
			set{"p2": {e2}}, set{"p1": {e1}},
			"detach p1 evpn 10.0.0.1\nattach p2 evpn 10.0.0.2 +rt\n"},
		{"body changed, same endpoint: detach old body, attach new",
			set{"p1": {e1gw}}, set{"p1": {e1}},
			"detach p1 evpn 10.0.0.1\nattach p1 evpn 10.0.0.1 +rt gw=10.0.0.254\n"},
		{"address changed: old endpoint detached, new attached",
			set{"p1": {e1ip}}, set{"p1": {e1}},
			"detach p1 evpn 10.0.0.1\nattach p1 evpn 10.0.0.9 +rt\n"},
		{"half applied: only the missing IP VPN attachment",
			set{"p1": {e1, i1}}, set{"p1": {e1}},
			"attach p1 ipvpn 10.0.0.1 +rt\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acts := Reconcile(tc.desired, tc.applied)
			if got := render(acts); got != tc.want {
				t.Errorf("Reconcile =\n%s\nwant\n%s", got, tc.want)
			}
			// Carrying the actions out gives the desired set.
			applied := set{}
			for k, v := range tc.applied {
				applied[k] = append([]Attachment(nil), v...)
			}
			for _, a := range acts {
				Record(applied, a)
			}
			if again := Reconcile(tc.desired, applied); len(again) != 0 {
				t.Errorf("after the actions, Reconcile still wants:\n%s", render(again))
			}
		})
	}
}

func TestDetachBody(t *testing.T) {
	a, err := ParseAttachment(json.RawMessage(`{"vpn_type":"evpn","vpn_instance_id":"evpn_x","mac_address":"fa:16:3e:00:00:01",` +
		`"ip_address":"10.0.0.1","gateway_ip":"10.0.0.254","local_port":{"linuxif":"tapabc"},"import_rt":["64512:1"],` +
		`"export_rt":["64512:1"],"vni":1001,"description":{"port":"p"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"ip_address":"10.0.0.1","local_port":{"linuxif":"tapabc"},"mac_address":"fa:16:3e:00:00:01","vpn_instance_id":"evpn_x","vpn_type":"evpn"}`
	if got := string(a.DetachBody()); got != want {
		t.Errorf("DetachBody = %s, want %s", got, want)
	}
}

func TestParseAttachmentErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`[1]`, "not a JSON object"},
		{`{"vpn_instance_id":"x"}`, "no vpn_type"},
		{`{"vpn_type":"evpn"}`, "no vpn_instance_id"},
		{`{"vpn_type":1,"vpn_instance_id":"x"}`, "no vpn_type"},
	} {
		if _, err := ParseAttachment(json.RawMessage(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAttachment(%s) = %v, want an error containing %q", tc.body, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{max: 10e9}
	var last int64
	for i := 0; i < 20; i++ {
		d := b.next()
		if d < b.cur/2 || d > b.cur {
			t.Fatalf("step %d: delay %v outside [%v, %v]", i, d, b.cur/2, b.cur)
		}
		last = int64(b.cur)
	}
	if last != 10e9 {
		t.Errorf("back-off stops growing at %v, want the 10 s cap", last)
	}
}

// BenchmarkReconcile measures a full replay plan (10,000 ports, nothing
// applied) and an in-sync check of the same set.
func BenchmarkReconcile(b *testing.B) {
	desired := map[string][]Attachment{}
	for i := 0; i < 10000; i++ {
		body := fmt.Sprintf(`{"vpn_type":"evpn","vpn_instance_id":"evpn_n%d","mac_address":"fa:16:3e:00:%02x:%02x","ip_address":"10.%d.%d.1",`+
			`"local_port":{"linuxif":"tap%05d"},"import_rt":["64512:1"],"export_rt":["64512:1"],"vni":1001}`, i%100, i/256, i%256, i/256, i%256, i)
		a, err := ParseAttachment(json.RawMessage(body))
		if err != nil {
			b.Fatal(err)
		}
		desired[fmt.Sprintf("port-%05d", i)] = []Attachment{a}
	}
	b.Run("replay", func(b *testing.B) {
		for b.Loop() {
			if n := len(Reconcile(desired, map[string][]Attachment{})); n != 10000 {
				b.Fatal(n)
			}
		}
	})
	b.Run("in-sync", func(b *testing.B) {
		for b.Loop() {
			if n := len(Reconcile(desired, desired)); n != 0 {
				b.Fatal(n)
			}
		}
	})
}
