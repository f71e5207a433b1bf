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
//
// Turning IPv6 off on our devices only was measured again (Linux 6.18, a
// namespace with 1,000 IPv6-enabled veth ports, 300 instances created as
// the driver does: bridge, VXLAN device, one port): p50 550-670 µs per
// instance with addr_gen_mode none on both devices, with disable_ipv6 = 1
// written on the bridge only, and on both, before they go up. The sysctl
// write (40-70 µs: addrconf_ifdown walks the FIB) costs what it saves when
// the device goes up. There is no cheaper way to set it: the kernel
// answers EINVAL to IFLA_AF_SPEC/AF_INET6/IFLA_INET6_CONF in RTM_SETLINK
// (only the token and addr_gen_mode are settable) and EAFNOSUPPORT to an
// AF_INET6 IFLA_AF_SPEC in RTM_NEWLINK, so the mode cannot be given at
// creation either. And the VXLAN device must keep IPv6: the ND proxy
// entries of remote IPv6 addresses are AF_INET6 neighbours on it, which
// the kernel refuses (EINVAL) when its disable_ipv6 is 1
// (TestNoIPv6Addresses adds one). The bridge holds no neighbour, but
// turning IPv6 off there alone gains nothing measurable either.
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
