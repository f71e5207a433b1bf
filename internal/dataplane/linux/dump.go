package linux

import (
	"encoding/binary"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The reconcile dumps the fdb and the neighbour tables every
// ReconcileInterval: a million entries each at bagpipe-scale's largest
// ingest. Decoded with netlink.NeighDeserialize every entry cost a
// netlink.Neigh, its attribute slice and byte slices, all garbage: a
// round at 700k routes grew the heap mapped by the daemon from 176 to
// 418 MB (runtime MemStats Sys, bagpipe-scale ingest --driver linux
// --rate 25000). parseNeigh decodes the fields the reconcile uses in
// place, without allocating.

// ndEntry is the part of a dumped RTM_NEWNEIGH message the reconcile
// uses. lladdr aliases the message.
type ndEntry struct {
	index  int    // ndm_ifindex
	state  uint16 // ndm_state (NUD_*)
	flags  uint8  // ndm_flags (NTF_*)
	dst    netip.Addr
	lladdr []byte // NDA_LLADDR
	vni    uint32 // NDA_VNI, 0 if absent
	master bool   // NDA_MASTER present and non-zero
}

// sizeofNdmsg is the length of struct ndmsg (rtnetlink(7)): family u8,
// pad u8, pad u16, ifindex s32, state u16, flags u8, type u8.
const sizeofNdmsg = 12

// parseNeigh decodes the payload of an RTM_NEWNEIGH message (the struct
// ndmsg and its route attributes, rtnetlink(7),
// include/uapi/linux/neighbour.h); ok is false if it is truncated.
func parseNeigh(m []byte) (e ndEntry, ok bool) {
	if len(m) < sizeofNdmsg {
		return e, false
	}
	ne := binary.NativeEndian
	e.index = int(int32(ne.Uint32(m[4:8])))
	e.state = ne.Uint16(m[8:10])
	e.flags = m[10]
	for a := m[sizeofNdmsg:]; len(a) >= unix.SizeofRtAttr; {
		l := int(ne.Uint16(a[0:2]))
		if l < unix.SizeofRtAttr || l > len(a) {
			return e, false
		}
		v := a[unix.SizeofRtAttr:l]
		switch ne.Uint16(a[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER) {
		case netlink.NDA_DST:
			if ip, ok := netip.AddrFromSlice(v); ok {
				e.dst = ip.Unmap()
			}
		case netlink.NDA_LLADDR:
			e.lladdr = v
		case netlink.NDA_VNI:
			if len(v) >= 4 {
				e.vni = ne.Uint32(v)
			}
		case netlink.NDA_MASTER:
			if len(v) >= 4 {
				e.master = ne.Uint32(v) != 0
			}
		}
		next := (l + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1)
		if next >= len(a) {
			break
		}
		a = a[next:]
	}
	return e, true
}
