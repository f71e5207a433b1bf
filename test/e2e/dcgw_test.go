package e2e

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/bagpipe-go/bagpipe/internal/lab"
)

// The DC gateway is the test's stand-in for third-party equipment: a
// namespace on the lab underlay that terminates the IP VPN's VXLAN
// tunnels and routes to a "DC host" namespace behind it. It is built with
// the same kernel recipe as our linux IP VPN driver (dataplanes.md §2,
// collect_md variant; internal/dataplane/linuxipvpn):
//
//   - a collect_md ("external") VXLAN device dcgwVX on the IP VPN port,
//     whose MAC is upstream bagpipe's GATEWAY_MAC: our driver sends
//     frames to that inner destination MAC, and a VXLAN device hands the
//     decapsulated frame to IP only if it is addressed to its own MAC;
//   - a macvlan dcgwTX on it with another MAC, for the way back: the
//     receiving node's VXLAN device also has GATEWAY_MAC and drops frames
//     whose source MAC is its own (vxlan_set_mac), so the gateway cannot
//     send from a device with that MAC;
//   - per route back, "ip route <prefix> encap ip id <label> dst <PE> via
//     <PE> dev dcgwTX onlink" (the lwtunnel gives the VNI and outer
//     destination per route) and a permanent neighbour PE → GATEWAY_MAC
//     on dcgwTX.
//
// It demultiplexes nothing by VNI: it has one VRF, its main table.
const (
	dcgwVX = "vx0"    // collect_md VXLAN device of the gateway
	dcgwTX = "vx0-tx" // macvlan on dcgwVX that routes back use
	dcgwIf = "dc0"    // the gateway's side of the veth to the DC host
)

// Inner MACs of the IP VPN's VXLAN frames.
var (
	// dcgwGatewayMAC is upstream bagpipe's GATEWAY_MAC, the inner
	// destination MAC of every frame our linux driver sends
	// (linuxipvpn.GatewayMAC).
	dcgwGatewayMAC = net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x43, 0x64}
	// dcgwNodeTXMAC is the inner source MAC of the frames our linux
	// driver sends (linuxipvpn.TXMAC).
	dcgwNodeTXMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x43, 0x64}
	// dcgwTXMAC is the gateway's inner source MAC: anything but
	// dcgwGatewayMAC.
	dcgwTXMAC = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0xc8, 0x00}
)

// dcGateway is a DC gateway of the lab and the DC host behind it.
type dcGateway struct {
	tp     *topo
	ns     string     // gateway namespace, plugged into the underlay
	hostNS string     // DC host namespace
	addr   netip.Addr // underlay address: the next hop it advertises
	host   netip.Addr // the DC host's address
}

