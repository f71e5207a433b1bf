// Package codec converts BGP UPDATE messages (RFC 4271 §4.3, multiprotocol
// per RFC 4760) to and from *route.Route, for the families bagpipe-bgp
// speaks: E-VPN (RFC 7432), VPNv4 (RFC 4364), RT-Constraint (RFC 4684) and
// FlowSpec-VPN (RFC 5575 §8).
//
// It is a thin layer over github.com/osrg/gobgp/v4/pkg/packet/bgp:
//
//   - Decoding parses the UPDATE framing itself (four length fields), parses
//     the NLRI of the four families directly into route keys, and hands the
//     path attributes to gobgp (BGPUpdate.DecodeFromBytes and
//     ValidateUpdateMsg) for their RFC 7606 classification. Attributes are
//     interned per Decoder: a message whose attributes are byte-identical to
//     a recent one reuses the same *route.Attrs without parsing them again.
//   - Encoding builds gobgp path attributes (MP_REACH_NLRI/MP_UNREACH_NLRI
//     included) and lets gobgp serialize them; NLRI and extended
//     communities are handed to gobgp as wire bytes so that they round-trip
//     exactly. The bytes match upstream bagpipe-bgp's (ExaBGP) byte for
//     byte, see testdata/upstream and upstream_test.go.
//
// Error handling follows RFC 7606 and is reported as typed errors:
// *SessionReset (send a NOTIFICATION and close), *TreatAsWithdraw (the
// returned Update holds every NLRI of the message as a withdrawal) and
// *AttributeDiscard (the Update is usable; some attributes were dropped).
// Decode never panics: a panic inside gobgp is recovered into a
// *SessionReset.
package codec

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/bagpipe-go/bagpipe/internal/route"
)

// NOTIFICATION error codes and UPDATE Message Error subcodes (RFC 4271 §4.5,
// §6.1 and §6.3) used by SessionReset.
const (
	CodeMessageHeaderError = 1
	CodeUpdateMessageError = 3

	SubcodeConnectionNotSynchronized = 1 // header
	SubcodeBadMessageLength          = 2 // header
	SubcodeBadMessageType            = 3 // header

	SubcodeMalformedAttributeList = 1 // UPDATE
	SubcodeAttributeLengthError   = 5 // UPDATE
	SubcodeOptionalAttributeError = 9 // UPDATE
	SubcodeInvalidNetworkField    = 10
	SubcodeMalformedASPath        = 11
)

// headerLen is the BGP message header length (RFC 4271 §4.1).
const headerLen = 19

// MaxMessageLen is the largest BGP message without the RFC 8654 extended
// message capability (RFC 4271 §4.1), which bagpipe-bgp does not negotiate.
const MaxMessageLen = 4096

// Update is the content of one decoded UPDATE message.
type Update struct {
	// Advertised routes carry their interned Attrs; Source is nil (the
	// caller sets it before publishing).
	Advertised []*route.Route
	// Withdrawn routes have nil Attrs.
	Withdrawn []*route.Route
	// EndOfRIB lists the families whose End-of-RIB marker (RFC 4724 §2)
	// this message is.
	EndOfRIB []route.Family
	// Ignored counts the NLRI of families that were not negotiated or that
	// this codec does not handle (IPv4 unicast, ...). For a family whose
	// NLRI cannot be parsed here, a whole MP_REACH/MP_UNREACH attribute
	// counts as one.
	Ignored int
}

// SessionReset is the RFC 7606 "session reset" outcome: the caller must
// send a NOTIFICATION with this code, subcode and data (RFC 4271 §6) and
// close the session.
type SessionReset struct {
	Code, Subcode uint8
	Data          []byte
	Reason        string
}

// Error implements error.
func (e *SessionReset) Error() string {
	return fmt.Sprintf("BGP UPDATE error (NOTIFICATION %d/%d), the session must be reset: %s", e.Code, e.Subcode, e.Reason)
}

// TreatAsWithdraw is the RFC 7606 §2 "treat-as-withdraw" outcome: the
// Update returned with it lists every NLRI of the message that could be
// parsed as a withdrawal, and Advertised is empty. The session stays up.
type TreatAsWithdraw struct {
	Reason string
}

// Error implements error.
func (e *TreatAsWithdraw) Error() string {
	return "malformed BGP UPDATE treated as withdraw (RFC 7606): " + e.Reason
}

// AttributeDiscard is the RFC 7606 §2 "attribute discard" outcome: the
// Update is usable as returned; the listed attributes were malformed (or
// repeated) and dropped. route.Attrs.Discarded lists them too.
type AttributeDiscard struct {
	Attrs []string
}

// Error implements error.
func (e *AttributeDiscard) Error() string {
	return "BGP UPDATE attributes discarded (RFC 7606): " + strings.Join(e.Attrs, ", ")
}

// reset builds a SessionReset; data is copied (it may alias the message or
// a Decoder buffer).
func reset(code, sub uint8, data []byte, format string, args ...any) *SessionReset {
	return &SessionReset{Code: code, Subcode: sub, Data: bytes.Clone(data), Reason: fmt.Sprintf(format, args...)}
}

// supported reports whether the codec parses NLRI of family f.
func supported(f route.Family) bool {
	switch f {
	case route.FamilyEVPN, route.FamilyVPNv4, route.FamilyRTC, route.FamilyFlowVPN:
		return true
	}
	return false
}
