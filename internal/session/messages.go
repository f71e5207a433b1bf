package session

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/bagpipe-go/bagpipe/internal/route"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// keepaliveMsg is the 19-byte KEEPALIVE (RFC 4271 §4.4); never modified.
var keepaliveMsg = mustSerialize(bgp.NewBGPKeepAliveMessage())

func mustSerialize(m *bgp.BGPMessage) []byte {
	b, err := m.Serialize()
	if err != nil {
		panic(fmt.Sprintf("session: serializing a fixed BGP message: %v", err))
	}
	return b
}

// routeRefreshMessage builds a ROUTE-REFRESH for f (RFC 2918 §3).
func routeRefreshMessage(f route.Family) []byte {
	return mustSerialize(bgp.NewBGPRouteRefreshMessage(f.AFI(), 0, f.SAFI()))
}

// buildOpen builds our OPEN (RFC 4271 §4.2) with the capabilities (RFC 5492)
// multiprotocol (RFC 4760) per family, route refresh (RFC 2918) and 4-octet
// AS (RFC 6793), all in one Capabilities optional parameter.
func (f *FSM) buildOpen() ([]byte, error) {
	var caps []bgp.ParameterCapabilityInterface
	for _, fam := range f.families {
		caps = append(caps, bgp.NewCapMultiProtocol(bgp.NewFamily(fam.AFI(), fam.SAFI())))
	}
	caps = append(caps, bgp.NewCapRouteRefresh(), bgp.NewCapFourOctetASNumber(f.cfg.LocalAS))
	caps = append(caps, f.gracefulRestartCapabilities()...)
	// RFC 6793 §4.1: an AS that does not fit in 2 octets is sent as AS_TRANS.
	as2 := uint16(bgp.AS_TRANS)
	if f.cfg.LocalAS <= 0xffff {
		as2 = uint16(f.cfg.LocalAS)
	}
	m, err := bgp.NewBGPOpenMessage(as2, uint16(f.cfg.HoldTime/time.Second), f.cfg.RouterID,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return nil, fmt.Errorf("session: building OPEN: %w", err)
	}
	b, err := m.Serialize()
	if err != nil {
		return nil, fmt.Errorf("session: building OPEN (too many families?): %w", err)
	}
	return b, nil
}

// gracefulRestartCapabilities is the hook for the RFC 4724 graceful restart
// capability (code 64). Graceful restart is not implemented yet (NewFSM
// rejects Config.GracefulRestart), so it adds nothing; when it is, build
// bgp.NewCapGracefulRestart from f.cfg.GracefulRestart here, record the
// peer's capability in checkOpen, and keep routes stale in the upper layer.
func (f *FSM) gracefulRestartCapabilities() []bgp.ParameterCapabilityInterface {
	return nil
}

// checkOpen validates the peer's OPEN (RFC 4271 §6.2) and negotiates the
// session parameters, or returns the NOTIFICATION to send.
func (f *FSM) checkOpen(o *bgp.BGPOpen) (Negotiated, *Notification) {
	openErr := func(sub uint8, data []byte) (Negotiated, *Notification) {
		return Negotiated{}, &Notification{Code: bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, Subcode: sub, Data: data}
	}
	// RFC 4271 §6.2: the data of Unsupported Version Number is the largest
	// locally supported version below the bid (or our smallest if higher):
	// always 4 here.
	if o.Version != 4 {
		return openErr(bgp.BGP_ERROR_SUB_UNSUPPORTED_VERSION_NUMBER, []byte{0x00, 0x04})
	}
	var (
		peerAS     = uint32(o.MyAS)
		as4        bool
		rr         bool
		peerFamily []route.Family
	)
	for _, p := range o.OptParams {
		pc, ok := p.(*bgp.OptionParameterCapability)
		if !ok {
			// RFC 4271 §6.2: an optional parameter we do not recognize.
			return openErr(bgp.BGP_ERROR_SUB_UNSUPPORTED_OPTIONAL_PARAMETER, nil)
		}
		for _, c := range pc.Capability {
			switch c := c.(type) {
			case *bgp.CapFourOctetASNumber:
				as4, peerAS = true, c.CapValue // RFC 6793 §4.1
			case *bgp.CapRouteRefresh, *bgp.CapRouteRefreshCisco:
				rr = true
			case *bgp.CapMultiProtocol:
				peerFamily = append(peerFamily, route.NewFamily(c.CapValue.Afi(), c.CapValue.Safi()))
			}
			// RFC 5492 §3: other capabilities are ignored.
		}
	}
	if peerAS != f.cfg.PeerAS {
		return openErr(bgp.BGP_ERROR_SUB_BAD_PEER_AS, nil)
	}
	// RFC 4271 §6.2: a hold time of one or two seconds MUST be rejected; 0
	// and anything from 3 s are fine (upstream rejected ≤ 30 s).
	if o.HoldTime == 1 || o.HoldTime == 2 {
		return openErr(bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME, nil)
	}
	// RFC 6286 §2.2: a zero identifier, or ours from an internal peer, is bad.
	if !o.ID.Is4() || o.ID.IsUnspecified() || (peerAS == f.cfg.LocalAS && o.ID == f.cfg.RouterID) {
		return openErr(bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER, nil)
	}
	n := Negotiated{
		HoldTime:     min(f.cfg.HoldTime, time.Duration(o.HoldTime)*time.Second),
		PeerAS:       peerAS,
		PeerID:       o.ID,
		FourOctetAS:  as4,
		RouteRefresh: rr,
	}
	n.KeepaliveInterval = n.HoldTime / 3
	for _, fam := range f.families {
		if slices.Contains(peerFamily, fam) {
			n.Families = append(n.Families, fam)
		} else {
			n.MissingFamilies = append(n.MissingFamilies, fam)
		}
	}
	n.RTC = f.cfg.EnableRTC && n.HasFamily(route.FamilyRTC)
	return n, nil
}

// describeMessage renders a whole BGP message briefly for logs and tests.
func describeMessage(b []byte) string {
	if len(b) < bgp.BGP_HEADER_LENGTH {
		return fmt.Sprintf("short message %x", b)
	}
	body := b[bgp.BGP_HEADER_LENGTH:]
	switch b[18] {
	case bgp.BGP_MSG_OPEN:
		return fmt.Sprintf("OPEN %x", body)
	case bgp.BGP_MSG_UPDATE:
		return fmt.Sprintf("UPDATE %x", body)
	case bgp.BGP_MSG_NOTIFICATION:
		if len(body) >= 2 {
			n := Notification{Code: body[0], Subcode: body[1], Data: body[2:]}
			return n.Error()
		}
	case bgp.BGP_MSG_KEEPALIVE:
		return "KEEPALIVE"
	case bgp.BGP_MSG_ROUTE_REFRESH:
		if len(body) == 4 {
			return "ROUTE-REFRESH " + route.NewFamily(binary.BigEndian.Uint16(body), body[3]).String()
		}
	}
	return fmt.Sprintf("message type %d %x", b[18], body)
}