// newDCGateway builds the gateway namespace prefix+"dcgw" with underlay
// address addr and a VXLAN endpoint on UDP port, and behind it the DC
// host namespace prefix+"dchost" holding host, on the subnet of side,
// the gateway's address on the veth between them. Both namespaces carry
// the lab's prefix and are deleted with the lab.
func (tp *topo) newDCGateway(addr netip.Addr, port int, side netip.Prefix, host netip.Addr) *dcGateway {
	t := tp.t
	t.Helper()
	g := &dcGateway{tp: tp, addr: addr, host: host, hostNS: tp.prefix + "dchost"}
	var err error
	if g.ns, err = tp.u.AddMachine("dcgw", addr); err != nil {
		t.Fatalf("e2e: DC gateway: %v", err)
	}
	if err := lab.AddNamespace(g.hostNS); err != nil {
		t.Fatalf("e2e: DC host: %v", err)
	}
	// A router that accepts traffic arriving on dcgwVX but routed back
	// through dcgwTX: strict (1) or loose (2) reverse-path filtering,
	// which a new namespace may inherit from the host, would drop it. The
	// default applies to the devices created below.
	if err := setSysctls(g.ns, map[string]string{
		"net/ipv4/ip_forward":             "1",
		"net/ipv4/conf/all/rp_filter":     "0",
		"net/ipv4/conf/default/rp_filter": "0",
	}); err != nil {
		t.Fatalf("e2e: DC gateway: %v", err)
	}
	hostSub := netip.PrefixFrom(host, side.Bits()).String()
	steps := [][]string{
		// The DC host: a veth, default route via the gateway.
		{"link", "add", dcgwIf, "netns", g.ns, "type", "veth", "peer", "name", "eth0", "netns", g.hostNS},
		{"-n", g.ns, "addr", "add", side.String(), "dev", dcgwIf},
		{"-n", g.ns, "link", "set", dcgwIf, "up"},
		{"-n", g.hostNS, "addr", "add", hostSub, "dev", "eth0"},
		{"-n", g.hostNS, "link", "set", "eth0", "up"},
		{"-n", g.hostNS, "route", "add", "default", "via", side.Addr().String()},
		// The VXLAN endpoint: receive on dcgwVX, send through dcgwTX.
		{"-n", g.ns, "link", "add", dcgwVX, "type", "vxlan", "external", "dstport", strconv.Itoa(port), "nolearning"},
		{"-n", g.ns, "link", "set", dcgwVX, "address", dcgwGatewayMAC.String(), "up"},
		{"-n", g.ns, "link", "add", dcgwTX, "link", dcgwVX, "type", "macvlan", "mode", "bridge"},
		{"-n", g.ns, "link", "set", dcgwTX, "address", dcgwTXMAC.String(), "up"},
	}
	for _, s := range steps {
		if err := lab.IP(s...); err != nil {
			t.Fatalf("e2e: building the DC gateway: %v", err)
		}
	}
	return g
}

// routeBack routes dst from the gateway into the VPN: VXLAN with VNI
// label to the PE pe, inner destination MAC dcgwGatewayMAC.
func (g *dcGateway) routeBack(dst netip.Prefix, label uint32, pe netip.Addr) {
	t := g.tp.t
	t.Helper()
	steps := [][]string{
		{"-n", g.ns, "neigh", "replace", pe.String(), "lladdr", dcgwGatewayMAC.String(), "dev", dcgwTX, "nud", "permanent"},
		{"-n", g.ns, "route", "replace", dst.String(), "encap", "ip", "id", strconv.FormatUint(uint64(label), 10),
			"dst", pe.String(), "via", pe.String(), "dev", dcgwTX, "onlink"},
	}
	for _, s := range steps {
		if err := lab.IP(s...); err != nil {
			t.Fatalf("e2e: DC gateway route back to %s: %v", dst, err)
		}
	}
}

// hostInEchos returns the ICMP echo requests the DC host received.
func (g *dcGateway) hostInEchos() int {
	t := g.tp.t
	t.Helper()
	out, err := lab.Command(g.hostNS, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("e2e: reading /proc/net/snmp in %s: %v", g.hostNS, err)
	}
	n, err := snmpCounter(string(out), "Icmp", "InEchos")
	if err != nil {
		t.Fatalf("e2e: %s: %v", g.hostNS, err)
	}
	return n
}

// inNamespace runs f on a locked OS thread switched into namespace ns:
// sockets and /proc/sys/net belong to the namespace of the thread that
// opens them. If the thread cannot return to its namespace it stays
// locked, and Go discards it with the goroutine.
func inNamespace(ns string, f func() error) error {
	target, err := netns.GetFromName(ns)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("reading the current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leaving namespace %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// setSysctls writes /proc/sys/<key> = value in namespace ns.
func setSysctls(ns string, kv map[string]string) error {
	return inNamespace(ns, func() error {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
				return fmt.Errorf("setting %s = %s in %s: %w", k, v, ns, err)
			}
		}
		return nil
	})
}

// capturedFrame is a VXLAN frame seen on the gateway's uplink.
type capturedFrame struct {
	Outgoing bool // sent by the gateway (PACKET_OUTGOING), else received
	vxlanFrame
}

// frameCapture is a packet socket (packet(7)) bound to one interface,
// queuing every frame it sends and receives until drained.
type frameCapture struct {
	fd   int
	what string
}

