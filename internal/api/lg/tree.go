// Package lg is the looking-glass machinery of the bagpipe-bgp REST API
// (reference §2.6): a read-only tree of objects served as JSON under
// /looking-glass, with the upstream rendering rules. An object renders as a
// dict of its local information plus one entry per sub-path; sub-paths that
// are delegated objects, subtrees or collections render as
// {"href": "<absolute URL>"} and are only computed when queried; values and
// items are inlined. A collection renders as a list of
// {"id": ..., <extra fields>, "href": ...}. Path segments past the objects
// index into the JSON (dict keys, list positions).
//
// The daemon builds the tree from its providers (summary, config, logs,
// bgp, vpns); this package knows nothing about them.
package lg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Base is the URL path under which the looking glass is served.
const Base = "/looking-glass"

// Ref locates a looking-glass object for a request: it builds the absolute
// hrefs that objects put in their output.
type Ref struct {
	// Root is the absolute URL of the looking-glass root,
	// "http://<Host>/looking-glass".
	Root string
	// Path is the object's path below Root (unescaped segments).
	Path []string
}

// URL is the absolute URL of the object.
func (r Ref) URL() string { return joinURL(r.Root, r.Path) }

// Child is the Ref of the sub-path seg of this object.
func (r Ref) Child(seg string) Ref {
	p := make([]string, len(r.Path), len(r.Path)+1)
	copy(p, r.Path)
	return Ref{Root: r.Root, Path: append(p, seg)}
}

// Href is the absolute URL of a path from the looking-glass root, for
// cross-references (upstream get_absolute_path), e.g.
// ref.Href("vpns", "instances", id).
func (r Ref) Href(path ...string) string { return joinURL(r.Root, path) }

// HrefObject is {"href": ref.Href(path...)}, the upstream link form.
func (r Ref) HrefObject(path ...string) map[string]any {
	return map[string]any{"href": r.Href(path...)}
}

func joinURL(root string, path []string) string {
	var b strings.Builder
	b.WriteString(root)
	for _, s := range path {
		b.WriteByte('/')
		b.WriteString(Quote(s))
	}
	return b.String()
}

// Quote percent-encodes a path segment like Python's urllib.parse.quote
// with its default safe characters: letters, digits, "_.-~" and "/" are
// kept, every other byte becomes %XX (upper-case hex).
func Quote(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '.' || c == '-' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Node is a looking-glass object.
type Node interface {
	// Local returns the object's own information (nil is an empty dict).
	// ref locates the object, for the hrefs it may contain.
	Local(ctx context.Context, ref Ref) (map[string]any, error)
	// Entries returns the object's named sub-paths (its upstream lg_map).
	Entries() map[string]Entry
}

// Item is one element of a collection listing.
type Item struct {
	// ID is the element's path segment, rendered as "id".
	ID string
	// Extra fields rendered next to "id" and "href" (e.g. state, name).
	Extra map[string]any
}

// Collection is a set of looking-glass objects addressed by id.
type Collection interface {
	// List returns the elements, in display order.
	List(ctx context.Context) ([]Item, error)
	// Get returns the element with this id, false if there is none.
	Get(ctx context.Context, id string) (Node, bool)
}

type kind uint8

const (
	kindValue kind = iota + 1
	kindItem
	kindSubtree
	kindDelegate
	kindCollection
)

// Entry is one sub-path of a Node. Build it with Value, Item, Subtree,
// Delegate or Coll.
type Entry struct {
	kind  kind
	value any
	fn    func(ctx context.Context, ref Ref) (any, error)
	node  Node
	coll  Collection
}

// ValueEntry is a constant, inlined in the parent (upstream VALUE).
func ValueEntry(v any) Entry { return Entry{kind: kindValue, value: v} }

// ItemEntry is computed and inlined in the parent (upstream SUBITEM).
func ItemEntry(f func(ctx context.Context, ref Ref) (any, error)) Entry {
	return Entry{kind: kindItem, fn: f}
}

// SubtreeEntry is computed only when its path is queried; the parent shows
// an href (upstream SUBTREE).
func SubtreeEntry(f func(ctx context.Context, ref Ref) (any, error)) Entry {
	return Entry{kind: kindSubtree, fn: f}
}

// DelegateEntry is another object; the parent shows an href (upstream
// DELEGATE).
func DelegateEntry(n Node) Entry { return Entry{kind: kindDelegate, node: n} }

// CollectionEntry is a collection; the parent shows an href, the path
// lists the elements, and path/<id> is the element (upstream COLLECTION).
func CollectionEntry(c Collection) Entry { return Entry{kind: kindCollection, coll: c} }

// Object is a Node built from a function and a fixed entry map.
type Object struct {
	// LocalFunc returns the local information; nil means none.
	LocalFunc func(ctx context.Context, ref Ref) (map[string]any, error)
	// Map is the object's sub-paths.
	Map map[string]Entry
}

// Local implements Node.
func (o *Object) Local(ctx context.Context, ref Ref) (map[string]any, error) {
	if o.LocalFunc == nil {
		return nil, nil
	}
	return o.LocalFunc(ctx, ref)
}

// Entries implements Node.
func (o *Object) Entries() map[string]Entry { return o.Map }

// Funcs is a Collection built from two functions.
type Funcs struct {
	// ListFunc implements List.
	ListFunc func(ctx context.Context) ([]Item, error)
	// GetFunc implements Get.
	GetFunc func(ctx context.Context, id string) (Node, bool)
}

// List implements Collection.
func (f Funcs) List(ctx context.Context) ([]Item, error) { return f.ListFunc(ctx) }

// Get implements Collection.
func (f Funcs) Get(ctx context.Context, id string) (Node, bool) { return f.GetFunc(ctx, id) }

// NotFoundError is an unknown looking-glass path (404).
type NotFoundError struct {
	Segment string // the path segment that does not exist
	Prefix  string // absolute URL of the object it was looked up in
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("No such looking glass object: %s at %s", e.Segment, e.Prefix)
}

// Resolve renders the object at path below root (the upstream
// get_looking_glass_info). It returns a *NotFoundError for an unknown path
// and the provider's error if a provider fails.
func Resolve(ctx context.Context, root Node, ref Ref, path []string) (any, error) {
	if len(path) > 0 {
		if e, ok := root.Entries()[path[0]]; ok {
			sub := ref.Child(path[0])
			rest := path[1:]
			switch e.kind {
			case kindValue:
				return index(e.value, sub, rest)
			case kindItem, kindSubtree:
				v, err := e.fn(ctx, sub)
				if err != nil {
					return nil, err
				}
				return index(v, sub, rest)
			case kindDelegate:
				return Resolve(ctx, e.node, sub, rest)
			case kindCollection:
				if len(rest) == 0 {
					return listing(ctx, e.coll, sub)
				}
				n, ok := e.coll.Get(ctx, rest[0])
				if !ok || n == nil {
					return nil, &NotFoundError{Segment: rest[0], Prefix: sub.URL()}
				}
				return Resolve(ctx, n, sub.Child(rest[0]), rest[1:])
			}
		}
	}
	info, err := render(ctx, root, ref)
	if err != nil {
		return nil, err
	}
	return index(info, ref, path)
}

// render builds the full dict of an object.
func render(ctx context.Context, n Node, ref Ref) (map[string]any, error) {
	local, err := n.Local(ctx, ref)
	if err != nil {
		return nil, err
	}
	info := make(map[string]any, len(local)+len(n.Entries()))
	for k, v := range local {
		info[k] = v
	}
	for name, e := range n.Entries() {
		sub := ref.Child(name)
		switch e.kind {
		case kindValue:
			info[name] = e.value
		case kindItem:
			v, err := e.fn(ctx, sub)
			if err != nil {
				return nil, err
			}
			info[name] = v
		default:
			info[name] = map[string]any{"href": sub.URL()}
		}
	}
	return info, nil
}

func listing(ctx context.Context, c Collection, ref Ref) ([]map[string]any, error) {
	items, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		m := make(map[string]any, len(it.Extra)+2)
		for k, v := range it.Extra {
			m[k] = v
		}
		m["id"] = it.ID
		m["href"] = ref.Child(it.ID).URL()
		out = append(out, m)
	}
	return out, nil
}

