// Package netnsref resolves the network namespace references the dataplane
// drivers take in their options ("" for the current namespace, a name under
// /var/run/netns as `ip netns` makes them, or a path such as
// /proc/<pid>/ns/net), so every driver accepts the same forms.
package netnsref

import (
	"strings"

	"github.com/vishvananda/netns"
)

// Open returns a handle on the namespace ns refers to: a path when ns
// contains a "/", else a name under /var/run/netns. ns must not be "" (the
// current namespace needs no handle: callers use netlink.NewHandle). The
// caller closes the handle.
func Open(ns string) (netns.NsHandle, error) {
	if strings.Contains(ns, "/") {
		return netns.GetFromPath(ns)
	}
	return netns.GetFromName(ns)
}
