package linux

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/dataplane"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// TestAppendMsg checks the serialised requests byte by byte (little-endian
// host, as the CI machines).
func TestAppendMsg(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   neighOp
		seq  uint32
		ack  bool
		want []byte
	}{{
		name: "vxlan fdb replace",
		op: neighOp{msgType: unix.RTM_NEWNEIGH, flags: unix.NLM_F_CREATE | unix.NLM_F_REPLACE, family: unix.AF_BRIDGE,
			index: 7, state: netlink.NUD_PERMANENT, ntf: netlink.NTF_SELF,
			ip: netip.MustParseAddr("10.99.0.2"), mac: route.MAC{0x02, 0, 0, 0, 0x05, 0x01}, vni: 800},
		seq: 3, ack: true,
		want: []byte{
			0x38, 0x00, 0x00, 0x00, // nlmsg_len 56
			0x1c, 0x00, // RTM_NEWNEIGH (28)
			0x05, 0x05, // NLM_F_REQUEST|NLM_F_ACK|NLM_F_REPLACE|NLM_F_CREATE
			0x03, 0x00, 0x00, 0x00, // seq 3
			0x00, 0x00, 0x00, 0x00, // pid 0
			0x07, 0x00, 0x00, 0x00, // ndm_family AF_BRIDGE (7), pads
			0x07, 0x00, 0x00, 0x00, // ndm_ifindex 7
			0x80, 0x00, // ndm_state NUD_PERMANENT
			0x02, 0x00, // ndm_flags NTF_SELF, ndm_type 0
			0x08, 0x00, 0x01, 0x00, 10, 99, 0, 2, // NDA_DST 10.99.0.2
			0x0a, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, // NDA_LLADDR + 2 pad
			0x08, 0x00, 0x07, 0x00, 0x20, 0x03, 0x00, 0x00, // NDA_VNI 800
		},
	}, {
		name: "ipv6 neighbour delete",
		op: neighOp{msgType: unix.RTM_DELNEIGH, family: unix.AF_INET6, index: 0x0102, state: netlink.NUD_PERMANENT,
			ip: netip.MustParseAddr("2001:db8::5"), mac: route.MAC{0x02, 0, 0, 0, 0x06, 0x01}},
		seq: 0x01020304, ack: true,
		want: []byte{
			0x3c, 0x00, 0x00, 0x00, // nlmsg_len 60
			0x1d, 0x00, // RTM_DELNEIGH (29)
			0x05, 0x00, // NLM_F_REQUEST|NLM_F_ACK
			0x04, 0x03, 0x02, 0x01, // seq
			0x00, 0x00, 0x00, 0x00, // pid 0
			0x0a, 0x00, 0x00, 0x00, // AF_INET6 (10), pads
			0x02, 0x01, 0x00, 0x00, // ifindex 0x0102
			0x80, 0x00, // NUD_PERMANENT
			0x00, 0x00, // flags, type
			0x14, 0x00, 0x01, 0x00, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, // NDA_DST
			0x0a, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00, 0x06, 0x01, 0x00, 0x00, // NDA_LLADDR + 2 pad
		},
	}, {
		name: "flood append, no ack",
		op: neighOp{msgType: unix.RTM_NEWNEIGH, flags: unix.NLM_F_CREATE | unix.NLM_F_APPEND, family: unix.AF_BRIDGE,
			index: 9, state: netlink.NUD_PERMANENT, ntf: netlink.NTF_SELF, ip: netip.MustParseAddr("10.99.0.3"), vni: 1},
		seq: 1,
		want: []byte{
			0x38, 0x00, 0x00, 0x00, // nlmsg_len 56
			0x1c, 0x00, // RTM_NEWNEIGH
			0x01, 0x0c, // NLM_F_REQUEST|NLM_F_CREATE|NLM_F_APPEND, no NLM_F_ACK
			0x01, 0x00, 0x00, 0x00, // seq 1
			0x00, 0x00, 0x00, 0x00, // pid 0
			0x07, 0x00, 0x00, 0x00, // AF_BRIDGE, pads
			0x09, 0x00, 0x00, 0x00, // ifindex 9
			0x80, 0x00, // NUD_PERMANENT
			0x02, 0x00, // NTF_SELF, type 0
			0x08, 0x00, 0x01, 0x00, 10, 99, 0, 3, // NDA_DST 10.99.0.3
			0x0a, 0x00, 0x02, 0x00, 0, 0, 0, 0, 0, 0, 0x00, 0x00, // NDA_LLADDR 00:00:00:00:00:00 + 2 pad
			0x08, 0x00, 0x07, 0x00, 0x01, 0x00, 0x00, 0x00, // NDA_VNI 1
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := appendMsg(nil, &tc.op, tc.seq, tc.ack); !bytes.Equal(got, tc.want) {
				t.Errorf("appendMsg:\n got % x\nwant % x", got, tc.want)
			}
		})
	}
}

