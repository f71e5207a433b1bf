package scale

import (
	"fmt"
	"net/netip"

	"github.com/bagpipe-go/bagpipe/internal/codec"
	"github.com/bagpipe-go/bagpipe/internal/route"
)

// Instance is one E-VPN instance created on the daemon under test.
type Instance struct {
	// ID is the vpn_instance_id.
	ID string
	// RT is its import and export route target.
	RT route.RT
	// VNI is its forced VNI.
	VNI uint32
}

// Instances returns m instances "s<i>-scale" with route targets
// 64512:(1000+i) and VNIs 5000+i. Ids differ in their first 8 characters,
// which upstream's linux driver keeps in interface names (reference §11).
func Instances(m int) []Instance {
	out := make([]Instance, m)
	for i := range out {
		out[i] = Instance{ID: fmt.Sprintf("s%d-scale", i), RT: route.NewRT(AS, uint32(1000+i)), VNI: uint32(5000 + i)}
	}
	return out
}

// RouteMAC returns the MAC of injected route j: 0e:00 then j on 32 bits
// (locally administered unicast, never the daemon's own ports' 02:...).
func RouteMAC(j int) route.MAC {
	return route.MAC{0x0e, 0, byte(j >> 24), byte(j >> 16), byte(j >> 8), byte(j)}
}

// RouteIP returns the IP of injected route j: 100.64.0.0 + j.
func RouteIP(j int) netip.Addr {
	v := uint32(100)<<24 | uint32(64)<<16 + uint32(j)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Type2Routes builds n E-VPN MAC/IP advertisement routes (RFC 7432 §7.2)
// spread round-robin over insts, as a remote VTEP would advertise them: RD
// <vtep>:<instance index+1>, Ethernet tag 0, label = the instance's VNI
// (RFC 8365 §5.1.3), next hop vtep, the instance's RT and the VXLAN
// encapsulation community (RFC 8365 §5.1.3, RFC 5512 §4.5).
func Type2Routes(n int, insts []Instance, vtep netip.Addr) []*route.Route {
	attrs := make([]*route.Attrs, len(insts))
	rds := make([]route.RD, len(insts))
	for i, in := range insts {
		attrs[i] = &route.Attrs{NextHop: vtep, HasLocalPref: true, LocalPref: 100,
			RTs: []route.RT{in.RT}, Encaps: []route.Encap{route.EncapVXLAN}}
		rds[i] = route.NewRDIPv4(vtep, uint16(i+1))
	}
	out := make([]*route.Route, n)
	for j := range out {
		i := j % len(insts)
		out[j] = &route.Route{Family: route.FamilyEVPN, Label: insts[i].VNI,
			Key: route.EVPNMACIPKey(rds[i], 0, RouteMAC(j), RouteIP(j)), Attrs: attrs[i]}
	}
	return out
}

// EncodeAdvertise encodes routes as UPDATEs: one route per message (as a
// route reflector relaying E-VPN routes does) or, when pack is set, as many
// routes of one instance per message as fit.
func EncodeAdvertise(routes []*route.Route, pack bool) ([][]byte, error) {
	return encode(routes, pack, codec.EncodeUpdate, codec.EncodeUpdates)
}

// EncodeWithdraw encodes the withdrawal of routes, one or several per
// message like EncodeAdvertise.
func EncodeWithdraw(routes []*route.Route, pack bool) ([][]byte, error) {
	return encode(routes, pack, codec.EncodeWithdraw, codec.EncodeWithdraws)
}

func encode(routes []*route.Route, pack bool, one func([]*route.Route) ([]byte, error), many func([]*route.Route) ([][]byte, error)) ([][]byte, error) {
	if pack {
		// Group by instance (attributes) so each message carries many NLRI.
		byAttrs := map[*route.Attrs][]*route.Route{}
		var order []*route.Attrs
		for _, r := range routes {
			if _, ok := byAttrs[r.Attrs]; !ok {
				order = append(order, r.Attrs)
			}
			byAttrs[r.Attrs] = append(byAttrs[r.Attrs], r)
		}
		var out [][]byte
		for _, a := range order {
			msgs, err := many(byAttrs[a])
			if err != nil {
				return nil, fmt.Errorf("encoding packed UPDATEs: %w", err)
			}
			out = append(out, msgs...)
		}
		return out, nil
	}
	out := make([][]byte, len(routes))
	one1 := make([]*route.Route, 1)
	for i, r := range routes {
		one1[0] = r
		m, err := one(one1)
		if err != nil {
			return nil, fmt.Errorf("encoding the UPDATE of %s: %w", r, err)
		}
		out[i] = m
	}
	return out, nil
}

// VPNv4Routes builds n VPNv4 routes (RFC 4364 §4.3.4) spread round-robin
// over insts, as a remote PE would advertise them: distinct /32 prefixes
// RouteIP(j), RD <pe>:<instance index+1>, label = the instance's VNI (the
// VXLAN network identifier, RFC 8365 §5.1.3 applied to IP VPN as upstream
// does), next hop pe, the instance's RT and the VXLAN encapsulation
// community (RFC 5512 §4.5) so that a VXLAN dataplane imports them.
func VPNv4Routes(n int, insts []Instance, pe netip.Addr) []*route.Route {
	attrs := make([]*route.Attrs, len(insts))
	rds := make([]route.RD, len(insts))
	for i, in := range insts {
		attrs[i] = &route.Attrs{NextHop: pe, HasLocalPref: true, LocalPref: 100,
			RTs: []route.RT{in.RT}, Encaps: []route.Encap{route.EncapVXLAN}}
		rds[i] = route.NewRDIPv4(pe, uint16(i+1))
	}
	out := make([]*route.Route, n)
	for j := range out {
		i := j % len(insts)
		out[j] = &route.Route{Family: route.FamilyVPNv4, Label: insts[i].VNI,
			Key: route.VPNv4Key(rds[i], netip.PrefixFrom(RouteIP(j), 32)), Attrs: attrs[i]}
	}
	return out
}
