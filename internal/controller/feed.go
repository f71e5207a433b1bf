package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// HostAttachments is the answer of GET /v1/hosts/<host>/attachments: the
// attachments of every bound, administratively up port of the host, as of
// etcd revision Revision.
type HostAttachments struct {
	Host     string            `json:"host"`
	Revision int64             `json:"revision"`
	Ports    []PortAttachments `json:"ports"`
}

// FeedEvent is one change of a port's attachments on a host: "put" (the
// port's attachments are now Attachments) or "delete" (the port has none
// on this host any more).
type FeedEvent struct {
	Type        string       `json:"type"`
	PortID      string       `json:"port_id"`
	NetworkID   string       `json:"network_id,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
}

// FeedLine is one line of the watch stream: every change of etcd revision
// Revision (a bookmark when Events is empty: nothing changed for this host
// up to Revision). A client that has handled a line resumes with
// ?revision=<Revision>.
type FeedLine struct {
	Revision int64       `json:"revision"`
	Events   []FeedEvent `json:"events"`
}

// validHost checks a host name used in a key.
func validHost(host string) error {
	if host == "" || strings.ContainsAny(host, "/\x00") || len(host) > 255 {
		return invalidInput("host", "'%s' is not a valid host name", host)
	}
	return nil
}

// ListHostAttachments returns the attachments of a host's ports.
func (c *Controller) ListHostAttachments(ctx context.Context, host string) (*HostAttachments, error) {
	if err := validHost(host); err != nil {
		return nil, err
	}
	resp, err := c.cli.Get(ctx, c.attachPrefix(host), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd read of attachments of %s failed: %w", host, err)
	}
	out := &HostAttachments{Host: host, Revision: resp.Header.Revision, Ports: []PortAttachments{}}
	for _, kv := range resp.Kvs {
		var pa PortAttachments
		if err := json.Unmarshal(kv.Value, &pa); err != nil {
			return nil, fmt.Errorf("corrupt attachments at %s: %w", kv.Key, err)
		}
		out.Ports = append(out.Ports, pa)
	}
	return out, nil
}

// WatchHostAttachments calls ready (if not nil) once the watch is set up,
// then emit with every change of the host's
// attachments after revision after (after = 0: from now on), one FeedLine
// per etcd revision, in order, until ctx ends (then it returns nil) or
// emit fails. A revision that etcd has compacted gives a 410 Error: list
// again.
func (c *Controller) WatchHostAttachments(ctx context.Context, host string, after int64, emit func(FeedLine) error, ready func()) error {
	if err := validHost(host); err != nil {
		return err
	}
	prefix := c.attachPrefix(host)
	cur, err := c.cli.Get(ctx, prefix, clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd read of attachments of %s failed: %w", host, err)
	}
	if after == 0 {
		after = cur.Header.Revision
	}
	if after > cur.Header.Revision {
		return invalidInput("revision", "%d is in the future (the current revision is %d)", after, cur.Header.Revision)
	}
	if _, err := c.cli.Get(ctx, prefix, clientv3.WithCountOnly(), clientv3.WithRev(after)); err != nil {
		if errors.Is(err, rpctypes.ErrCompacted) {
			return compacted(after)
		}
		return fmt.Errorf("etcd read of attachments of %s at revision %d failed: %w", host, after, err)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := c.cli.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(after+1), clientv3.WithProgressNotify())
	if ready != nil {
		ready()
	}
	for resp := range wch {
		if err := resp.Err(); err != nil {
			if resp.CompactRevision != 0 {
				return compacted(after)
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("etcd watch of attachments of %s failed: %w", host, err)
		}
		if resp.IsProgressNotify() {
			if resp.Header.Revision > after {
				after = resp.Header.Revision
				if err := emit(FeedLine{Revision: after, Events: []FeedEvent{}}); err != nil {
					return err
				}
			}
			continue
		}
		var line *FeedLine
		for _, ev := range resp.Events {
			rev := ev.Kv.ModRevision
			if line != nil && line.Revision != rev {
				if err := emit(*line); err != nil {
					return err
				}
				line = nil
			}
			if line == nil {
				line = &FeedLine{Revision: rev}
			}
			fe := FeedEvent{Type: "delete", PortID: strings.TrimPrefix(string(ev.Kv.Key), prefix)}
			if ev.Type == clientv3.EventTypePut {
				var pa PortAttachments
				if err := json.Unmarshal(ev.Kv.Value, &pa); err != nil {
					return fmt.Errorf("corrupt attachments at %s: %w", ev.Kv.Key, err)
				}
				fe = FeedEvent{Type: "put", PortID: pa.PortID, NetworkID: pa.NetworkID, Attachments: pa.Attachments}
			}
			line.Events = append(line.Events, fe)
		}
		if line != nil {
			if err := emit(*line); err != nil {
				return err
			}
			after = line.Revision
		}
	}
	return nil
}

func compacted(rev int64) *Error {
	return newErr(http.StatusGone, "RevisionCompacted",
		"revision %d has been compacted: list the attachments again and watch from the listed revision", rev)
}
