// Package scale is the engine of bagpipe-scale: it measures any daemon that
// speaks upstream bagpipe-bgp's REST API and bgp.conf (ours, or the upstream
// Python one) at scale.
//
// Each daemon runs in a network namespace created for it (Namespace), with
// a generated bgp.conf whose local_address is the namespace side of a veth
// pair. bagpipe-scale itself is the daemon's BGP peer (RR, built on
// internal/session and internal/codec): it injects E-VPN type-2 routes
// (RFC 7432 §7.2), or VPNv4 routes (RFC 4364 §4.3.4) into IP VPN VRFs, as a
// route reflector would (kernel state: fdb entries counted by FDBWatch,
// VRF table routes by RouteWatch), and reflects UPDATEs between
// two daemons for the convergence scenario. Scenarios (Ingest, Attach,
// Convergence, Idle) return a Result, written as JSON and rendered as
// markdown by Markdown with the project's Targets marked met or missed.
//
// Everything needs root and iproute2; namespaces and processes are removed
// (processes killed by PID) when a scenario ends.
package scale
