package ctlclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
		typ    string
	}{
		{404, `{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}`,
			"Network x could not be found.", "NetworkNotFound"},
		{409, `{"NeutronError": {"type": "Conflict", "message": ""}}`, "Conflict (HTTP 409)", "Conflict"},
		{502, `bad gateway`, "HTTP 502: bad gateway", ""},
		{500, ``, "HTTP 500 Internal Server Error", ""},
	} {
		e := decodeError(tc.status, []byte(tc.body))
		if e.Error() != tc.want || e.Type != tc.typ || e.Status != tc.status {
			t.Errorf("decodeError(%d, %s) = %q %q %d, want %q %q", tc.status, tc.body, e.Error(), e.Type, e.Status, tc.want, tc.typ)
		}
	}
}

// TestWatch checks the feed reader: lines in order, raw attachments kept
// byte for byte, a cut-off last line dropped, the query, the token, and
// 410 as an *Error.
func TestWatch(t *testing.T) {
	att := `{"vpn_type":"evpn","vpn_instance_id":"evpn_n","vni":1001}`
	var query, auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query, auth = r.URL.RawQuery, r.Header.Get("Authorization")
		if r.URL.Query().Get("revision") == "1" {
			w.WriteHeader(http.StatusGone)
			io.WriteString(w, `{"NeutronError": {"type": "RevisionCompacted", "message": "revision 1 has been compacted"}}`)
			return
		}
		io.WriteString(w, `{"revision":8,"events":[{"type":"put","port_id":"p","network_id":"n","attachments":[`+att+`]}]}`+"\n")
		io.WriteString(w, `{"revision":9,"events":[]}`+"\n")
		io.WriteString(w, `{"revision":10,"events":[{"type":"del`) // cut off
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	var got []FeedLine
	err := c.WatchHostAttachments(context.Background(), "h1", 7, 30, func(l FeedLine) error { got = append(got, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if query != "revision=7&timeout=30&watch=true" || auth != "Bearer tok" {
		t.Errorf("query %q, auth %q", query, auth)
	}
	if len(got) != 2 || got[0].Revision != 8 || got[1].Revision != 9 || len(got[1].Events) != 0 {
		t.Fatalf("lines: %+v", got)
	}
	if a := string(got[0].Events[0].Attachments[0]); a != att {
		t.Errorf("attachment %s, want it byte for byte: %s", a, att)
	}
	err = c.WatchHostAttachments(context.Background(), "h1", 1, 0, func(FeedLine) error { return nil })
	if !IsStatus(err, http.StatusGone) || !strings.Contains(err.Error(), "compacted") {
		t.Errorf("compacted revision: %v, want a 410 *Error", err)
	}
}
