// Package cli holds the code shared by the command-line tools that talk to
// a running bagpipe-bgp: bagpipe-rest-attach (attach/detach a local port
// through the REST API, reference §8.3) and bagpipe-looking-glass (browse
// the looking glass, reference §8.4). It provides the HTTP client for the
// REST API, the lenient reading of [API] port from bgp.conf, the request
// body exactly as upstream's rest_attach.py builds it, the looking-glass
// pretty printer ported from upstream's looking_glass.py, and the creation
// of "netns" test ports (a network namespace linked to the host by a veth
// pair) with netlink.
//
// Both tools keep upstream's option names, defaults and output; the few
// deliberate differences (exit statuses, attract_traffic "to_rt", netns
// clean-up on detach) are listed in each tool's usage text.
package cli
