package session

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

var (
	localID = netip.MustParseAddr("192.0.2.1")
	peerID  = netip.MustParseAddr("192.0.2.2")
)

// testConfig is an iBGP AS 64512 session with a fixed jitter of 1.25.
func testConfig() Config {
	return Config{
		LocalAS:  64512,
		RouterID: localID,
		Jitter:   func() float64 { return 1.25 },
	}
}

func newTestFSM(t *testing.T, mod func(*Config)) *FSM {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	f, err := NewFSM(cfg)
	if err != nil {
		t.Fatalf("NewFSM: %v", err)
	}
	return f
}

// openOpts describes a peer OPEN; zero values mean a well-behaved iBGP peer
// announcing every family, route refresh and 4-octet AS.
type openOpts struct {
	version  uint8
	as2      uint16
	as4      uint32 // 0: same as the 2-byte AS
	noAS4    bool
	noRR     bool
	hold     uint16
	holdSet  bool
	id       string
	families []route.Family
	extra    []bgp.OptionParameterInterface
}

// peerOpen builds the peer's OPEN through the wire (serialize and parse with
// gobgp), as the driver would deliver it.
func peerOpen(t *testing.T, o openOpts) OpenReceived {
	t.Helper()
	if o.as2 == 0 {
		o.as2 = 64512
	}
	if !o.holdSet {
		o.hold = 180
	}
	if o.id == "" {
		o.id = peerID.String()
	}
	if o.families == nil {
		o.families = route.Families
	}
	var caps []bgp.ParameterCapabilityInterface
	for _, f := range o.families {
		caps = append(caps, bgp.NewCapMultiProtocol(bgp.NewFamily(f.AFI(), f.SAFI())))
	}
	if !o.noRR {
		caps = append(caps, bgp.NewCapRouteRefresh())
	}
	if !o.noAS4 {
		as4 := o.as4
		if as4 == 0 {
			as4 = uint32(o.as2)
		}
		caps = append(caps, bgp.NewCapFourOctetASNumber(as4))
	}
	params := append([]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)}, o.extra...)
	m, err := bgp.NewBGPOpenMessage(o.as2, o.hold, netip.MustParseAddr(o.id), params)
	if err != nil {
		t.Fatal(err)
	}
	if o.version != 0 {
		m.Body.(*bgp.BGPOpen).Version = o.version
	}
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	ev := decodeMessage(b)
	open, ok := ev.(OpenReceived)
	if !ok {
		t.Fatalf("peer OPEN decodes to %#v", ev)
	}
	return open
}

// render turns actions into golden lines; our own OPEN is abbreviated.
func render(f *FSM, acts []Action) []string {
	out := []string{}
	for _, a := range acts {
		if s, ok := a.(Send); ok && bytes.Equal(s.Msg, f.open) {
			out = append(out, "Send OPEN(local)")
			continue
		}
		out = append(out, fmt.Sprint(a))
	}
	return out
}

type step struct {
	ev    Event
	want  []string
	state State
}

func runSteps(t *testing.T, f *FSM, steps []step) {
	t.Helper()
	for i, s := range steps {
		got := render(f, f.Step(s.ev))
		if strings.Join(got, "\n") != strings.Join(s.want, "\n") {
			t.Fatalf("step %d %T%+v:\n got: %q\nwant: %q", i, s.ev, s.ev, got, s.want)
		}
		if f.State() != s.state {
			t.Fatalf("step %d %T: state %v, want %v", i, s.ev, f.State(), s.state)
		}
	}
}

const allFamilies = "[ipv4/mpls-vpn l2vpn/evpn ipv4/flow-vpn]"

// toOpenSent is the common prefix: start, connect, OPEN sent.
var toOpenSent = []step{
	{ManualStart{}, []string{"Connect"}, Connect},
	{TCPConnected{}, []string{"StopTimer ConnectRetry", "Send OPEN(local)", "StartTimer Hold 4m0s"}, OpenSent},
}

func establish(t *testing.T, f *FSM) {
	t.Helper()
	runSteps(t, f, toOpenSent)
	f.Step(peerOpen(t, openOpts{}))
	f.Step(KeepaliveReceived{})
	if f.State() != Established {
		t.Fatalf("state %v, want Established", f.State())
	}
}

