package controller

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// stream is an open watch of a host's attachments.
type stream struct {
	t    *testing.T
	resp *http.Response
	sc   *bufio.Scanner
}

func openWatch(t *testing.T, base, host string, after int64) *stream {
	t.Helper()
	url := fmt.Sprintf("%s/v1/hosts/%s/attachments?watch=true", base, host)
	if after > 0 {
		url += fmt.Sprintf("&revision=%d", after)
	}
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("watch: status %d, content type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &stream{t: t, resp: r, sc: sc}
}

// next reads the next non-bookmark line.
func (s *stream) next() FeedLine {
	s.t.Helper()
	for {
		if !s.sc.Scan() {
			s.t.Fatalf("watch stream ended: %v", s.sc.Err())
		}
		var l FeedLine
		if err := json.Unmarshal(s.sc.Bytes(), &l); err != nil {
			s.t.Fatalf("bad line %q: %v", s.sc.Text(), err)
		}
		if len(l.Events) > 0 {
			return l
		}
	}
}

func (s *stream) close() { s.resp.Body.Close() }

// describe summarises a line as "put <port> <ip> <gateway>" / "delete <port>".
func describe(l FeedLine, names map[string]string) string {
	var parts []string
	for _, ev := range l.Events {
		s := ev.Type + " " + names[ev.PortID]
		if ev.Type == "put" {
			a := ev.Attachments[0]
			s += " " + a.IPAddress + " gw " + a.GatewayIP
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func TestAttachmentFeedResumes(t *testing.T) {
	e := newEnv(t, opts{vnis: "5000:5000"})
	net := str(e.network(obj{}), "id")
	sub := str(e.subnet(net, "10.0.0.0/24", obj{"allocation_pools": []obj{{"start": "10.0.0.2", "end": "10.0.0.200"}}}), "id")
	list := e.must(200, "GET", "/v1/hosts/h1/attachments", nil, "")
	r0 := num(list, "revision")
	if len(list["ports"].([]any)) != 0 || r0 == 0 {
		t.Fatalf("initial list %v", list)
	}
	names := map[string]string{}
	newPort := func(name, host, ip string) string {
		p := e.port(net, obj{"binding:host_id": host, "fixed_ips": []obj{{"ip_address": ip}}})
		names[str(p, "id")] = name
		return str(p, "id")
	}
	put := func(id string, fields obj) { e.must(200, "PUT", "/v2.0/ports/"+id, obj{"port": fields}, "port") }

	// Three changes before the watch starts (it starts from r0).
	p1 := newPort("p1", "h1", "10.0.0.11")
	newPort("p2", "h2", "10.0.0.12")      // another host: not in h1's feed
	put(p1, obj{"name": "renamed"})       // no attachment change: no event
	put(p1, obj{"admin_state_up": false}) // delete
	put(p1, obj{"admin_state_up": true})  // put
	w := openWatch(t, e.srv.URL, "h1", r0)
	var got []string
	var revs []int64
	for range 3 {
		l := w.next()
		got, revs = append(got, describe(l, names)), append(revs, l.Revision)
	}
	w.close() // disconnect

	put(p1, obj{"binding:host_id": "h2"}) // moved away: delete
	p3 := newPort("p3", "h1", "10.0.0.13")
	e.must(200, "PUT", "/v2.0/subnets/"+sub, obj{"subnet": obj{"gateway_ip": "10.0.0.254"}}, "subnet")
	e.must(204, "DELETE", "/v2.0/ports/"+p3, nil, "")

	w = openWatch(t, e.srv.URL, "h1", revs[len(revs)-1]) // resume
	defer w.close()
	for range 4 {
		l := w.next()
		got, revs = append(got, describe(l, names)), append(revs, l.Revision)
	}
	newPort("p4", "h1", "10.0.0.14") // live, while watching
	l := w.next()
	got, revs = append(got, describe(l, names)), append(revs, l.Revision)

	want := []string{
		"put p1 10.0.0.11 gw 10.0.0.1",
		"delete p1",
		"put p1 10.0.0.11 gw 10.0.0.1",
		"delete p1",
		"put p3 10.0.0.13 gw 10.0.0.1",
		"put p3 10.0.0.13 gw 10.0.0.254",
		"delete p3",
		"put p4 10.0.0.14 gw 10.0.0.254",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := 1; i < len(revs); i++ {
		if revs[i] <= revs[i-1] {
			t.Fatalf("revisions not increasing: %v", revs)
		}
	}
	// The replayed feed ends where a fresh list is.
	list = e.must(200, "GET", "/v1/hosts/h1/attachments", nil, "")
	ports := list["ports"].([]any)
	if len(ports) != 1 || names[str(ports[0].(obj), "port_id")] != "p4" || num(list, "revision") < revs[len(revs)-1] {
		t.Fatalf("final list %v", list)
	}
	a := ports[0].(obj)["attachments"].([]any)[0].(obj)
	wantAtt := fmt.Sprintf(`map[description:map[port:%[1]s] export_rt:[64512:5000] gateway_ip:10.0.0.254 import_rt:[64512:5000] ip_address:10.0.0.14 local_port:map[linuxif:tap%[2]s] mac_address:%[3]s vni:5000 vpn_instance_id:evpn_%[4]s vpn_type:evpn]`,
		str(ports[0].(obj), "port_id"), str(ports[0].(obj), "port_id")[:11], a["mac_address"], net)
	if fmt.Sprint(a) != wantAtt {
		t.Fatalf("attachment\n%v\nwant\n%s", a, wantAtt)
	}
}

func TestAttachmentFeedErrors(t *testing.T) {
	e := newEnv(t, opts{})
	net := str(e.network(obj{}), "id")
	e.port(net, obj{"binding:host_id": "h1"})
	e.port(net, obj{"binding:host_id": "h1"})
	rev := num(e.must(200, "GET", "/v1/hosts/h1/attachments", nil, ""), "revision")
	if _, err := e.st.Client.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query  string
		status int
		typ    string
	}{
		{"?watch=true&revision=1", 410, "RevisionCompacted"},
		{fmt.Sprintf("?watch=true&revision=%d", rev+100), 400, "InvalidInput"},
		{"?watch=true&revision=-3", 400, "InvalidInput"},
		{"?revision=3", 400, "HTTPBadRequest"},
		{"?colour=blue", 400, "HTTPBadRequest"},
	} {
		r := e.do("GET", "/v1/hosts/h1/attachments"+tc.query, nil)
		if r.status != tc.status || r.errType() != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.query, r.status, r.raw, tc.status, tc.typ)
		}
	}
	// The compacted revision itself is still a valid starting point.
	w := openWatch(t, e.srv.URL, "h1", rev)
	defer w.close()
	e.port(net, obj{"binding:host_id": "h1"})
	if l := w.next(); len(l.Events) != 1 || l.Events[0].Type != "put" || l.Revision <= rev {
		t.Fatalf("line after compaction: %+v", l)
	}

}

func TestNetworkAdminStateMovesAttachments(t *testing.T) {
	e := newEnv(t, opts{})
	net := str(e.network(obj{}), "id")
	e.subnet(net, "10.0.0.0/24", nil)
	names := map[string]string{}
	for i := range 3 {
		names[str(e.port(net, obj{"binding:host_id": "h1"}), "id")] = fmt.Sprint("p", i)
	}
	// From now on (no revision), ending after a while (long poll).
	w := openWatch(t, e.srv.URL, "h1", 0)
	defer w.close()
	e.must(200, "PUT", "/v2.0/networks/"+net, obj{"network": obj{"admin_state_up": false}}, "network")
	down := w.next()
	if len(down.Events) != 3 || slices.ContainsFunc(down.Events, func(ev FeedEvent) bool { return ev.Type != "delete" }) {
		t.Fatalf("network down: %+v, want 3 deletes in one revision", down)
	}
	if l := e.must(200, "GET", "/v1/hosts/h1/attachments", nil, ""); len(l["ports"].([]any)) != 0 {
		t.Fatalf("attachments of a down network: %v", l)
	}
	e.must(200, "PUT", "/v2.0/networks/"+net, obj{"network": obj{"name": "renamed"}}, "network") // no event
	e.must(200, "PUT", "/v2.0/networks/"+net, obj{"network": obj{"admin_state_up": true}}, "network")
	up := w.next()
	if len(up.Events) != 3 || slices.ContainsFunc(up.Events, func(ev FeedEvent) bool { return ev.Type != "put" }) || up.Revision != down.Revision+2 {
		t.Fatalf("network up: %+v (down at %d), want 3 puts two revisions later", up, down.Revision)
	}
}

func TestWatchTimeoutEndsStream(t *testing.T) {
	e := newEnv(t, opts{})
	r, err := http.Get(e.srv.URL + "/v1/hosts/h1/attachments?watch=true&timeout=0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() { // only bookmarks may come; then the end
		var l FeedLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || len(l.Events) != 0 {
			t.Fatalf("line %q (%v) on an idle host", sc.Text(), err)
		}
	}
	if r.StatusCode != 200 || sc.Err() != nil {
		t.Fatalf("status %d, read error %v", r.StatusCode, sc.Err())
	}
}
