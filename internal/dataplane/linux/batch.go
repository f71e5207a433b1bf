package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Apply programs remote entries in batches: the netlink requests of up to
// batchMax changes go to the kernel in one sendmsg, and their errors are
// read back together (netlink_rcv_skb processes the messages of one skb in
// order, so the order of the changes is kept). One request per change through netlink.Handle cost a sendmsg
// and a recvmsg per entry plus the library's per-request allocations:
// during the withdraw of 1M routes, 42% of the daemon's CPU was
// netlink.Handle.NeighDel, two thirds of it outside the kernel's own work.
//
// Message layout (rtnetlink(7), include/uapi/linux/neighbour.h):
//
//	nlmsghdr   len u32, type u16, flags u16, seq u32, pid u32   16 bytes
//	ndmsg      family u8, pad u8, pad u16, ifindex s32,
//	           state u16, flags u8, type u8                     12 bytes
//	NDA_DST    rtattr (len u16, type u16) + 4 or 16 bytes
//	NDA_LLADDR rtattr + 6 bytes + 2 bytes padding
//	NDA_VNI    rtattr + u32 (VXLAN fdb entries with a VNI)

// batchMax bounds the requests of one sendmsg (~60 bytes each): their
// acknowledgements must fit the socket's receive buffer, which counts
// each one's skb (several hundred bytes), not its 36 bytes; the socket
// gets batchRcvBuf (SO_RCVBUFFORCE) and NETLINK_CAP_ACK (errors do not
// echo the request).
const (
	batchMax    = 512
	batchRcvBuf = 4 << 20
)

// neighOp is one neighbour or fdb request of a batch.
type neighOp struct {
	msgType    uint16 // RTM_NEWNEIGH or RTM_DELNEIGH
	flags      uint16 // NLM_F_CREATE|NLM_F_REPLACE or NLM_F_APPEND, 0 for deletes
	family     uint8
	index      int32
	state      uint16
	ntf        uint8
	ip         netip.Addr
	mac        route.MAC
	vni        uint32
	notFoundOK bool // a delete of an entry already gone succeeds
	change     int  // index of the change in the Apply call
}

// fdbOp is the request for a VXLAN fdb entry ("bridge fdb … dev vxlan dst
// VTEP vni VNI self permanent", as remoteFDB).
func (e *evi) fdbOp(msgType, flags uint16, mac route.MAC, d dest) neighOp {
	return neighOp{msgType: msgType, flags: flags, family: unix.AF_BRIDGE, index: int32(e.vxIndex),
		state: netlink.NUD_PERMANENT, ntf: netlink.NTF_SELF, ip: d.vtep, mac: mac, vni: d.vni,
		notFoundOK: msgType == unix.RTM_DELNEIGH}
}

// neighOpFor is the request for a permanent neighbour on the VXLAN device
// (as remoteNeigh).
func (e *evi) neighOpFor(msgType, flags uint16, ip netip.Addr, mac route.MAC) neighOp {
	fam := uint8(unix.AF_INET)
	if ip.Is6() {
		fam = unix.AF_INET6
	}
	return neighOp{msgType: msgType, flags: flags, family: fam, index: int32(e.vxIndex),
		state: netlink.NUD_PERMANENT, ip: ip, mac: mac, notFoundOK: msgType == unix.RTM_DELNEIGH}
}

// appendMsg serialises op with sequence number seq, asking for an
// acknowledgement if ack (the kernel reports errors in any case).
func appendMsg(b []byte, op *neighOp, seq uint32, ack bool) []byte {
	ne := binary.NativeEndian
	start := len(b)
	flags := unix.NLM_F_REQUEST | op.flags
	if ack {
		flags |= unix.NLM_F_ACK
	}
	b = ne.AppendUint32(b, 0) // length, set below
	b = ne.AppendUint16(b, op.msgType)
	b = ne.AppendUint16(b, uint16(flags))
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0) // pid: the kernel
	b = append(b, op.family, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(op.index))
	b = ne.AppendUint16(b, op.state)
	b = append(b, op.ntf, 0)
	b = appendAttr(b, netlink.NDA_DST, op.ip.AsSlice())
	b = appendAttr(b, netlink.NDA_LLADDR, op.mac[:])
	if op.vni != 0 {
		b = appendAttr(b, netlink.NDA_VNI, ne.AppendUint32(nil, op.vni))
	}
	ne.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// batcher sends batches on its own netlink socket (one batch at a time).