// the tail of every leave: close, stop timers, report.
func downTail(reason string, retry string) []string {
	l := []string{"CloseConnection", "StopTimer Hold", "StopTimer Keepalive", "SessionDown (" + reason + ")"}
	if retry != "" {
		l = append(l, "StartTimer ConnectRetry "+retry)
	}
	return l
}

func TestFSMEstablishAndRun(t *testing.T) {
	f := newTestFSM(t, nil)
	upd := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x00, 0x17, // length 23
		0x02,       // UPDATE
		0x00, 0x00, // withdrawn routes length
		0x00, 0x00, // path attribute length
	}
	steps := append(toOpenSent,
		step{peerOpen(t, openOpts{}), []string{"Send KEEPALIVE", "StartTimer Keepalive 1m0s", "StartTimer Hold 3m0s"}, OpenConfirm},
		step{KeepaliveTimerExpired{}, []string{"Send KEEPALIVE", "StartTimer Keepalive 1m0s"}, OpenConfirm},
		step{KeepaliveReceived{}, []string{"StartTimer Hold 3m0s",
			"SessionEstablished hold=3m0s keepalive=1m0s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}, Established},
		step{KeepaliveReceived{}, []string{"StartTimer Hold 3m0s"}, Established},
		step{UpdateReceived{Msg: upd}, []string{"StartTimer Hold 3m0s", "DeliverUpdate ffffffffffffffffffffffffffffffff00170200000000"}, Established},
		step{KeepaliveTimerExpired{}, []string{"Send KEEPALIVE", "StartTimer Keepalive 1m0s"}, Established},
		step{RouteRefreshReceived{Family: route.FamilyVPNv4}, []string{"DeliverRouteRefresh ipv4/mpls-vpn"}, Established},
		step{RouteRefreshReceived{Family: route.NewFamily(2, 1)}, []string{}, Established}, // not negotiated: RFC 2918 §4 ignore
		step{SendRouteRefresh{Family: route.FamilyEVPN}, []string{"Send ROUTE-REFRESH l2vpn/evpn"}, Established},
		step{SendRouteRefresh{Family: route.FamilyRTC}, []string{}, Established},
		step{ManualStart{}, []string{}, Established},
		step{ManualStop{}, append([]string{"Send NOTIFICATION 6/2 (cease: administrative shutdown)"},
			downTail("administrative shutdown in Established, sent NOTIFICATION 6/2 (cease: administrative shutdown)", "")...), Idle},
		step{ConnectRetryExpired{}, []string{}, Idle}, // stopped: no reconnect
	)
	runSteps(t, f, steps)
}

func TestFSMHoldTimeNegotiation(t *testing.T) {
	tests := []struct {
		name      string
		ours      time.Duration
		theirs    uint16
		afterOpen []string
		afterKA   []string
	}{
		{"peer 0: no hold timer, no keepalives", 0, 0,
			[]string{"Send KEEPALIVE", "StopTimer Hold"},
			[]string{"SessionEstablished hold=0s keepalive=0s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}},
		{"peer 3", 0, 3,
			[]string{"Send KEEPALIVE", "StartTimer Keepalive 1s", "StartTimer Hold 3s"},
			[]string{"StartTimer Hold 3s", "SessionEstablished hold=3s keepalive=1s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}},
		{"both 180", 0, 180,
			[]string{"Send KEEPALIVE", "StartTimer Keepalive 1m0s", "StartTimer Hold 3m0s"},
			[]string{"StartTimer Hold 3m0s", "SessionEstablished hold=3m0s keepalive=1m0s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}},
		{"ours 90 smaller", 90 * time.Second, 180,
			[]string{"Send KEEPALIVE", "StartTimer Keepalive 30s", "StartTimer Hold 1m30s"},
			[]string{"StartTimer Hold 1m30s", "SessionEstablished hold=1m30s keepalive=30s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}},
		{"peer 10 (upstream rejected ≤ 30)", 0, 10,
			[]string{"Send KEEPALIVE", "StartTimer Keepalive 3.333333333s", "StartTimer Hold 10s"},
			[]string{"StartTimer Hold 10s", "SessionEstablished hold=10s keepalive=3.333333333s families=" + allFamilies + " missing=[] as4=true rr=true rtc=false"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, func(c *Config) { c.HoldTime = tc.ours })
			runSteps(t, f, append(toOpenSent,
				step{peerOpen(t, openOpts{hold: tc.theirs, holdSet: true}), tc.afterOpen, OpenConfirm},
				step{KeepaliveReceived{}, tc.afterKA, Established},
			))
		})
	}
}

func TestFSMTimersAndErrorsInEstablished(t *testing.T) {
	tests := []struct {
		name string
		ev   Event
		want []string
	}{
		{"hold timer expired", HoldTimerExpired{}, append([]string{"Send NOTIFICATION 4/0 (hold timer expired)"},
			downTail("hold timer expired in Established, sent NOTIFICATION 4/0 (hold timer expired)", "6.25s")...)},
		{"notification received", NotificationReceived{Code: 6, Subcode: 4, Data: []byte{0xaa}},
			downTail("notification received in Established, received NOTIFICATION 6/4 (cease: administrative reset) data=aa", "25s")},
		{"connection closed", TCPClosed{Err: io.EOF},
			downTail("connection closed in Established: EOF", "25s")},
		{"update error (RFC 7606 session reset)", UpdateError{Notification: &Notification{Code: 3, Subcode: 1}},
			append([]string{"Send NOTIFICATION 3/1 (UPDATE message error: malformed attribute list)"},
				downTail("UPDATE rejected in Established, sent NOTIFICATION 3/1 (UPDATE message error: malformed attribute list)", "25s")...)},
		{"header error from the reader", MessageError{Code: 1, Subcode: 2, Data: []byte{0x10, 0x01}},
			append([]string{"Send NOTIFICATION 1/2 (message header error: bad message length) data=1001"},
				downTail("malformed message received in Established, sent NOTIFICATION 1/2 (message header error: bad message length) data=1001", "25s")...)},
		{"OPEN in Established (RFC 6608)", OpenReceived{Open: &bgp.BGPOpen{Version: 4}},
			append([]string{"Send NOTIFICATION 5/3 (finite state machine error: unexpected message in Established)"},
				downTail("unexpected OPEN in Established, sent NOTIFICATION 5/3 (finite state machine error: unexpected message in Established)", "25s")...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, nil)
			establish(t, f)
			runSteps(t, f, []step{
				{tc.ev, tc.want, Idle},
				{ConnectRetryExpired{}, []string{"Connect"}, Connect},
			})
		})
	}
}

func TestFSMUnexpectedMessages(t *testing.T) {
	upd := UpdateReceived{Msg: []byte{0xff}}
	tests := []struct {
		name   string
		upTo   int // 0: OpenSent, 1: OpenConfirm
		ev     Event
		notify string
	}{
		{"UPDATE in OpenSent", 0, upd, "5/1 (finite state machine error: unexpected message in OpenSent)"},
		{"KEEPALIVE in OpenSent", 0, KeepaliveReceived{}, "5/1 (finite state machine error: unexpected message in OpenSent)"},
		{"ROUTE-REFRESH in OpenSent", 0, RouteRefreshReceived{Family: route.FamilyEVPN}, "5/1 (finite state machine error: unexpected message in OpenSent)"},
		{"UPDATE in OpenConfirm", 1, upd, "5/2 (finite state machine error: unexpected message in OpenConfirm)"},
		{"OPEN in OpenConfirm", 1, OpenReceived{Open: &bgp.BGPOpen{Version: 4}}, "5/2 (finite state machine error: unexpected message in OpenConfirm)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, nil)
			runSteps(t, f, toOpenSent)
			if tc.upTo == 1 {
				f.Step(peerOpen(t, openOpts{}))
			}
			st := f.State()
			what := strings.Fields(tc.name)[0]
			runSteps(t, f, []step{{tc.ev, append([]string{"Send NOTIFICATION " + tc.notify},
				downTail("unexpected "+what+" in "+st.String()+", sent NOTIFICATION "+tc.notify, "6.25s")...), Idle}})
		})
	}
}

func TestFSMNotificationInEachState(t *testing.T) {
	notif := NotificationReceived{Code: 6, Subcode: 2}
	const recv = ", received NOTIFICATION 6/2 (cease: administrative shutdown)"
	tests := []struct {
		name  string
		setup func(t *testing.T, f *FSM)
		want  []string
	}{
		{"Idle", func(*testing.T, *FSM) {}, []string{}},
		{"Connect", func(_ *testing.T, f *FSM) { f.Step(ManualStart{}) }, []string{}},
		{"Active", func(_ *testing.T, f *FSM) { f.Step(ManualStart{}); f.Step(TCPFailed{}) }, []string{}},
		{"OpenSent", func(t *testing.T, f *FSM) { runSteps(t, f, toOpenSent) },
			downTail("notification received in OpenSent"+recv, "6.25s")},
		{"OpenConfirm", func(t *testing.T, f *FSM) { runSteps(t, f, toOpenSent); f.Step(peerOpen(t, openOpts{})) },
			downTail("notification received in OpenConfirm"+recv, "6.25s")},
		{"Established", establish, downTail("notification received in Established"+recv, "25s")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, nil)
			tc.setup(t, f)
			want := Idle
			if len(tc.want) == 0 {
				want = f.State()
			}
			runSteps(t, f, []step{{notif, tc.want, want}})
		})
	}
}

func TestFSMBadOpen(t *testing.T) {
	tests := []struct {
		name string
		open openOpts
		// wire is the whole NOTIFICATION we must send.
		wire string
	}{
		{"version 3", openOpts{version: 3},
			"ffffffffffffffffffffffffffffffff" + "0017" + "03" + // header: length 23, NOTIFICATION
				"02" + "01" + // OPEN message error / unsupported version number
				"0004"}, // data: largest supported version, 4
		{"wrong AS", openOpts{as2: 65000},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "02"}, // bad peer AS
		{"wrong 4-octet AS behind AS_TRANS", openOpts{as2: bgp.AS_TRANS, as4: 4200000000},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "02"},
		{"hold 1", openOpts{hold: 1, holdSet: true},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "06"}, // unacceptable hold time
		{"hold 2", openOpts{hold: 2, holdSet: true},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "06"},
		{"identifier 0.0.0.0", openOpts{id: "0.0.0.0"},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "03"}, // bad BGP identifier
		{"identifier equal to ours (iBGP)", openOpts{id: localID.String()},
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "03"},
		{"unsupported optional parameter", openOpts{extra: []bgp.OptionParameterInterface{
			&bgp.OptionParameterUnknown{ParamType: 1, Value: []byte{0x00, 0x00}}}}, // deprecated authentication
			"ffffffffffffffffffffffffffffffff" + "0015" + "03" + "02" + "04"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, nil)
			runSteps(t, f, toOpenSent)
			acts := f.Step(peerOpen(t, tc.open))
			if len(acts) == 0 {
				t.Fatal("OPEN accepted")
			}
			send, ok := acts[0].(Send)
			if !ok {
				t.Fatalf("first action %v, want Send", acts[0])
			}
			if got := hex.EncodeToString(send.Msg); got != tc.wire {
				t.Errorf("NOTIFICATION\n got %s\nwant %s", got, tc.wire)
			}
			want := downTail("", "6.25s")
			got := render(f, acts[1:])
			got[3] = "SessionDown ()" // reason checked below
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("actions %q, want %q", got, want)
			}
			var de *DownError
			if !errors.As(acts[4].(SessionDown).Reason, &de) || de.Event != "OPEN rejected" || de.State != OpenSent {
				t.Errorf("reason %#v", acts[4].(SessionDown).Reason)
			}
			if f.State() != Idle {
				t.Errorf("state %v", f.State())
			}
		})
	}
}

func TestFSMCapabilityNegotiation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		open  openOpts
		want  string
		check func(t *testing.T, f *FSM)
	}{
		{"peer lacks evpn", nil, openOpts{families: []route.Family{route.FamilyVPNv4, route.FamilyFlowVPN}},
			"families=[ipv4/mpls-vpn ipv4/flow-vpn] missing=[l2vpn/evpn] as4=true rr=true rtc=false", nil},
		{"peer announces no family", nil, openOpts{families: []route.Family{}},
			"families=[] missing=" + allFamilies + " as4=true rr=true rtc=false", nil},
		{"rtc enabled and negotiated", func(c *Config) { c.EnableRTC = true }, openOpts{},
			"families=[ipv4/mpls-vpn l2vpn/evpn ipv4/flow-vpn ipv4/rtc] missing=[] as4=true rr=true rtc=true", nil},
		{"rtc enabled, peer lacks it", func(c *Config) { c.EnableRTC = true }, openOpts{families: DefaultFamilies},
			"families=" + allFamilies + " missing=[ipv4/rtc] as4=true rr=true rtc=false", nil},
		{"peer without route refresh", nil, openOpts{noRR: true},
			"families=" + allFamilies + " missing=[] as4=true rr=false rtc=false",
			func(t *testing.T, f *FSM) {
				if acts := f.Step(SendRouteRefresh{Family: route.FamilyVPNv4}); len(acts) != 0 {
					t.Errorf("ROUTE-REFRESH sent to a peer without the capability: %v", acts)
				}
			}},
		{"2-octet peer", nil, openOpts{noAS4: true},
			"families=" + allFamilies + " missing=[] as4=false rr=true rtc=false", nil},
		{"4-octet AS > 65535", func(c *Config) { c.LocalAS = 4200000001 },
			openOpts{as2: bgp.AS_TRANS, as4: 4200000001},
			"families=" + allFamilies + " missing=[] as4=true rr=true rtc=false",
			func(t *testing.T, f *FSM) {
				if n := f.Negotiated(); n.PeerAS != 4200000001 {
					t.Errorf("peer AS %d", n.PeerAS)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, tc.cfg)
			runSteps(t, f, toOpenSent)
			f.Step(peerOpen(t, tc.open))
			acts := render(f, f.Step(KeepaliveReceived{}))
			got := acts[len(acts)-1]
			if !strings.HasSuffix(got, tc.want) {
				t.Fatalf("got %q\nwant suffix %q", got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func TestFSMOpenBytes(t *testing.T) {
	const header = "ffffffffffffffffffffffffffffffff" // marker
	tests := []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"defaults", nil, header + "0039" + "01" + // length 57, OPEN
			"04" + "fc00" + "00b4" + "c0000201" + // version 4, AS 64512, hold 180, id 192.0.2.1
			"1c" + "02" + "1a" + // opt params length 28; capabilities parameter, length 26
			"010400010080" + // multiprotocol ipv4/mpls-vpn (1/128)
			"010400190046" + // multiprotocol l2vpn/evpn (25/70)
			"010400010086" + // multiprotocol ipv4/flow-vpn (1/134)
			"0200" + // route refresh
			"41040000fc00"}, // 4-octet AS 64512
		{"rtc, AS 4200000001, hold 30", func(c *Config) {
			c.EnableRTC = true
			c.LocalAS = 4200000001
			c.HoldTime = 30 * time.Second
		}, header + "003f" + "01" + // length 63, OPEN
			"04" + "5ba0" + "001e" + "c0000201" + // version 4, AS_TRANS 23456, hold 30, id
			"22" + "02" + "20" + // opt params length 34; capabilities, length 32
			"010400010080" + "010400190046" + "010400010086" +
			"010400010084" + // multiprotocol ipv4/rtc (1/132)
			"0200" +
			"4104fa56ea01"}, // 4-octet AS 4200000001
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newTestFSM(t, tc.cfg)
			if got := hex.EncodeToString(f.open); got != tc.want {
				t.Errorf("OPEN\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestFSMPassiveAndRetry(t *testing.T) {
	t.Run("passive", func(t *testing.T) {
		f := newTestFSM(t, func(c *Config) { c.Passive = true })
		runSteps(t, f, []step{
			{ManualStart{}, []string{}, Active},
			{ConnectRetryExpired{}, []string{}, Active}, // passive never connects
			{TCPConnected{Incoming: true}, []string{"StopTimer ConnectRetry", "Send OPEN(local)", "StartTimer Hold 4m0s"}, OpenSent},
			{TCPClosed{Err: io.EOF}, downTail("connection closed in OpenSent: EOF", "6.25s"), Active},
			{TCPConnected{Incoming: true}, []string{"StopTimer ConnectRetry", "Send OPEN(local)", "StartTimer Hold 4m0s"}, OpenSent},
			{HoldTimerExpired{}, append([]string{"Send NOTIFICATION 4/0 (hold timer expired)"},
				downTail("hold timer expired in OpenSent, sent NOTIFICATION 4/0 (hold timer expired)", "6.25s")...), Idle},
			{ConnectRetryExpired{}, []string{}, Active},
		})
	})
	t.Run("connect fails", func(t *testing.T) {
		f := newTestFSM(t, nil)
		runSteps(t, f, []step{
			{ManualStart{}, []string{"Connect"}, Connect},
			{TCPFailed{Err: io.EOF}, []string{"StartTimer ConnectRetry 6.25s"}, Active},
			{ConnectRetryExpired{}, []string{"Connect"}, Connect},
			{ManualStop{}, []string{"CloseConnection", "StopTimer ConnectRetry"}, Idle},
			{TCPConnected{}, []string{}, Idle}, // a late connect is not taken
			{ManualStart{}, []string{"Connect"}, Connect},
		})
	})
	t.Run("jitter is clamped", func(t *testing.T) {
		for _, j := range []float64{0, 7} {
			f := newTestFSM(t, func(c *Config) { c.Jitter = func() float64 { return j } })
			establish(t, f)
			acts := render(f, f.Step(TCPClosed{}))
			want := map[float64]string{0: "StartTimer ConnectRetry 20s", 7: "StartTimer ConnectRetry 30s"}[j]
			if acts[len(acts)-1] != want {
				t.Errorf("jitter %v: %q, want %q", j, acts[len(acts)-1], want)
			}
		}
	})
}

func TestNewFSMRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no router id", func(c *Config) { c.RouterID = netip.Addr{} }},
		{"IPv6 router id", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }},
		{"AS 0", func(c *Config) { c.LocalAS = 0 }},
		{"hold 2 s", func(c *Config) { c.HoldTime = 2 * time.Second }},
		{"hold not whole seconds", func(c *Config) { c.HoldTime = 3500 * time.Millisecond }},
		{"graceful restart", func(c *Config) { c.GracefulRestart = &GracefulRestart{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			if _, err := NewFSM(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestResolveCollision(t *testing.T) {
	low, high := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.200")
	tests := []struct {
		local, remote netip.Addr
		existing      State
		closeExisting bool
	}{
		{low, high, OpenSent, true},     // remote higher: keep the remote-initiated one
		{low, high, OpenConfirm, true},  //
		{high, low, OpenSent, false},    // local higher: keep ours
		{high, low, OpenConfirm, false}, //
		{low, high, Established, false}, // Established always stays
		{high, low, Established, false}, //
		{low, high, Connect, true},      // no session yet: give way
		{high, low, Active, true},       //
		{high, low, Idle, true},         //
		// 4-octet unsigned comparison, not lexical: 9.x < 10.x
		{netip.MustParseAddr("9.255.255.255"), netip.MustParseAddr("10.0.0.0"), OpenConfirm, true},
	}
	for _, tc := range tests {
		if got := ResolveCollision(tc.local, tc.remote, tc.existing); got != tc.closeExisting {
			t.Errorf("ResolveCollision(%v, %v, %v) = %v, want %v", tc.local, tc.remote, tc.existing, got, tc.closeExisting)
		}
	}
}

func TestStateString(t *testing.T) {
	want := []string{"Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"}
	for i, w := range want {
		if got := State(i).String(); got != w {
			t.Errorf("State(%d) = %q, want %q", i, got, w)
		}
	}
}

// TestFSMClosedBeforeEstablishedStaysReachable: a connection closed in
// OpenSent leaves the FSM in Active (RFC 4271 §8.2.2), where the peer's own
// connection is taken, instead of Idle, where it would be refused. Two
// speakers that connect to each other at the same time used to refuse each
// other forever.
func TestFSMClosedBeforeEstablishedStaysReachable(t *testing.T) {
	f := newTestFSM(t, nil)
	runSteps(t, f, append(toOpenSent[:len(toOpenSent):len(toOpenSent)],
		step{TCPClosed{Err: io.EOF}, downTail("connection closed in OpenSent: EOF", "6.25s"), Active},
		step{TCPConnected{Incoming: true}, []string{"StopTimer ConnectRetry", "Send OPEN(local)", "StartTimer Hold 4m0s"}, OpenSent},
	))
}