// captureUplink opens a capture on the gateway's underlay interface,
// closed at cleanup. Frames queue in the socket from now on: what the
// kernel delivered before a ping got its replies is in the queue when
// the ping returns, no waiting needed.
func (g *dcGateway) captureUplink() *frameCapture {
	t := g.tp.t
	t.Helper()
	c := &frameCapture{fd: -1, what: lab.UplinkName + " in " + g.ns}
	err := inNamespace(g.ns, func() error {
		ifi, err := net.InterfaceByName(lab.UplinkName)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("opening a packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("binding a packet socket to %s: %w", ifi.Name, err)
		}
		// Room for the underlay's other traffic (multicast, ARP).
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("e2e: capturing on %s: %v", c.what, err)
	}
	t.Cleanup(c.close)
	return c
}

// htons converts a 16-bit value to network byte order for packet(7).
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// close closes the socket (idempotent).
func (c *frameCapture) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}

// drain reads every queued frame without blocking, closes the capture and
// returns the VXLAN frames (others are skipped).
func (c *frameCapture) drain(t *testing.T) []capturedFrame {
	t.Helper()
	defer c.close()
	var out []capturedFrame
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return out
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("e2e: reading the capture on %s: %v", c.what, err)
		}
		f, err := parseVXLANFrame(buf[:n])
		if err != nil {
			continue
		}
		ll, _ := from.(*unix.SockaddrLinklayer)
		out = append(out, capturedFrame{Outgoing: ll != nil && ll.Pkttype == unix.PACKET_OUTGOING, vxlanFrame: f})
	}
}

// vxlanFrame is what the tests check of an Ethernet frame carrying
// IPv4/UDP/VXLAN (RFC 7348 §5) around an Ethernet frame carrying IPv4.
type vxlanFrame struct {
	OuterSrc, OuterDst netip.Addr
	DstPort            uint16
	VNI                uint32
	InnerDstMAC        string
	InnerSrcMAC        string
	InnerSrc, InnerDst netip.Addr
	ICMPType           int // -1 unless the inner packet is ICMP
}

// Ethernet and IP constants of parseVXLANFrame.
const (
	etherHeaderLen = 14     // destination, source, EtherType (IEEE 802.3)
	etherTypeIPv4  = 0x0800 // RFC 894
	udpHeaderLen   = 8      // RFC 768
	vxlanHeaderLen = 8      // RFC 7348 §5
	vxlanFlagI     = 0x08   // RFC 7348 §5: the VNI is valid
	protoICMP      = 1
	protoUDP       = 17
)

// parseVXLANFrame decodes an Ethernet frame as Ethernet/IPv4/UDP/VXLAN/
// Ethernet/IPv4 (RFC 7348 §5), with an error for anything else.
func parseVXLANFrame(b []byte) (vxlanFrame, error) {
	f := vxlanFrame{ICMPType: -1}
	outer, proto, err := parseEtherIPv4(b)
	if err != nil {
		return f, fmt.Errorf("outer: %w", err)
	}
	if proto != protoUDP {
		return f, fmt.Errorf("outer IP protocol %d, not UDP", proto)
	}
	f.OuterSrc, f.OuterDst = outer.src, outer.dst
	udp := outer.payload
	if len(udp) < udpHeaderLen+vxlanHeaderLen {
		return f, fmt.Errorf("UDP datagram of %d bytes: too short for VXLAN", len(udp))
	}
	f.DstPort = binary.BigEndian.Uint16(udp[2:4])
	vx := udp[udpHeaderLen:]
	if vx[0]&vxlanFlagI == 0 {
		return f, fmt.Errorf("VXLAN flags %#02x: I flag clear", vx[0])
	}
	f.VNI = uint32(vx[4])<<16 | uint32(vx[5])<<8 | uint32(vx[6])
	inner, proto, err := parseEtherIPv4(vx[vxlanHeaderLen:])
	if err != nil {
		return f, fmt.Errorf("inner: %w", err)
	}
	eth := vx[vxlanHeaderLen:]
	f.InnerDstMAC = net.HardwareAddr(eth[0:6]).String()
	f.InnerSrcMAC = net.HardwareAddr(eth[6:12]).String()
	f.InnerSrc, f.InnerDst = inner.src, inner.dst
	if proto == protoICMP && len(inner.payload) > 0 {
		f.ICMPType = int(inner.payload[0])
	}
	return f, nil
}