type batcher struct {
	mu   sync.Mutex
	sock *nl.NetlinkSocket
	seq  uint32
	buf  []byte
}

// run sends ops in batches of batchMax and returns the error of each op
// (nil for success), in the order of ops.
func (bt *batcher) run(ops []neighOp) []error {
	errs := make([]error, len(ops))
	bt.mu.Lock()
	defer bt.mu.Unlock()
	for start := 0; start < len(ops); start += batchMax {
		end := min(start+batchMax, len(ops))
		if err := bt.runOne(ops[start:end], errs[start:end]); err != nil {
			for i := start; i < end; i++ {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}
	return errs
}

// errNoAck marks a request whose outcome is unknown (reading the
// socket failed).
var errNoAck = errors.New("no netlink acknowledgement")

// runOne sends one batch of neighbour requests and reads its errors into
// errs.
func (bt *batcher) runOne(ops []neighOp, errs []error) error {
	return bt.send(len(ops), func(b []byte, i int, seq uint32, ack bool) []byte {
		return appendMsg(b, &ops[i], seq, ack)
	}, func(i int) bool { return ops[i].notFoundOK }, errs)
}

// rawMsg serialises one request of a mixed batch (runRaw).
type rawMsg struct {
	build      func(b []byte, seq uint32, ack bool) []byte
	notFoundOK bool
}

// runRaw sends a few requests of any kind in one sendmsg and returns the
// error of each (nil for success).
func (bt *batcher) runRaw(msgs ...rawMsg) []error {
	errs := make([]error, len(msgs))
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if err := bt.send(len(msgs), func(b []byte, i int, seq uint32, ack bool) []byte {
		return msgs[i].build(b, seq, ack)
	}, func(i int) bool { return msgs[i].notFoundOK }, errs); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	return errs
}

// send sends n requests (serialised by build) in one sendmsg and reads
// their errors into errs. Only the last request asks for an
// acknowledgement: the kernel processes the requests of one sendmsg in
// order, in the sender's context, and reports every failure (NLMSG_ERROR
// with a non-zero code) whatever NLM_F_ACK says, so when the last
// acknowledgement arrives every error is in; a recvmsg per request was a
// third of the CPU of a 1M-route withdraw. Called with bt.mu held.
func (bt *batcher) send(n int, build func(b []byte, i int, seq uint32, ack bool) []byte, notFoundOK func(i int) bool, errs []error) error {
	first := bt.seq + 1
	last := first + uint32(n) - 1
	bt.buf = bt.buf[:0]
	for i := range n {
		bt.seq++
		bt.buf = build(bt.buf, i, bt.seq, bt.seq == last)
	}
	clear(errs)
	fd := bt.sock.GetFd()
	if err := unix.Sendto(fd, bt.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sending %d netlink requests: %w", n, err)
	}
	for {
		msgs, from, err := bt.sock.Receive()
		if err != nil {
			for i := range errs {
				if errs[i] == nil {
					errs[i] = errNoAck
				}
			}
			return fmt.Errorf("reading the errors of %d netlink requests: %w", n, err)
		}
		if from.Pid != nl.PidKernel {
			continue
		}
		done := false
		for _, m := range msgs {
			if m.Header.Type != unix.NLMSG_ERROR || m.Header.Seq < first || m.Header.Seq > last || len(m.Data) < 4 {
				continue // a late message of an earlier batch
			}
			i := int(m.Header.Seq - first)
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				err := syscall.Errno(-code)
				if !(notFoundOK(i) && (err == unix.ENOENT || err == unix.ESRCH)) {
					errs[i] = err
				}
			}
			done = done || m.Header.Seq == last
		}
		if done {
			return nil
		}
	}
}

// linkOp is an RTM_SETLINK request on an existing interface (rtnetlink(7)):
//
//	nlmsghdr     16 bytes
//	ifinfomsg    family u8, pad u8, type u16, index s32,
//	             flags u32, change u32                    16 bytes
//	IFLA_MASTER  u32                       (master > 0)
//	IFLA_IFALIAS string, no NUL            (alias != "")
//	IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE u8 } } (noIPv6Addr)
type linkOp struct {
	index      int32
	up         bool
	master     int32
	alias      string
	noIPv6Addr bool
}

// appendLinkMsg serialises op with sequence number seq.
func appendLinkMsg(b []byte, op *linkOp, seq uint32, ack bool) []byte {
	ne := binary.NativeEndian
	start := len(b)
	flags := unix.NLM_F_REQUEST
	if ack {
		flags |= unix.NLM_F_ACK
	}
	b = ne.AppendUint32(b, 0) // length, set below
	b = ne.AppendUint16(b, unix.RTM_SETLINK)
	b = ne.AppendUint16(b, uint16(flags))
	b = ne.AppendUint32(b, seq)
	b = ne.AppendUint32(b, 0)
	b = append(b, unix.AF_UNSPEC, 0, 0, 0)
	b = ne.AppendUint32(b, uint32(op.index))
	var ifFlags uint32
	if op.up {
		ifFlags = unix.IFF_UP
	}
	b = ne.AppendUint32(b, ifFlags) // ifi_flags
	b = ne.AppendUint32(b, ifFlags) // ifi_change
	if op.master > 0 {
		b = appendAttr(b, unix.IFLA_MASTER, ne.AppendUint32(nil, uint32(op.master)))
	}
	if op.alias != "" {
		b = appendAttr(b, unix.IFLA_IFALIAS, []byte(op.alias))
	}
	if op.noIPv6Addr {
		mode := appendAttr(nil, unix.IFLA_INET6_ADDR_GEN_MODE, []byte{in6AddrGenModeNone})
		b = appendAttr(b, unix.IFLA_AF_SPEC, appendAttr(nil, unix.AF_INET6, mode))
	}
	ne.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendAttr appends an rtattr (length, type, data, padding to 4 bytes).
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	ne := binary.NativeEndian
	b = ne.AppendUint16(b, uint16(4+len(data)))
	b = ne.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// linkMsg is a rawMsg for a linkOp.
func linkMsg(op linkOp) rawMsg {
	return rawMsg{build: func(b []byte, seq uint32, ack bool) []byte { return appendLinkMsg(b, &op, seq, ack) }}
}

// neighMsg is a rawMsg for a neighOp.
func neighMsg(op neighOp) rawMsg {
	return rawMsg{build: func(b []byte, seq uint32, ack bool) []byte { return appendMsg(b, &op, seq, ack) }, notFoundOK: op.notFoundOK}
}

// openBatcher opens the batch socket in the driver's namespace.
func openBatcher(ns string) (*batcher, error) {
	s, err := openNetlinkSocket(ns)
	if err != nil {
		return nil, fmt.Errorf("opening the batch netlink socket: %w", err)
	}
	if err := s.SetReceiveBufferSize(batchRcvBuf, true); err != nil {
		s.Close()
		return nil, fmt.Errorf("sizing the batch netlink socket's receive buffer (needs CAP_NET_ADMIN): %w", err)
	}
	if err := unix.SetsockoptInt(s.GetFd(), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1); err != nil {
		s.Close()
		return nil, fmt.Errorf("setting NETLINK_CAP_ACK on the batch netlink socket: %w", err)
	}
	return &batcher{sock: s}, nil
}
