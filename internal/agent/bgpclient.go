package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// BGPClient talks to a bagpipe-bgp REST API (reference §2).
type BGPClient struct {
	// URL is the API's base URL, e.g. http://127.0.0.1:8082.
	URL  string
	http *http.Client
}

// NewBGPClient returns a client of the bagpipe-bgp API at url.
func NewBGPClient(url string) *BGPClient {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
	}
	return &BGPClient{URL: strings.TrimRight(url, "/"), http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

// RejectedError is a 4xx answer of bagpipe-bgp: the request itself is
// wrong, sending it again will not help.
type RejectedError struct {
	Status int
	Msg    string
}

// Error implements error.
func (e *RejectedError) Error() string {
	return fmt.Sprintf("bagpipe-bgp rejected the request (HTTP %d): %s", e.Status, e.Msg)
}

// UnreachableError says that bagpipe-bgp could not be reached: the
// request can be sent again once it answers.
type UnreachableError struct{ Err error }

// Error implements error.
func (e *UnreachableError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UnreachableError) Unwrap() error { return e.Err }

// Ping returns bagpipe-bgp's /ping value, a big integer kept as its
// decimal text (a Python server's value does not fit float64).
func (c *BGPClient) Ping(ctx context.Context) (string, error) {
	b, err := c.call(ctx, http.MethodGet, "/ping", nil)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var n json.Number
	if err := dec.Decode(&n); err != nil {
		return "", &UnreachableError{fmt.Errorf("bagpipe-bgp at %s answered /ping with %q, not a number (is it bagpipe-bgp?): %w", c.URL, b, err)}
	}
	return n.String(), nil
}

// Attach sends POST /attach_localport with body.
func (c *BGPClient) Attach(ctx context.Context, body json.RawMessage) error {
	_, err := c.call(ctx, http.MethodPost, "/attach_localport", body)
	return err
}

// Detach sends POST /detach_localport with body.
func (c *BGPClient) Detach(ctx context.Context, body json.RawMessage) error {
	_, err := c.call(ctx, http.MethodPost, "/detach_localport", body)
	return err
}

// call sends a request; success is HTTP 200 only (as upstream's client).
func (c *BGPClient) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("bad bagpipe-bgp URL %q (see --bagpipe-bgp): %w", c.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bagpipe-agent")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnreachableError{fmt.Errorf("cannot reach bagpipe-bgp at %s (is it running? see --bagpipe-bgp): %w", c.URL, err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, &UnreachableError{fmt.Errorf("reading bagpipe-bgp's answer to %s %s: %w", method, path, err)}
	}
	if resp.StatusCode == http.StatusOK {
		return b, nil
	}
	msg := strings.TrimSpace(string(b))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return nil, &RejectedError{Status: resp.StatusCode, Msg: msg}
	}
	return nil, &ServerError{Status: resp.StatusCode, Msg: fmt.Sprintf("bagpipe-bgp answered %s %s with HTTP %d: %s", method, path, resp.StatusCode, msg)}
}

// ServerError is a non-200, non-4xx answer of bagpipe-bgp (an internal
// failure, e.g. of its dataplane): bagpipe-bgp is up, the request may
// succeed later.
type ServerError struct {
	Status int
	Msg    string
}

// Error implements error.
func (e *ServerError) Error() string { return e.Msg }

// isRejected says whether err is a 4xx answer of bagpipe-bgp.
func isRejected(err error) (*RejectedError, bool) {
	var r *RejectedError
	ok := errors.As(err, &r)
	return r, ok
}
