package veth

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
)

// IfNameMax is the longest Linux interface name (IFNAMSIZ - 1).
const IfNameMax = 15

// Prefixes of the short names (see Names). They cannot be mistaken for
// upstream's names, which start with "evpn" or "ipvpn" and a digit.
const (
	shortEVIPrefix = "e2i-"
	shortVRFPrefix = "i2e-"
)

// nameEncoding is the lower-case base32 alphabet the linux E-VPN driver
// names its devices with (internal/dataplane/linux): valid in interface
// names, no padding.
var nameEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Names returns the interface names of the veth pair that links E-VPN
// instance eviID to IP VPN instance vrfID (internal instance ids,
// reference §5.5): upstream's "evpn<evi>-ipvpn<vrf>" (EVI side) and
// "ipvpn<vrf>-evpn<evi>" (VRF side) when they fit in IfNameMax characters
// (both have the same length), else "e2i-<h>" and "i2e-<h>", where h is
// the first 11 characters of the base32 SHA-256 of the upstream EVI-side
// name (55 bits: deterministic, and distinct for distinct id pairs with
// overwhelming probability). The two names always differ.
func Names(eviID, vrfID uint32) (eviIf, vrfIf string) {
	e, v := strconv.FormatUint(uint64(eviID), 10), strconv.FormatUint(uint64(vrfID), 10)
	eviIf, vrfIf = "evpn"+e+"-ipvpn"+v, "ipvpn"+v+"-evpn"+e
	if len(eviIf) <= IfNameMax {
		return eviIf, vrfIf
	}
	sum := sha256.Sum256([]byte(eviIf))
	h := nameEncoding.EncodeToString(sum[:])[:IfNameMax-len(shortEVIPrefix)]
	return shortEVIPrefix + h, shortVRFPrefix + h
}
