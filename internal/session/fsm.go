// Package session runs one BGP session (RFC 4271) with one peer.
//
// The protocol logic is the pure state machine FSM: Step takes an Event
// (a received message, a timer expiry, a TCP outcome, an admin command) and
// returns the Actions to perform (messages to send, timers to arm, routes to
// hand upwards). It does no I/O, reads no clock, starts no goroutine and draws
// no random number, so every protocol scenario is testable without sockets
// (the etcd raft pattern). Peer is the thin driver around it: it owns the TCP
// connections, the timers, the reader and writer goroutines, and applies the
// connection collision rules of RFC 4271 §6.8.
//
// Randomness: every reconnect delay (RFC 4271 §10) is multiplied by a jitter
// factor in [1, 1.5) as upstream bagpipe-bgp does. The FSM obtains it from
// Config.Jitter, a function the driver sets (Peer uses math/rand); tests set a
// constant function, and a nil Jitter means a factor of 1. Step calls Jitter
// only when it computes such a delay, so given the same Jitter results Step is
// deterministic.
package session

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// State is a state of the RFC 4271 §8.2.2 finite state machine.
type State uint8

// The six RFC 4271 states.
const (
	Idle State = iota
	Connect
	Active
	OpenSent
	OpenConfirm
	Established
)

// String returns the RFC 4271 name of the state.
func (s State) String() string {
	switch s {
	case Idle:
		return "Idle"
	case Connect:
		return "Connect"
	case Active:
		return "Active"
	case OpenSent:
		return "OpenSent"
	case OpenConfirm:
		return "OpenConfirm"
	case Established:
		return "Established"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Defaults of Config, taken from upstream bagpipe-bgp (§4.4 of the
// compatibility spec) and RFC 4271 §10.
const (
	DefaultHoldTime         = 180 * time.Second // offered in OPEN
	DefaultOpenHoldTime     = 4 * time.Minute   // RFC 4271 §8.2.2 "large value" in OpenSent
	DefaultConnectRetry     = 5 * time.Second   // after a failed connect or OPEN exchange
	DefaultErrorDelay       = 20 * time.Second  // × jitter, after an error in Established
	DefaultHoldExpiredDelay = 5 * time.Second   // × jitter, after the hold timer expired
)

// DefaultFamilies are announced when Config.Families is nil (ipv4/rtc is added
// when Config.EnableRTC is set), in upstream order.
var DefaultFamilies = []route.Family{route.FamilyVPNv4, route.FamilyEVPN, route.FamilyFlowVPN}

// GracefulRestart is the place reserved for RFC 4724 graceful restart.
// It is not implemented yet: NewFSM rejects a non-nil Config.GracefulRestart,
// and gracefulRestartCapabilities is the hook that will add the capability
// to OPEN.
type GracefulRestart struct {
	// RestartTime is the Restart Time advertised in the capability.
	RestartTime time.Duration
}

// Config is the configuration of one session. Zero durations take the
// Default* values.
type Config struct {
	// LocalAS is our AS number (4 octets, RFC 6793).
	LocalAS uint32
	// PeerAS is the AS the peer must announce; 0 means LocalAS (iBGP, the
	// only mode upstream supports).
	PeerAS uint32
	// RouterID is our BGP identifier (an IPv4 address; upstream uses the
	// local address).
	RouterID netip.Addr
	// HoldTime is the hold time offered in OPEN: 0 means DefaultHoldTime;
	// otherwise at least 3 s and at most 65535 s (RFC 4271 §4.2).
	HoldTime time.Duration
	// OpenHoldTime is the hold timer armed while waiting for the peer's OPEN
	// (RFC 4271 §8.2.2 suggests 4 minutes).
	OpenHoldTime time.Duration
	// Families are the families announced with the multiprotocol capability
	// (RFC 4760); nil means DefaultFamilies.
	Families []route.Family
	// EnableRTC adds ipv4/rtc (RFC 4684) to the announced families.
	EnableRTC bool
	// Passive makes the session only accept connections: no Connect action
	// is ever emitted. A non-passive session both connects and accepts.
	Passive bool
	// ConnectRetry is the delay before connecting again after a failed
	// connect or a session that ended before Established.
	ConnectRetry time.Duration
	// ErrorDelay (× jitter) is the delay before connecting again after an
	// Established session ended on an error.
	ErrorDelay time.Duration
	// HoldExpiredDelay (× jitter) is the delay before connecting again after
	// the hold timer expired.
	HoldExpiredDelay time.Duration
	// Jitter returns a factor in [1, 1.5) applied to ErrorDelay and
	// HoldExpiredDelay; values outside are clamped; nil means 1.
	Jitter func() float64
	// GracefulRestart is reserved for RFC 4724 (not implemented; must be nil).
	GracefulRestart *GracefulRestart
}

// Negotiated is what the OPEN exchange settled (RFC 4271 §4.2, RFC 4760,
// RFC 2918, RFC 6793).
type Negotiated struct {
	// HoldTime is min(ours, theirs); 0 means no hold timer and no keepalives.
	HoldTime time.Duration
	// KeepaliveInterval is HoldTime/3 (0 when HoldTime is 0).
	KeepaliveInterval time.Duration
	// PeerAS is the peer's AS (from the 4-octet AS capability if present).
	PeerAS uint32
	// PeerID is the peer's BGP identifier.
	PeerID netip.Addr
	// Families are the families both sides announced, in our order.
	Families []route.Family
	// MissingFamilies are families we announced and the peer did not (worth a
	// warning: routes of these families are not exchanged).
	MissingFamilies []route.Family
	// FourOctetAS is set when the peer announced the 4-octet AS capability.
	FourOctetAS bool
	// RouteRefresh is set when the peer announced route refresh (RFC 2918).
	RouteRefresh bool
	// RTC is set when ipv4/rtc is enabled and negotiated.
	RTC bool
}

// HasFamily reports whether f was negotiated.
func (n *Negotiated) HasFamily(f route.Family) bool { return slices.Contains(n.Families, f) }

// FSM is the pure RFC 4271 state machine of one connection attempt at a time.
// It is not safe for concurrent use; the driver steps it from one goroutine.
type FSM struct {
	cfg      Config
	families []route.Family // announced, in order
	open     []byte         // our OPEN, built once
	state    State
	started  bool // ManualStart seen and no ManualStop since: reconnect after errors
	peerID   netip.Addr
	neg      Negotiated
}

// NewFSM checks cfg, fills its defaults and returns an FSM in Idle.
func NewFSM(cfg Config) (*FSM, error) {
	if !cfg.RouterID.Is4() || cfg.RouterID.IsUnspecified() {
		return nil, fmt.Errorf("session: router id %v must be a non-zero IPv4 address (RFC 4271 §4.2 BGP Identifier); set the BGP local address", cfg.RouterID)
	}
	if cfg.LocalAS == 0 {
		return nil, fmt.Errorf("session: local AS is 0; configure my_as")
	}
	if cfg.PeerAS == 0 {
		cfg.PeerAS = cfg.LocalAS
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = DefaultHoldTime
	}
	if cfg.HoldTime < 3*time.Second || cfg.HoldTime > 65535*time.Second || cfg.HoldTime%time.Second != 0 {
		return nil, fmt.Errorf("session: hold time %v must be a whole number of seconds from 3 to 65535 (RFC 4271 §4.2)", cfg.HoldTime)
	}
	if cfg.GracefulRestart != nil {
		return nil, fmt.Errorf("session: graceful restart (RFC 4724) is not implemented yet; leave it unset")
	}
	setDefault(&cfg.OpenHoldTime, DefaultOpenHoldTime)
	setDefault(&cfg.ConnectRetry, DefaultConnectRetry)
	setDefault(&cfg.ErrorDelay, DefaultErrorDelay)
	setDefault(&cfg.HoldExpiredDelay, DefaultHoldExpiredDelay)
	f := &FSM{cfg: cfg}
	f.families = slices.Clone(cfg.Families)
	if f.families == nil {
		f.families = slices.Clone(DefaultFamilies)
	}
	if cfg.EnableRTC && !slices.Contains(f.families, route.FamilyRTC) {
		f.families = append(f.families, route.FamilyRTC)
	}
	open, err := f.buildOpen()
	if err != nil {
		return nil, err
	}
	f.open = open
	return f, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// State returns the current state.
func (f *FSM) State() State { return f.state }

// Config returns the configuration with defaults filled in.
func (f *FSM) Config() Config { return f.cfg }

// Families returns the families announced in our OPEN.
func (f *FSM) Families() []route.Family { return slices.Clone(f.families) }

// Negotiated returns the parameters of the last accepted OPEN (valid from
// OpenConfirm on).
func (f *FSM) Negotiated() Negotiated { return f.neg }

// PeerID returns the BGP identifier of the peer once its OPEN was received
// on the current connection.
func (f *FSM) PeerID() (netip.Addr, bool) { return f.peerID, f.peerID.IsValid() }

// Step feeds one event to the state machine and returns the actions to
// perform, in order. Events that make no sense in the current state are
// ignored (nil) unless RFC 4271 §8.2.2 / RFC 6608 prescribe an error.
func (f *FSM) Step(ev Event) []Action {
	switch e := ev.(type) {
	case ManualStart:
		if f.state != Idle {
			return nil
		}
		f.started = true
		return f.begin()
	case ManualStop:
		return f.stop()
	case ConnectRetryExpired:
		switch {
		case f.state == Idle && f.started:
			return f.begin()
		case f.state == Active && !f.cfg.Passive:
			f.state = Connect
			return []Action{ConnectAction{}}
		}
		return nil
	case TCPConnected:
		return f.tcpConnected(e)
	case TCPFailed:
		if f.state != Connect {
			return nil
		}
		// RFC 4271 §8.2.2 Connect state, TcpConnectionFails: restart the
		// ConnectRetryTimer and go to Active (where incoming connections
		// are still accepted).
		f.state = Active
		return []Action{StartTimer{Timer: ConnectRetryTimer, Duration: f.jittered(f.cfg.ConnectRetry)}}
	case TCPClosed:
		if !f.connected() {
			return nil
		}
		pre := f.state != Established
		acts := f.leave(&DownError{Event: "connection closed", Err: e.Err}, nil, f.retryDelay())
		if pre && f.started {
			// RFC 4271 §8.2.2 OpenSent/OpenConfirm, TcpConnectionFails:
			// restart the ConnectRetryTimer and go to Active, where a
			// connection from the peer is still accepted. Going to Idle
			// (refusing) here lets two speakers that connect to each other
			// refuse each other forever.
			f.state = Active
		}
		return acts
	case OpenReceived:
		return f.openReceived(e)
	case KeepaliveReceived:
		switch f.state {
		case OpenConfirm:
			// RFC 4271 §8.2.2 OpenConfirm, KeepAliveMsg: restart the hold
			// timer, go to Established.
			f.state = Established
			return append(f.restartHold(), SessionEstablished{Negotiated: f.neg})
		case Established:
			return f.restartHold()
		}
		return f.unexpected("KEEPALIVE")
	case UpdateReceived:
		if f.state == Established {
			// Any UPDATE proves the peer alive: restart the hold timer (RFC
			// 4271 §8.2.2 Established, UpdateMsg; upstream only did it on
			// KEEPALIVE).
			return append(f.restartHold(), DeliverUpdate{Msg: e.Msg})
		}
		return f.unexpected("UPDATE")
	case RouteRefreshReceived:
		if f.state == Established {
			// RFC 2918 §4: a ROUTE-REFRESH for a family not advertised at
			// session establishment is ignored.
			if !f.neg.HasFamily(e.Family) {
				return nil
			}
			return []Action{DeliverRouteRefresh{Family: e.Family}}
		}
		return f.unexpected("ROUTE-REFRESH")
	case NotificationReceived:
		if !f.connected() {
			return nil
		}
		n := &Notification{Code: e.Code, Subcode: e.Subcode, Data: e.Data}
		return f.leave(&DownError{Event: "notification received", Received: n}, nil, f.retryDelay())
	case MessageError:
		if !f.connected() {
			return nil
		}
		n := &Notification{Code: e.Code, Subcode: e.Subcode, Data: e.Data}
		return f.leave(&DownError{Event: "malformed message received", Sent: n}, n, f.retryDelay())
	case UpdateError:
		if f.state != Established || e.Notification == nil {
			return nil
		}
		// RFC 7606 §2 "session reset": the upper layer found an UPDATE error
		// that cannot be handled by treat-as-withdraw or attribute discard.
		return f.leave(&DownError{Event: "UPDATE rejected", Sent: e.Notification}, e.Notification, f.retryDelay())
	case HoldTimerExpired:
		if !f.connected() {
			return nil
		}
		// RFC 4271 §6.5: send NOTIFICATION Hold Timer Expired and close.
		n := &Notification{Code: bgp.BGP_ERROR_HOLD_TIMER_EXPIRED}
		return f.leave(&DownError{Event: "hold timer expired", Sent: n}, n, f.jittered(f.cfg.HoldExpiredDelay))
	case KeepaliveTimerExpired:
		if f.state != OpenConfirm && f.state != Established {
			return nil
		}
		return []Action{Send{Msg: keepaliveMsg}, StartTimer{Timer: KeepaliveTimer, Duration: f.neg.KeepaliveInterval}}
	case SendRouteRefresh:
		if f.state != Established || !f.neg.RouteRefresh || !f.neg.HasFamily(e.Family) {
			return nil
		}
		return []Action{Send{Msg: routeRefreshMessage(e.Family)}}
	}
	return nil
}

// connected reports whether a TCP connection belongs to the current state.
func (f *FSM) connected() bool { return f.state >= OpenSent }

// begin leaves Idle: connect out, or wait for an incoming connection.
func (f *FSM) begin() []Action {
	if f.cfg.Passive {
		f.state = Active
		return nil
	}
	f.state = Connect
	return []Action{ConnectAction{}}
}

func (f *FSM) tcpConnected(e TCPConnected) []Action {
	switch f.state {
	case Connect, Active:
	case Idle:
		// An Idle FSM only takes an incoming connection the driver chose to
		// hand it (a fresh FSM for a second, colliding connection).
		if !e.Incoming {
			return nil
		}
		f.started = true
	default:
		return nil
	}
	// RFC 4271 §8.2.2 Connect/Active, TcpConnectionConfirmed: send OPEN, set
	// the hold timer to a large value, go to OpenSent.
	f.state = OpenSent
	f.peerID = netip.Addr{}
	f.neg = Negotiated{}
	return []Action{
		StopTimer{Timer: ConnectRetryTimer},
		Send{Msg: f.open},
		StartTimer{Timer: HoldTimer, Duration: f.cfg.OpenHoldTime},
	}
}

func (f *FSM) openReceived(e OpenReceived) []Action {
	if f.state != OpenSent {
		return f.unexpected("OPEN")
	}
	if e.Open == nil {
		return nil
	}
	neg, n := f.checkOpen(e.Open)
	if n != nil {
		return f.leave(&DownError{Event: "OPEN rejected", Sent: n}, n, f.jittered(f.cfg.ConnectRetry))
	}
	f.peerID = e.Open.ID
	f.neg = neg
	f.state = OpenConfirm
	// RFC 4271 §8.2.2 OpenSent, BGPOpen: send KEEPALIVE, set the keepalive
	// timer and the hold timer to the negotiated values, go to OpenConfirm.
	acts := []Action{Send{Msg: keepaliveMsg}}
	if neg.HoldTime == 0 {
		return append(acts, StopTimer{Timer: HoldTimer})
	}
	return append(acts,
		StartTimer{Timer: KeepaliveTimer, Duration: neg.KeepaliveInterval},
		StartTimer{Timer: HoldTimer, Duration: neg.HoldTime})
}

// restartHold restarts the hold timer when one runs.
func (f *FSM) restartHold() []Action {
	if f.neg.HoldTime == 0 {
		return nil
	}
	return []Action{StartTimer{Timer: HoldTimer, Duration: f.neg.HoldTime}}
}

// unexpected answers a message received in a state where it is not allowed
// with the RFC 6608 FSM error subcode of that state.
func (f *FSM) unexpected(what string) []Action {
	var sub uint8
	switch f.state {
	case OpenSent:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENSENT_STATE
	case OpenConfirm:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_OPENCONFIRM_STATE
	case Established:
		sub = bgp.BGP_ERROR_SUB_RECEIVE_UNEXPECTED_MESSAGE_IN_ESTABLISHED_STATE
	default:
		return nil // no connection: nothing to answer on
	}
	n := &Notification{Code: bgp.BGP_ERROR_FSM_ERROR, Subcode: sub}
	return f.leave(&DownError{Event: "unexpected " + what, Sent: n}, n, f.retryDelay())
}

// stop handles ManualStop: Cease/administrative shutdown (RFC 4486 §4) when
// a connection exists, no reconnect.
func (f *FSM) stop() []Action {
	f.started = false
	var acts []Action
	switch {
	case f.connected():
		n := &Notification{Code: bgp.BGP_ERROR_CEASE, Subcode: bgp.BGP_ERROR_SUB_ADMINISTRATIVE_SHUTDOWN}
		acts = f.leave(&DownError{Event: "administrative shutdown", Sent: n}, n, 0)
	case f.state == Connect:
		acts = []Action{CloseConnection{}, StopTimer{Timer: ConnectRetryTimer}}
	default:
		acts = []Action{StopTimer{Timer: ConnectRetryTimer}}
	}
	f.state = Idle
	return acts
}

// leave ends the current connection: optional NOTIFICATION, close, stop the
// session timers, report SessionDown, go to Idle and, if the session is
// still started, schedule the reconnect after delay.
func (f *FSM) leave(reason *DownError, n *Notification, delay time.Duration) []Action {
	reason.State = f.state
	var acts []Action
	if n != nil {
		acts = append(acts, Send{Msg: n.Message()})
	}
	acts = append(acts,
		CloseConnection{},
		StopTimer{Timer: HoldTimer},
		StopTimer{Timer: KeepaliveTimer},
		SessionDown{Reason: reason})
	f.state = Idle
	f.peerID = netip.Addr{}
	if f.started && delay > 0 {
		acts = append(acts, StartTimer{Timer: ConnectRetryTimer, Duration: delay})
	}
	return acts
}

// retryDelay is the reconnect delay after an error: ErrorDelay × jitter when
// leaving Established, ConnectRetry otherwise (upstream: errors before
// Established count as connect failures).
func (f *FSM) retryDelay() time.Duration {
	if f.state == Established {
		return f.jittered(f.cfg.ErrorDelay)
	}
	// RFC 4271 §10: jitter the ConnectRetryTimer, so two speakers that
	// failed at the same moment do not retry in lockstep.
	return f.jittered(f.cfg.ConnectRetry)
}

func (f *FSM) jittered(d time.Duration) time.Duration {
	j := 1.0
	if f.cfg.Jitter != nil {
		j = min(max(f.cfg.Jitter(), 1), 1.5)
	}
	return time.Duration(float64(d) * j)
}

// ResolveCollision applies RFC 4271 §6.8 to two connections with the same
// peer: existing is the state of the connection the local system initiated,
// the other one was initiated by the remote system. It reports whether the
// locally initiated connection must be closed (with NOTIFICATION Cease /
// Connection Collision Resolution, RFC 4486 subcode 7):
//   - an Established connection is always kept (the new one is closed);
//   - in OpenSent/OpenConfirm, the connection initiated by the side with the
//     higher BGP identifier (compared as 4-octet unsigned integers) is kept:
//     the local one is closed when localID < remoteID;
//   - a connection without a session yet (Idle, Connect, Active) gives way.
func ResolveCollision(localID, remoteID netip.Addr, existing State) (closeExisting bool) {
	switch existing {
	case Established:
		return false
	case OpenSent, OpenConfirm:
		return localID.Less(remoteID)
	}
	return true
}
