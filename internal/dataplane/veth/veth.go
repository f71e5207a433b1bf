// Package veth creates and deletes the veth pairs that link an E-VPN
// instance to an IP VPN instance (ipvpn attach with local_port.evpn,
// reference §5.5): evpn<evi id>-ipvpn<vrf id> / ipvpn<vrf id>-evpn<evi id>
// when these fit in 15 characters, else short hashed names (Names), MTU
// 65535, both ends up. Netlink implements it with rtnetlink; Recorder
// only records (dummy dataplanes, tests).
package veth

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/bagpipe-go/bagpipe/internal/netnsref"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// MTU of the link veths (upstream: 65535).
const MTU = 65535

// Netlink manages veth pairs in one network namespace.
type Netlink struct {
	h   *netlink.Handle
	log *slog.Logger
}

// New opens a netlink handle in the namespace ns: "" for the current one,
// else a name under /var/run/netns or a path (see internal/netnsref).
func New(ns string, log *slog.Logger) (*Netlink, error) {
	if log == nil {
		log = slog.Default()
	}
	var h *netlink.Handle
	var err error
	if ns == "" {
		h, err = netlink.NewHandle()
	} else {
		var nsh netns.NsHandle
		if nsh, err = netnsref.Open(ns); err != nil {
			return nil, fmt.Errorf("opening network namespace %q for E-VPN ↔ IP VPN veths: %w", ns, err)
		}
		defer nsh.Close()
		h, err = netlink.NewHandleAt(nsh)
	}
	if err != nil {
		return nil, fmt.Errorf("opening a netlink socket for E-VPN ↔ IP VPN veths: %w", err)
	}
	return &Netlink{h: h, log: log.With("component", "veth")}, nil
}

// Close releases the netlink handle.
func (n *Netlink) Close() { n.h.Close() }

// CreateVeth creates the pair a/b, deleting an existing a first (as
// upstream does), and sets both ends up.
func (n *Netlink) CreateVeth(a, b string) error {
	if err := n.DeleteVeth(a); err != nil {
		return err
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = a, MTU
	v := &netlink.Veth{LinkAttrs: la, PeerName: b, PeerMTU: MTU}
	if err := n.h.LinkAdd(v); err != nil {
		return fmt.Errorf("creating veth pair %s/%s: %w (names are at most 15 characters)", a, b, err)
	}
	for _, name := range []string{a, b} {
		l, err := n.h.LinkByName(name)
		if err == nil {
			err = n.h.LinkSetUp(l)
		}
		if err != nil {
			_ = n.DeleteVeth(a)
			return fmt.Errorf("setting veth %s up: %w", name, err)
		}
	}
	n.log.Info("veth pair created", "a", a, "b", b)
	return nil
}

// DeleteVeth deletes the pair through its end a; a missing link is not an
// error.
func (n *Netlink) DeleteVeth(a string) error {
	l, err := n.h.LinkByName(a)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("looking up veth %s: %w", a, err)
	}
	if err := n.h.LinkDel(l); err != nil {
		return fmt.Errorf("deleting veth %s: %w", a, err)
	}
	n.log.Info("veth pair deleted", "a", a)
	return nil
}

// Recorder records veth operations without touching the system (used with
// the dummy dataplane drivers). Safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	live map[string]string
	ops  []string
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{live: map[string]string{}} }

// CreateVeth records the pair.
func (r *Recorder) CreateVeth(a, b string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live[a] = b
	r.ops = append(r.ops, "create "+a+" "+b)
	return nil
}

// DeleteVeth forgets the pair.
func (r *Recorder) DeleteVeth(a string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.live, a)
	r.ops = append(r.ops, "delete "+a)
	return nil
}

// Live returns the pairs that exist (a → b).
func (r *Recorder) Live() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.live))
	for k, v := range r.live {
		out[k] = v
	}
	return out
}

// Ops returns the recorded operations, oldest first.
func (r *Recorder) Ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ops...)
}
