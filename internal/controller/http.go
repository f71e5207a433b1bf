package controller

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// Handler serves the Neutron v2.0 resources (/v2.0/networks, /v2.0/subnets,
// /v2.0/ports) and the agent API (/v1/hosts/<host>/attachments,
// /v1/ports/<id>/status). With a non-empty token, every request must
// carry "Authorization: Bearer <token>" or "X-Auth-Token: <token>".
func Handler(c *Controller, token string) http.Handler {
	h := &handler{c: c, log: c.log}
	mux := http.NewServeMux()
	for _, r := range []struct{ plural, singular string }{{"networks", "network"}, {"subnets", "subnet"}, {"ports", "port"}} {
		mux.HandleFunc("GET /v2.0/"+r.plural, func(w http.ResponseWriter, req *http.Request) { h.list(w, req, r.plural) })
		mux.HandleFunc("POST /v2.0/"+r.plural, func(w http.ResponseWriter, req *http.Request) { h.create(w, req, r.singular) })
		mux.HandleFunc("GET /v2.0/"+r.plural+"/{id}", func(w http.ResponseWriter, req *http.Request) { h.show(w, req, r.singular) })
		mux.HandleFunc("PUT /v2.0/"+r.plural+"/{id}", func(w http.ResponseWriter, req *http.Request) { h.update(w, req, r.singular) })
		mux.HandleFunc("DELETE /v2.0/"+r.plural+"/{id}", func(w http.ResponseWriter, req *http.Request) { h.remove(w, req, r.singular) })
	}
	mux.HandleFunc("GET /v1/hosts/{host}/attachments", h.attachments)
	mux.HandleFunc("PUT /v1/ports/{id}/status", h.portStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		h.fail(w, req, newErr(http.StatusNotFound, "HTTPNotFound", "no resource at %s %s", req.Method, req.URL.Path))
	})
	if token == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := req.Header.Get("X-Auth-Token")
		if a := req.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
			got = strings.TrimPrefix(a, "Bearer ")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			h.fail(w, req, newErr(http.StatusUnauthorized, "HTTPUnauthorized",
				"missing or wrong token: send \"Authorization: Bearer <token>\" or \"X-Auth-Token: <token>\""))
			return
		}
		mux.ServeHTTP(w, req)
	})
}

type handler struct {
	c   *Controller
	log *slog.Logger
}

// fail sends a Neutron-style error.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	if e.Status >= 500 {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	h.send(w, e.Status, map[string]any{"NeutronError": map[string]string{"type": e.Type, "message": e.Message, "detail": ""}})
}

func (h *handler) send(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		h.log.Debug("cannot write the response", "err", err)
	}
}

func readBody(r *http.Request, key string) (body, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("cannot read the request body: %v", err)
	}
	if len(raw) > maxBody {
		return nil, newErr(http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", "the request body exceeds %d bytes", maxBody)
	}
	return decodeResource(raw, key)
}

func (h *handler) create(w http.ResponseWriter, r *http.Request, kind string) {
	b, err := readBody(r, kind)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var v any
	switch kind {
	case "network":
		v, err = h.c.CreateNetwork(r.Context(), b)
	case "subnet":
		v, err = h.c.CreateSubnet(r.Context(), b)
	default:
		v, err = h.c.CreatePort(r.Context(), b)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, http.StatusCreated, map[string]any{kind: v})
}

func (h *handler) update(w http.ResponseWriter, r *http.Request, kind string) {
	b, err := readBody(r, kind)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id := r.PathValue("id")
	var v any
	switch kind {
	case "network":
		v, err = h.c.UpdateNetwork(r.Context(), id, b)
	case "subnet":
		v, err = h.c.UpdateSubnet(r.Context(), id, b)
	default:
		v, err = h.c.UpdatePort(r.Context(), id, b)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, http.StatusOK, map[string]any{kind: v})
}