// index follows path into v: dict keys, list positions (decimal). Values
// that are not plain JSON trees (structs, typed slices) are converted
// through JSON first.
func index(v any, ref Ref, path []string) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	g, err := generic(v)
	if err != nil {
		return nil, err
	}
	for _, seg := range path {
		switch c := g.(type) {
		case map[string]any:
			next, ok := c[seg]
			if !ok {
				return nil, &NotFoundError{Segment: seg, Prefix: ref.URL()}
			}
			g = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) || seg != strconv.Itoa(i) {
				return nil, &NotFoundError{Segment: seg, Prefix: ref.URL()}
			}
			g = c[i]
		default:
			return nil, &NotFoundError{Segment: seg, Prefix: ref.URL()}
		}
		ref = ref.Child(seg)
		if g, err = generic(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// generic converts v to map[string]any / []any / scalars when it is a
// container of another type.
func generic(v any) (any, error) {
	switch v.(type) {
	case nil, map[string]any, []any, string, bool, float64, json.Number:
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("looking glass value of type %T cannot be rendered as JSON: %w", v, err)
	}
	var g any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if err := d.Decode(&g); err != nil {
		return nil, fmt.Errorf("looking glass value of type %T cannot be re-read as JSON: %w", v, err)
	}
	return g, nil
}

// Tree serves a looking-glass tree under Base.
type Tree struct {
	root Node
	log  *slog.Logger
}

// NewTree returns a Tree serving root at /looking-glass.
func NewTree(root Node) *Tree {
	return &Tree{root: root, log: slog.Default().With("component", "looking-glass")}
}

// SetLogger sets the logger used for provider errors (a "component"
// attribute is added).
func (t *Tree) SetLogger(l *slog.Logger) { t.log = l.With("component", "looking-glass") }

// ServeHTTP answers GET (and HEAD) requests for /looking-glass[/...]; other
// methods get 405, unknown paths 404, provider failures 500 "Server error".
func (t *Tree) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		WriteError(w, r, http.StatusMethodNotAllowed,
			fmt.Sprintf("The method %s is not allowed for this resource.", r.Method))
		return
	}
	p := StripExt(r.URL.Path)
	rest, ok := strings.CutPrefix(p, Base)
	if !ok || rest != "" && rest[0] != '/' {
		WriteError(w, r, http.StatusNotFound, "The resource could not be found.")
		return
	}
	var path []string
	for _, s := range strings.Split(rest, "/") {
		if s != "" {
			path = append(path, s)
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	ref := Ref{Root: scheme + "://" + r.Host + Base}
	v, err := Resolve(r.Context(), t.root, ref, path)
	var body []byte
	if err == nil {
		body, err = json.Marshal(v)
	}
	if err != nil {
		var nf *NotFoundError
		if errors.As(err, &nf) {
			t.log.Info("looking glass: unknown object", "path", r.URL.Path, "error", nf.Error())
			WriteError(w, r, http.StatusNotFound, nf.Error())
			return
		}
		t.log.Error("looking glass: provider failed", "path", r.URL.Path, "error", err)
		WriteError(w, r, http.StatusInternalServerError, "Server error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
