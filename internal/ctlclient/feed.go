package ctlclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
)

// PortAttachments is what a host's agent must attach for one port: the
// bagpipe-bgp attach_localport bodies, exactly as the controller sent them.
type PortAttachments struct {
	PortID      string            `json:"port_id"`
	NetworkID   string            `json:"network_id"`
	Attachments []json.RawMessage `json:"attachments"`
}

// HostAttachments is a host's attachments as of controller revision
// Revision.
type HostAttachments struct {
	Host     string            `json:"host"`
	Revision int64             `json:"revision"`
	Ports    []PortAttachments `json:"ports"`
}

// FeedEvent is one change of a port's attachments: Type "put" (the port's
// attachments are now Attachments) or "delete" (none any more).
type FeedEvent struct {
	Type        string            `json:"type"`
	PortID      string            `json:"port_id"`
	NetworkID   string            `json:"network_id,omitempty"`
	Attachments []json.RawMessage `json:"attachments,omitempty"`
}

// FeedLine is every change of one revision (a bookmark when Events is
// empty).
type FeedLine struct {
	Revision int64       `json:"revision"`
	Events   []FeedEvent `json:"events"`
}

// HostAttachments lists the attachments of host.
func (c *Client) HostAttachments(ctx context.Context, host string) (*HostAttachments, error) {
	var out HostAttachments
	if err := c.do(ctx, c.HTTP, http.MethodGet, "/v1/hosts/"+url.PathEscape(host)+"/attachments", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WatchHostAttachments streams the changes of host's attachments after
// revision after, calling fn with each complete line in order, until the
// stream ends (nil: the controller closed it, or its timeout of
// timeoutSec seconds, when positive, ran out), ctx ends (ctx's error) or fn
// fails (its error). A compacted revision gives an *Error with status 410
// (IsStatus(err, http.StatusGone)): list again.
func (c *Client) WatchHostAttachments(ctx context.Context, host string, after int64, timeoutSec int, fn func(FeedLine) error) error {
	q := url.Values{"watch": {"true"}, "revision": {strconv.FormatInt(after, 10)}}
	if timeoutSec > 0 {
		q.Set("timeout", strconv.Itoa(timeoutSec))
	}
	path := "/v1/hosts/" + url.PathEscape(host) + "/attachments?" + q.Encode()
	resp, err := c.send(ctx, c.Stream, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return decodeError(resp.StatusCode, raw)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A line without its newline was cut off: drop it (the
			// controller only sends complete lines).
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("the attachment feed of %s from %s broke: %w", host, c.BaseURL, err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var fl FeedLine
		if err := json.Unmarshal(line, &fl); err != nil {
			return fmt.Errorf("the attachment feed of %s sent a line that is not a feed line (%q): %w", host, line, err)
		}
		if err := fn(fl); err != nil {
			return err
		}
	}
}
