package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// requestTimeout bounds one HTTP exchange with bagpipe-bgp. An attach that
// creates an instance may program a dataplane, hence the generous value.
const requestTimeout = 2 * time.Minute

// Client talks to bagpipe-bgp's REST API over plain HTTP. Proxies from the
// environment are never used (upstream sets NO_PROXY for the server).
type Client struct {
	// BaseURL is "http://host:port", without a trailing slash.
	BaseURL string
	// HTTP is the client used for every request.
	HTTP *http.Client
}

// NewClient returns a client for the API at server (an IP address or host
// name) and port.
func NewClient(server string, port int) *Client {
	return &Client{
		BaseURL: "http://" + net.JoinHostPort(server, strconv.Itoa(port)),
		HTTP: &http.Client{
			Timeout:   requestTimeout,
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		},
	}
}

// HTTPError is an answer from the API with a status other than 200.
type HTTPError struct {
	// Code is the HTTP status code, Reason its reason phrase.
	Code   int
	Reason string
	// Body is the raw response body.
	Body []byte
	// Description is the "description" of a JSON error body
	// ({"code", "title", "description"}, reference §2.1), or the body text
	// when it is not JSON.
	Description string
}

// Error implements error.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("error %d, reason: %s: %s", e.Code, e.Reason, e.Description)
}

// Post sends body as JSON to BaseURL+path (path starts with "/") and
// returns the response body of a 200 answer. Any other status gives an
// *HTTPError; transport failures are returned wrapped.
func (c *Client) Post(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build the request to %s%s: %w", c.BaseURL, path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return c.do(req)
}

// Get fetches url (absolute) and returns the body of a 200 answer; other
// statuses give an *HTTPError.
func (c *Client) Get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build the request to %s: %w", url, err)
	}
	return c.do(req)
}

func (c *Client) do(req *http.Request) ([]byte, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bagpipe-go-cli")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach bagpipe-bgp at %s (is it running, on this address and port?): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("cannot read the answer of %s %s: %w", req.Method, req.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return b, newHTTPError(resp, b)
	}
	return b, nil
}

func newHTTPError(resp *http.Response, body []byte) *HTTPError {
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, strconv.Itoa(resp.StatusCode)))
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	e := &HTTPError{Code: resp.StatusCode, Reason: reason, Body: body, Description: strings.TrimSpace(string(body))}
	var j struct {
		Description *string `json:"description"`
	}
	if json.Unmarshal(body, &j) == nil && j.Description != nil {
		e.Description = *j.Description
	}
	return e
}
