package session

import (
	"fmt"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Event is an input of FSM.Step.
type Event interface{ isEvent() }

// ManualStart starts the session (RFC 4271 §8.1.2 event 1).
type ManualStart struct{}

// ManualStop stops the session: Cease/administrative shutdown if a
// connection exists, no reconnect (RFC 4271 §8.1.2 event 2).
type ManualStop struct{}

// TCPConnected reports a TCP connection for this FSM: our connect succeeded
// (Incoming false) or the driver handed an accepted one (Incoming true).
type TCPConnected struct{ Incoming bool }

// TCPFailed reports that the outgoing connect failed.
type TCPFailed struct{ Err error }

// TCPClosed reports that the connection was closed or failed.
type TCPClosed struct{ Err error }

// OpenReceived carries a decoded OPEN message.
type OpenReceived struct{ Open *bgp.BGPOpen }

// KeepaliveReceived reports a KEEPALIVE message.
type KeepaliveReceived struct{}

// UpdateReceived carries a whole UPDATE message (header included), undecoded.
type UpdateReceived struct{ Msg []byte }

// NotificationReceived carries a NOTIFICATION message.
type NotificationReceived struct {
	Code, Subcode uint8
	Data          []byte
}

// RouteRefreshReceived carries a ROUTE-REFRESH message (RFC 2918).
type RouteRefreshReceived struct{ Family route.Family }

// MessageError reports a message header, framing or OPEN decoding error
// found by the driver (RFC 4271 §6.1-6.2): the FSM sends it as NOTIFICATION.
type MessageError struct {
	Code, Subcode uint8
	Data          []byte
}

// HoldTimerExpired reports the expiry of the hold timer.
type HoldTimerExpired struct{}

// KeepaliveTimerExpired reports the expiry of the keepalive timer.
type KeepaliveTimerExpired struct{}

// ConnectRetryExpired reports the expiry of the connect retry timer.
type ConnectRetryExpired struct{}

// UpdateError reports that the upper layer rejected an UPDATE with an error
// that requires a session reset (RFC 7606 §2).
type UpdateError struct{ Notification *Notification }

// SendRouteRefresh asks the FSM to send a ROUTE-REFRESH for a family; it is
// ignored unless Established with route refresh and the family negotiated.
type SendRouteRefresh struct{ Family route.Family }

func (ManualStart) isEvent()           {}
func (ManualStop) isEvent()            {}
func (TCPConnected) isEvent()          {}
func (TCPFailed) isEvent()             {}
func (TCPClosed) isEvent()             {}
func (OpenReceived) isEvent()          {}
func (KeepaliveReceived) isEvent()     {}
func (UpdateReceived) isEvent()        {}
func (NotificationReceived) isEvent()  {}
func (RouteRefreshReceived) isEvent()  {}
func (MessageError) isEvent()          {}
func (HoldTimerExpired) isEvent()      {}
func (KeepaliveTimerExpired) isEvent() {}
func (ConnectRetryExpired) isEvent()   {}
func (UpdateError) isEvent()           {}
func (SendRouteRefresh) isEvent()      {}

// Timer names one of the session timers.
type Timer uint8

// The RFC 4271 §10 timers.
const (
	ConnectRetryTimer Timer = iota
	HoldTimer
	KeepaliveTimer
	numTimers
)

// String names the timer.
func (t Timer) String() string {
	switch t {
	case ConnectRetryTimer:
		return "ConnectRetry"
	case HoldTimer:
		return "Hold"
	case KeepaliveTimer:
		return "Keepalive"
	}
	return fmt.Sprintf("Timer(%d)", uint8(t))
}

// Action is an output of FSM.Step, performed by the driver in order.
type Action interface{ isAction() }

// ConnectAction asks the driver to open the outgoing TCP connection and
// report TCPConnected or TCPFailed.
type ConnectAction struct{}

// CloseConnection asks the driver to close the connection after flushing
// what was queued before (so a preceding NOTIFICATION is sent), or to abandon
// the connect in progress.
type CloseConnection struct{}

// Send asks the driver to send one whole BGP message.
type Send struct{ Msg []byte }

// StartTimer (re)arms a timer.
type StartTimer struct {
	Timer    Timer
	Duration time.Duration
}

// StopTimer disarms a timer.
type StopTimer struct{ Timer Timer }

// SessionEstablished reports that the session reached Established.
type SessionEstablished struct{ Negotiated Negotiated }

// SessionDown reports that the connection ended (in any state from OpenSent
// on); Reason is a *DownError.
type SessionDown struct{ Reason error }

// DeliverUpdate hands a received UPDATE (whole message) to the upper layer.
type DeliverUpdate struct{ Msg []byte }

// DeliverRouteRefresh hands a received ROUTE-REFRESH to the upper layer.
type DeliverRouteRefresh struct{ Family route.Family }

func (ConnectAction) isAction()       {}
func (CloseConnection) isAction()     {}
func (Send) isAction()                {}
func (StartTimer) isAction()          {}
func (StopTimer) isAction()           {}
func (SessionEstablished) isAction()  {}
func (SessionDown) isAction()         {}
func (DeliverUpdate) isAction()       {}
func (DeliverRouteRefresh) isAction() {}

// String renders the action for logs and golden tests.
func (a Send) String() string { return "Send " + describeMessage(a.Msg) }

// String renders the action for logs and golden tests.
func (a StartTimer) String() string { return fmt.Sprintf("StartTimer %v %v", a.Timer, a.Duration) }

// String renders the action for logs and golden tests.
func (a StopTimer) String() string { return fmt.Sprintf("StopTimer %v", a.Timer) }

// String renders the action for logs and golden tests.
func (a SessionDown) String() string { return fmt.Sprintf("SessionDown (%v)", a.Reason) }

// String renders the action for logs and golden tests.
func (ConnectAction) String() string { return "Connect" }

// String renders the action for logs and golden tests.
func (CloseConnection) String() string { return "CloseConnection" }

// String renders the action for logs and golden tests.
func (a SessionEstablished) String() string {
	n := a.Negotiated
	return fmt.Sprintf("SessionEstablished hold=%v keepalive=%v families=%v missing=%v as4=%v rr=%v rtc=%v",
		n.HoldTime, n.KeepaliveInterval, n.Families, n.MissingFamilies, n.FourOctetAS, n.RouteRefresh, n.RTC)
}

// String renders the action for logs and golden tests.
func (a DeliverUpdate) String() string { return fmt.Sprintf("DeliverUpdate %x", a.Msg) }

// String renders the action for logs and golden tests.
func (a DeliverRouteRefresh) String() string { return "DeliverRouteRefresh " + a.Family.String() }

// Notification is a BGP NOTIFICATION (RFC 4271 §4.5). As an error returned
// by Handler.Update it asks for a session reset (RFC 7606 §2).
type Notification struct {
	Code, Subcode uint8
	Data          []byte
}

// Error describes the notification with its RFC name.
func (n *Notification) Error() string {
	s := fmt.Sprintf("NOTIFICATION %d/%d (%s)", n.Code, n.Subcode, notificationName(n.Code, n.Subcode))
	if len(n.Data) > 0 {
		s += fmt.Sprintf(" data=%x", n.Data)
	}
	return s
}

// Message returns the whole NOTIFICATION message.
func (n *Notification) Message() []byte {
	b, err := bgp.NewBGPNotificationMessage(n.Code, n.Subcode, n.Data).Serialize()
	if err != nil {
		// Only data beyond the 4096-byte message limit fails: truncate it
		// (RFC 4271 §4.5 does not require the whole data).
		b, _ = bgp.NewBGPNotificationMessage(n.Code, n.Subcode, n.Data[:bgp.BGP_MAX_MESSAGE_LENGTH-21]).Serialize()
	}
	return b
}

// DownError says why a session (or a connection attempt past OpenSent) ended.
type DownError struct {
	// Event is what happened, in words.
	Event string
	// State is the state the session was in.
	State State
	// Sent is the NOTIFICATION we sent, if any.
	Sent *Notification
	// Received is the NOTIFICATION the peer sent, if any.
	Received *Notification
	// Err is the socket error, if any.
	Err error
}

// Error describes the end of the session.
func (e *DownError) Error() string {
	s := e.Event + " in " + e.State.String()
	if e.Sent != nil {
		s += ", sent " + e.Sent.Error()
	}
	if e.Received != nil {
		s += ", received " + e.Received.Error()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the socket error or the notification.
func (e *DownError) Unwrap() []error {
	var errs []error
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	if e.Sent != nil {
		errs = append(errs, e.Sent)
	}
	if e.Received != nil {
		errs = append(errs, e.Received)
	}
	return errs
}

// notificationNames are the RFC 4271 §4.5, RFC 4486, RFC 6608 and RFC 7313
// error codes and subcodes we may send or log.
var notificationNames = map[uint8][]string{
	1: {"message header error", "connection not synchronized", "bad message length", "bad message type"},
	2: {"OPEN message error", "unsupported version number", "bad peer AS", "bad BGP identifier",
		"unsupported optional parameter", "", "unacceptable hold time", "unsupported capability"},
	3: {"UPDATE message error", "malformed attribute list", "unrecognized well-known attribute",
		"missing well-known attribute", "attribute flags error", "attribute length error",
		"invalid ORIGIN attribute", "", "invalid NEXT_HOP attribute", "optional attribute error",
		"invalid network field", "malformed AS_PATH"},
	4: {"hold timer expired"},
	5: {"finite state machine error", "unexpected message in OpenSent", "unexpected message in OpenConfirm",
		"unexpected message in Established"},
	6: {"cease", "maximum number of prefixes reached", "administrative shutdown", "peer de-configured",
		"administrative reset", "connection rejected", "other configuration change",
		"connection collision resolution", "out of resources", "hard reset"},
	7: {"ROUTE-REFRESH message error", "invalid message length"},
}

// notificationName renders "code name: subcode name" (subcode 0 and unknown
// subcodes are left out).
func notificationName(code, subcode uint8) string {
	names, ok := notificationNames[code]
	if !ok {
		return "unknown error code"
	}
	if subcode == 0 || int(subcode) >= len(names) || names[subcode] == "" {
		return names[0]
	}
	return names[0] + ": " + names[subcode]
}