// TestApplyBatchPartialFailure: a change the kernel refuses in the middle
// of a batch is reported alone; the changes around it are programmed.
func TestApplyBatchPartialFailure(t *testing.T) {
	ns := newNS(t)
	d := newDriver(t, ns, Options{})
	e := newEVI(t, d, "partial", 980, "")
	bad := dataplane.EVIChange{Kind: dataplane.AddRemoteMAC, MAC: mac("02:00:00:00:0c:02"), VTEP: addr("2001:db8::1"), VNI: 980}
	err := e.Apply([]dataplane.EVIChange{addMAC("02:00:00:00:0c:01", "10.99.0.2", 980), bad, addMAC("02:00:00:00:0c:03", "10.99.0.3", 980)})
	if err == nil || !strings.Contains(err.Error(), "1 of 3") || !strings.Contains(err.Error(), "02:00:00:00:0c:02") {
		t.Errorf("Apply error = %v, want 1 of 3 naming 02:00:00:00:0c:02", err)
	}
	got := vxlanFDB(t, ns, e.vxName)
	if len(got) != 2 || got[0].mac != "02:00:00:00:0c:01" || got[1].mac != "02:00:00:00:0c:03" {
		t.Errorf("fdb = %v, want the two good entries", got)
	}
	// More changes than one batch; deleting entries already gone succeeds.
	var changes []dataplane.EVIChange
	for i := range batchMax + 10 {
		m := route.MAC{0x02, 0xcc, 0, 0, byte(i >> 8), byte(i)}
		changes = append(changes, dataplane.EVIChange{Kind: dataplane.RemoveRemoteMAC, MAC: m, VTEP: addr("10.99.0.4"), VNI: 980})
	}
	if err := e.Apply(changes); err != nil {
		t.Errorf("removing %d absent entries: %v", len(changes), err)
	}
}

// TestAppendLinkMsg checks RTM_SETLINK requests byte by byte.
func TestAppendLinkMsg(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   linkOp
		want []byte
	}{{
		name: "alias and master",
		op:   linkOp{index: 5, master: 3, alias: "ab"},
		want: []byte{
			0x30, 0x00, 0x00, 0x00, // nlmsg_len 48
			0x13, 0x00, // RTM_SETLINK (19)
			0x01, 0x00, // NLM_F_REQUEST
			0x02, 0x00, 0x00, 0x00, // seq 2
			0x00, 0x00, 0x00, 0x00, // pid
			0x00, 0x00, 0x00, 0x00, // AF_UNSPEC, pad, type 0
			0x05, 0x00, 0x00, 0x00, // ifi_index 5
			0x00, 0x00, 0x00, 0x00, // ifi_flags
			0x00, 0x00, 0x00, 0x00, // ifi_change
			0x08, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x00, 0x00, // IFLA_MASTER 3
			0x06, 0x00, 0x14, 0x00, 'a', 'b', 0x00, 0x00, // IFLA_IFALIAS "ab" + 2 pad
		},
	}, {
		name: "up",
		op:   linkOp{index: 5, up: true},
		want: []byte{
			0x20, 0x00, 0x00, 0x00, // nlmsg_len 32
			0x13, 0x00, 0x01, 0x00, // RTM_SETLINK, NLM_F_REQUEST
			0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2, pid
			0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, // family, index 5
			0x01, 0x00, 0x00, 0x00, // ifi_flags IFF_UP
			0x01, 0x00, 0x00, 0x00, // ifi_change IFF_UP
		},
	}, {
		name: "addr_gen_mode none",
		op:   linkOp{index: 5, noIPv6Addr: true},
		want: []byte{
			0x30, 0x00, 0x00, 0x00, // nlmsg_len 48
			0x13, 0x00, 0x01, 0x00, // RTM_SETLINK, NLM_F_REQUEST
			0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // seq 2, pid
			0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, // family, index 5
			0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // flags, change
			0x10, 0x00, 0x1a, 0x00, // IFLA_AF_SPEC (26), 16 bytes
			0x0c, 0x00, 0x0a, 0x00, // AF_INET6 (10), 12 bytes
			0x05, 0x00, 0x08, 0x00, 0x01, 0x00, 0x00, 0x00, // IFLA_INET6_ADDR_GEN_MODE (8) = none (1) + pad
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := appendLinkMsg(nil, &tc.op, 2, false); !bytes.Equal(got, tc.want) {
				t.Errorf("appendLinkMsg:\n got % x\nwant % x", got, tc.want)
			}
		})
	}
}