// ipv4Packet is a decoded IPv4 header (RFC 791 §3.1) and its payload.
type ipv4Packet struct {
	src, dst netip.Addr
	payload  []byte
}

// parseEtherIPv4 decodes an Ethernet frame carrying an unfragmented IPv4
// packet (RFC 791 §3.1), returning the packet and its protocol.
func parseEtherIPv4(b []byte) (ipv4Packet, byte, error) {
	var p ipv4Packet
	if len(b) < etherHeaderLen+20 {
		return p, 0, fmt.Errorf("frame of %d bytes: too short for Ethernet and IPv4", len(b))
	}
	if et := binary.BigEndian.Uint16(b[12:14]); et != etherTypeIPv4 {
		return p, 0, fmt.Errorf("EtherType %#04x, not IPv4", et)
	}
	ip := b[etherHeaderLen:]
	if v := ip[0] >> 4; v != 4 {
		return p, 0, fmt.Errorf("IP version %d", v)
	}
	hl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if hl < 20 || total < hl || total > len(ip) {
		return p, 0, fmt.Errorf("IPv4 header length %d, total length %d, %d bytes present", hl, total, len(ip))
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return p, 0, errors.New("IPv4 fragment")
	}
	p.src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
	p.payload = ip[hl:total]
	return p, ip[9], nil
}

// checkFlow requires at least n frames of frames in the direction and
// with the inner source, destination and ICMP type of want, and every
// such frame to equal want (VNI, port, outer addresses, inner MACs).
func checkFlow(frames []capturedFrame, outgoing bool, want vxlanFrame, n int) error {
	dir := "received"
	if outgoing {
		dir = "sent"
	}
	var got int
	var errs []error
	for _, f := range frames {
		if f.Outgoing != outgoing || f.InnerSrc != want.InnerSrc || f.InnerDst != want.InnerDst || f.ICMPType != want.ICMPType {
			continue
		}
		got++
		if f.vxlanFrame != want {
			errs = append(errs, fmt.Errorf("%s %+v, want %+v", dir, f.vxlanFrame, want))
		}
	}
	if got < n {
		errs = append(errs, fmt.Errorf("%d VXLAN frames %s with ICMP type %d from %s to %s, want at least %d (all VXLAN frames: %+v)",
			got, dir, want.ICMPType, want.InnerSrc, want.InnerDst, n, frames))
	}
	return errors.Join(errs...)
}

// dcgwRequestHex is an echo request from vmA1 to the DC host as the
// gateway receives it from node A.
const dcgwRequestHex = "" +
	"020000000" + "0c8" + "020000000001" + "0800" + // outer Ethernet: dst, src, IPv4
	"4500004e" + "00004000" + "40110000" + // IPv4: IHL 5, total 78; DF; TTL 64, UDP
	"0ac90001" + "0ac900c8" + // 10.201.0.1 → 10.201.0.200
	"c35012b6" + "003a0000" + // UDP: 50000 → 4790, length 58
	"08000000" + "00030900" + // VXLAN: flags I, VNI 777 (0x000309)
	"00005e004364" + "02005e004364" + "0800" + // inner Ethernet: GATEWAY_MAC ← TXMAC, IPv4
	"4500001c" + "00014000" + "3f010000" + // IPv4: total 28; DF; TTL 63, ICMP
	"0a01010a" + "1e030301" + // 10.1.1.10 → 30.3.3.1
	"08000000" + "00010001" // ICMP echo request, id 1, seq 1

// dcgwHex decodes a hex literal of the tests.
func dcgwHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex literal: %v", err)
	}
	return b
}

