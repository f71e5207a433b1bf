// Package ctlclient is a Go client of bagpipe-controller's REST API: the
// Neutron v2.0 resources (networks, subnets, ports) and the agent API (a
// host's attachments, listed and watched, and port status reports). The
// bagpipe-agent and the bagpipe CLI share it.
//
// Attachments are kept as the controller sent them (json.RawMessage): the
// agent hands them to bagpipe-bgp byte for byte.
package ctlclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one bagpipe-controller.
type Client struct {
	// BaseURL is the controller's URL, e.g. http://127.0.0.1:9696.
	BaseURL string
	// Token, when set, is sent as "Authorization: Bearer <token>".
	Token string
	// HTTP is the client used for every request but watches.
	HTTP *http.Client
	// Stream is the client used for watches (no overall timeout).
	Stream *http.Client
}

// New returns a client of the controller at baseURL, authenticating with
// token when it is not empty.
func New(baseURL, token string) *Client {
	tr := &http.Transport{
		Proxy:                 nil, // the controller is local or on the management network
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	return &Client{
		BaseURL: strings.TrimRight(baseURL, "/"),
		Token:   token,
		HTTP:    &http.Client{Transport: tr, Timeout: 60 * time.Second},
		Stream:  &http.Client{Transport: tr},
	}
}

// Error is an error answer of the controller: Neutron's
// {"NeutronError": {"type", "message", "detail"}} and the HTTP status.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is the Neutron exception name (e.g. "NetworkNotFound").
	Type string
	// Message is the controller's explanation.
	Message string
}

// Error returns the controller's message (its type when it sent none).
func (e *Error) Error() string {
	if e.Message != "" {
		return e.Message
	}
	if e.Type != "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Type, e.Status)
	}
	return fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// IsStatus says whether err is (or wraps) an *Error with HTTP status code.
func IsStatus(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == code
}

// Plural returns the collection name of a resource kind ("network" →
// "networks").
func Plural(kind string) string { return kind + "s" }

// do sends a request with an optional JSON body and decodes a JSON answer
// into out (when not nil). Non-2xx answers give an *Error.
func (c *Client) do(ctx context.Context, hc *http.Client, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("cannot encode the %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.send(ctx, hc, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the answer to %s %s from %s: %w", method, path, c.BaseURL, err)
	}
	if resp.StatusCode/100 != 2 {
		return decodeError(resp.StatusCode, raw)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("the answer to %s %s from %s is not the expected JSON: %w", method, path, c.BaseURL, err)
	}
	return nil
}

// send builds and sends a request (with the token).
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("bad controller URL %q: %w", c.BaseURL, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the controller at %s (is bagpipe-controller running? see --controller): %w", c.BaseURL, err)
	}
	return resp, nil
}

// decodeError turns an error answer into an *Error.
func decodeError(status int, raw []byte) *Error {
	var v struct {
		NeutronError *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"NeutronError"`
	}
	e := &Error{Status: status}
	if json.Unmarshal(raw, &v) == nil && v.NeutronError != nil {
		e.Type, e.Message = v.NeutronError.Type, v.NeutronError.Message
	} else if s := strings.TrimSpace(string(raw)); s != "" && len(s) < 512 {
		e.Message = fmt.Sprintf("HTTP %d: %s", status, s)
	}
	return e
}

// Resource is one Neutron resource as the controller shows it (JSON
// numbers are json.Number).
type Resource = map[string]any

// Create creates a resource of kind ("network", "subnet" or "port") with
// the given attributes and returns it.
func (c *Client) Create(ctx context.Context, kind string, attrs map[string]any) (Resource, error) {
	var out map[string]Resource
	if err := c.do(ctx, c.HTTP, http.MethodPost, "/v2.0/"+Plural(kind), map[string]any{kind: attrs}, &out); err != nil {
		return nil, err
	}
	return out[kind], nil
}

// List returns the resources of kind matching filters (attribute → values).
func (c *Client) List(ctx context.Context, kind string, filters url.Values) ([]Resource, error) {
	path := "/v2.0/" + Plural(kind)
	if len(filters) > 0 {
		path += "?" + filters.Encode()
	}
	var out map[string][]Resource
	if err := c.do(ctx, c.HTTP, http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	l := out[Plural(kind)]
	if l == nil {
		l = []Resource{}
	}
	return l, nil
}

// Show returns the resource of kind with id.
func (c *Client) Show(ctx context.Context, kind, id string) (Resource, error) {
	var out map[string]Resource
	if err := c.do(ctx, c.HTTP, http.MethodGet, "/v2.0/"+Plural(kind)+"/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return out[kind], nil
}

// Update changes attributes of the resource of kind with id and returns it.
func (c *Client) Update(ctx context.Context, kind, id string, attrs map[string]any) (Resource, error) {
	var out map[string]Resource
	if err := c.do(ctx, c.HTTP, http.MethodPut, "/v2.0/"+Plural(kind)+"/"+url.PathEscape(id), map[string]any{kind: attrs}, &out); err != nil {
		return nil, err
	}
	return out[kind], nil
}

// Delete deletes the resource of kind with id.
func (c *Client) Delete(ctx context.Context, kind, id string) error {
	return c.do(ctx, c.HTTP, http.MethodDelete, "/v2.0/"+Plural(kind)+"/"+url.PathEscape(id), nil, nil)
}

// SetPortStatus reports a port's status ("ACTIVE" or "DOWN").
func (c *Client) SetPortStatus(ctx context.Context, portID, status string) error {
	return c.do(ctx, c.HTTP, http.MethodPut, "/v1/ports/"+url.PathEscape(portID)+"/status", map[string]string{"status": status}, nil)
}
