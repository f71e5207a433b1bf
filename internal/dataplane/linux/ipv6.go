package linux

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Our bridges and VXLAN devices are layer 2 only: the driver sets
// addr_gen_mode none (IN6_ADDR_GEN_MODE_NONE) on them before it sets them
// up, so they get no IPv6 link-local address and send no DAD probes, MLD
// reports or router solicitations, which the bridge would flood to every
// port. IPv6 itself stays on: the kernel refuses IPv6 neighbours (our ND
// proxy entries) on a device where it is disabled.
//
// Measured (BenchmarkEVIPerPort, 1,000 instances of one port each, Linux
// 6.18, 2 vCPUs), an attach (NewEVI + Plug) takes 2.6 ms (p50) with IPv6
// fully on, 2.1-2.2 ms with addr_gen_mode none, 2.1 ms with disable_ipv6
// written on both devices before they go up (the write itself walks the
// whole IPv6 FIB: rt6_sync_down_dev), and 0.7-0.8 ms when the namespace
// creates interfaces with IPv6 disabled (net.ipv6.conf.default.disable_ipv6
// = 1, an operator's choice, not the driver's): every IPv6 interface adds
// an ff00::/8 route to the namespace's table, and adding or removing one
// walks the others.
const in6AddrGenModeNone = 1

// noIPv6Result logs the failure of setting addr_gen_mode none on one of
// our interfaces (a linkOp with noIPv6Addr). A kernel without IPv6 has
// nothing to set; another failure is logged, not returned: the interface
// works all the same.
func (e *evi) noIPv6Result(name string, err error) {
	if err != nil && !errors.Is(err, unix.EAFNOSUPPORT) && !errors.Is(err, unix.EOPNOTSUPP) {
		e.log.Warn("could not turn off IPv6 addresses on an interface of ours (it works, but floods IPv6 control traffic to the bridge)", "interface", name, "err", err)
	}
}