func TestParseVXLANFrame(t *testing.T) {
	request := vxlanFrame{
		OuterSrc: netip.MustParseAddr("10.201.0.1"), OuterDst: netip.MustParseAddr("10.201.0.200"),
		DstPort: 4790, VNI: 777, InnerDstMAC: "00:00:5e:00:43:64", InnerSrcMAC: "02:00:5e:00:43:64",
		InnerSrc: netip.MustParseAddr("10.1.1.10"), InnerDst: netip.MustParseAddr("30.3.3.1"), ICMPType: 8,
	}
	withOptions := request
	withOptions.VNI = 0xabcdef
	innerUDP := request
	innerUDP.ICMPType = -1
	tests := []struct {
		name    string
		hex     string
		want    vxlanFrame
		wantErr bool
	}{
		{name: "echo request", hex: dcgwRequestHex, want: request},
		{name: "outer IPv4 options", want: withOptions, hex: "" +
			"0200000000c8" + "020000000001" + "0800" +
			"46000052" + "00004000" + "40110000" + // IHL 6, total 82
			"0ac90001" + "0ac900c8" +
			"01010101" + // options: NOP ×4
			"c35012b6" + "003a0000" +
			"08000000" + "abcdef00" + // VNI 0xabcdef
			"00005e004364" + "02005e004364" + "0800" +
			"4500001c" + "00014000" + "3f010000" + "0a01010a" + "1e030301" +
			"08000000" + "00010001"},
		{name: "inner UDP", want: innerUDP, hex: dcgwRequestHex[:2*(14+20+8+8+14+9)] + "11" + // inner protocol UDP
			dcgwRequestHex[2*(14+20+8+8+14+10):]},
		{name: "ARP", wantErr: true, hex: "ffffffffffff" + "020000000001" + "0806" + // EtherType ARP
			"0001080006040001" + "020000000001" + "0ac90001" + "000000000000" + "0ac900c8"},
		{name: "outer TCP", wantErr: true, hex: dcgwRequestHex[:2*(14+9)] + "06" + dcgwRequestHex[2*(14+10):]},
		{name: "VXLAN I flag clear", wantErr: true, hex: dcgwRequestHex[:2*(14+20+8)] + "00" + dcgwRequestHex[2*(14+20+9):]},
		{name: "fragment", wantErr: true, hex: dcgwRequestHex[:2*(14+6)] + "2000" + dcgwRequestHex[2*(14+8):]}, // MF set
		{name: "total length beyond the frame", wantErr: true, hex: dcgwRequestHex[:2*(14+2)] + "0100" + dcgwRequestHex[2*(14+4):]},
		{name: "truncated in the VXLAN header", wantErr: true, hex: dcgwRequestHex[:2*(14+2)] + "0020" + dcgwRequestHex[2*(14+4):2*(14+20+8+4)]},
		{name: "inner ARP", wantErr: true, hex: dcgwRequestHex[:2*(14+20+8+8+12)] + "0806" + dcgwRequestHex[2*(14+20+8+8+14):]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVXLANFrame(dcgwHex(t, tt.hex))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseVXLANFrame: error %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("parseVXLANFrame:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestCheckFlow(t *testing.T) {
	req := vxlanFrame{
		OuterSrc: netip.MustParseAddr("10.201.0.1"), OuterDst: netip.MustParseAddr("10.201.0.200"),
		DstPort: 4790, VNI: 777, InnerDstMAC: "00:00:5e:00:43:64", InnerSrcMAC: "02:00:5e:00:43:64",
		InnerSrc: netip.MustParseAddr("10.1.1.10"), InnerDst: netip.MustParseAddr("30.3.3.1"), ICMPType: 8,
	}
	otherVNI := req
	otherVNI.VNI = 778
	otherPort := req
	otherPort.DstPort = 4789
	reply := req
	reply.InnerSrc, reply.InnerDst, reply.ICMPType = req.InnerDst, req.InnerSrc, 0
	in := func(fs ...vxlanFrame) []capturedFrame {
		var out []capturedFrame
		for _, f := range fs {
			out = append(out, capturedFrame{vxlanFrame: f})
		}
		return out
	}
	tests := []struct {
		name    string
		frames  []capturedFrame
		wantErr bool
	}{
		{"all as wanted", in(req, req, reply), false},
		{"too few", in(req, reply), true},
		{"one with another VNI", in(req, otherVNI, req), true},
		{"one on another port", in(req, req, otherPort), true},
		{"sent, not received", []capturedFrame{{true, req}, {true, req}}, true},
		{"none", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFlow(tt.frames, false, req, 2)
			if (err != nil) != tt.wantErr {
				t.Errorf("checkFlow: %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