func (h *handler) remove(w http.ResponseWriter, r *http.Request, kind string) {
	id := r.PathValue("id")
	var err error
	switch kind {
	case "network":
		err = h.c.DeleteNetwork(r.Context(), id)
	case "subnet":
		err = h.c.DeleteSubnet(r.Context(), id)
	default:
		err = h.c.DeletePort(r.Context(), id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) show(w http.ResponseWriter, r *http.Request, kind string) {
	id := r.PathValue("id")
	var v any
	var err error
	switch kind {
	case "network":
		v, err = h.c.GetNetwork(r.Context(), id)
	case "subnet":
		v, err = h.c.GetSubnet(r.Context(), id)
	default:
		v, err = h.c.GetPort(r.Context(), id)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m := toMap(v)
	fields, err := selectFields(r.URL.Query(), m)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, http.StatusOK, map[string]any{kind: project(m, fields)})
}

func (h *handler) list(w http.ResponseWriter, r *http.Request, plural string) {
	var items []map[string]any
	var proto any
	var err error
	switch plural {
	case "networks":
		proto = &Network{}
		var l []*Network
		l, err = h.c.ListNetworks(r.Context())
		for _, x := range l {
			items = append(items, toMap(x))
		}
	case "subnets":
		proto = &Subnet{}
		var l []*Subnet
		l, err = h.c.ListSubnets(r.Context())
		for _, x := range l {
			items = append(items, toMap(x))
		}
	default:
		proto = &Port{}
		var l []*Port
		l, err = h.c.ListPorts(r.Context())
		for _, x := range l {
			items = append(items, toMap(x))
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	known := toMap(proto)
	fields, err := selectFields(q, known)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, it := range items {
		ok, err := matches(q, it, known)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if ok {
			out = append(out, project(it, fields))
		}
	}
	h.send(w, http.StatusOK, map[string]any{plural: out})
}

// toMap turns a resource into its JSON object.
func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// selectFields reads ?fields= (repeated or comma-separated).
func selectFields(q url.Values, known map[string]any) ([]string, error) {
	var out []string
	for _, v := range q["fields"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if _, ok := known[f]; !ok {
				return nil, badRequest("'%s' is not a valid field to select", f)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

func project(m map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return m
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		out[f] = m[f]
	}
	return out
}

// matches applies the query's attribute filters (values of one attribute
// are alternatives); unknown attributes are an error.
func matches(q url.Values, item, known map[string]any) (bool, error) {
	for k, vals := range q {
		switch k {
		case "fields":
			continue
		case "limit", "marker", "sort_key", "sort_dir", "page_reverse":
			return false, badRequest("pagination and sorting (%s) are not supported", k)
		}
		if _, ok := known[k]; !ok {
			return false, badRequest("'%s' is not a valid attribute for filtering", k)
		}
		if !slices.ContainsFunc(vals, func(want string) bool { return matchValue(item[k], want) }) {
			return false, nil
		}
	}
	return true, nil
}

func matchValue(v any, want string) bool {
	switch v := v.(type) {
	case string:
		return v == want
	case bool:
		b, err := strconv.ParseBool(strings.ToLower(want))
		return err == nil && b == v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64) == want
	case nil:
		return want == "" || want == "null"
	case []any:
		k, val, isKV := strings.Cut(want, "=")
		for _, e := range v {
			switch e := e.(type) {
			case string:
				if e == want {
					return true
				}
			case map[string]any: // fixed_ips=ip_address=10.0.0.5
				if isKV && fmt.Sprint(e[k]) == val {
					return true
				}
			}
		}
	}
	return false
}

// portStatus handles PUT /v1/ports/<id>/status {"status": "ACTIVE"|"DOWN"}.
func (h *handler) portStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status string `json:"status"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, r, badRequest("the body must be {\"status\": \"ACTIVE\"|\"DOWN\"}: %v", err))
		return
	}
	p, err := h.c.SetPortStatus(r.Context(), r.PathValue("id"), req.Status)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.send(w, http.StatusOK, map[string]any{"port": p})
}

// attachments handles GET /v1/hosts/<host>/attachments, with
// ?watch=true[&revision=N][&timeout=S] for the stream of changes after
// revision N as JSON lines (FeedLine), ending after S seconds if given.
func (h *handler) attachments(w http.ResponseWriter, r *http.Request) {
	host := r.PathValue("host")
	q := r.URL.Query()
	for k := range q {
		if k != "watch" && k != "revision" && k != "timeout" {
			h.fail(w, r, badRequest("unknown query parameter '%s' (want watch, revision, timeout)", k))
			return
		}
	}
	watch, _ := strconv.ParseBool(q.Get("watch"))
	if !watch {
		if q.Has("revision") || q.Has("timeout") {
			h.fail(w, r, badRequest("revision and timeout need watch=true"))
			return
		}
		l, err := h.c.ListHostAttachments(r.Context(), host)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.send(w, http.StatusOK, l)
		return
	}
	var after int64
	if s := q.Get("revision"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1 {
			h.fail(w, r, invalidInput("revision", "'%s' is not a positive integer", s))
			return
		}
		after = v
	}
	ctx := r.Context()
	if s := q.Get("timeout"); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 {
			h.fail(w, r, invalidInput("timeout", "'%s' is not a positive number of seconds", s))
			return
		}
		var cancel func()
		ctx, cancel = context.WithTimeout(ctx, time.Duration(v*float64(time.Second)))
		defer cancel()
	}
	started := false
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	start := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
	err := h.c.WatchHostAttachments(ctx, host, after, func(l FeedLine) error {
		start()
		if err := enc.Encode(l); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	}, start)
	if err != nil && !started {
		h.fail(w, r, err)
		return
	}
	if err != nil {
		h.log.Debug("watch ended", "host", host, "err", err)
	}
	start()
}
