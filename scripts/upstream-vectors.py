#!/usr/bin/python3
"""Split and decode the BGP messages captured from upstream bagpipe-bgp.

  upstream-vectors.py extract SESSION_LOG OUTDIR
      Reads the log written by bgp-capture-listener.py (with "# STEP" lines
      added by capture-upstream-updates.sh), classifies each UPDATE of each
      step and writes one OUTDIR/<name>.hex per expected message.  Fails if a
      step did not produce exactly the expected messages.

  upstream-vectors.py decode FILE.hex...
      Prints a field-by-field decoding of each message (RFC 4271, RFC 4760,
      RFC 7432, RFC 4364, RFC 4684, RFC 6514, RFC 5512).

Standard library only.
"""

import ipaddress
import json
import os
import struct
import sys

# Expected messages per step: classification key -> output file name.
# A key is "<family>[:<detail>]<+|->", see classify().
STEPS = {
    "evpn-attach-macip": {
        "evpn3+": "evpn-type3",
        "evpn2:ip+": "evpn-type2-macip",
        "rtc:64512:100+": "rtc-64512-100",
    },
    "evpn-attach-maconly": {"evpn2:noip+": "evpn-type2-maconly"},
    "evpn-attach-lp200-lb3": {"evpn2:ip+": "evpn-type2-localpref200-lb3"},
    "ipvpn-attach": {
        "vpnv4+": "vpnv4",
        "rtc:64512:200+": "rtc-64512-200",
    },
    "ipvpn-detach": {
        "vpnv4-": "vpnv4-withdraw",
        "rtc:64512:200-": "rtc-withdraw-64512-200",
    },
    "evpn-detach-maconly": {"evpn2:noip-": "evpn-type2-maconly-withdraw"},
    "evpn-detach-lp200-lb3": {
        "evpn2:ip-": "evpn-type2-localpref200-lb3-withdraw"},
    "evpn-detach-macip-last": {
        "evpn2:ip-": "evpn-type2-withdraw",
        "evpn3-": "evpn-type3-withdraw",
        "rtc:64512:100-": "rtc-withdraw",
    },
    "ipvpn-attach-lp200-lb3": {
        "vpnv4+": "vpnv4-localpref200-lb3",
        "rtc:64512:300+": "rtc-64512-300",
    },
    "ipvpn-attach-prefix": {"vpnv4+": "vpnv4-prefix24-localpref150"},
    "evpn-attach-autovni": {
        "evpn3+": "evpn-autovni-type3",
        "evpn2:ip+": "evpn-autovni-type2",
        "rtc:64512:400+": "rtc-64512-400",
    },
    "evpn-reattach-lp300": {
        "evpn2:ip+": "evpn-autovni-type2-refresh-localpref300"},
}

ATTR_NAMES = {1: "ORIGIN", 2: "AS_PATH", 3: "NEXT_HOP", 4: "MED",
              5: "LOCAL_PREF", 8: "COMMUNITIES", 14: "MP_REACH_NLRI",
              15: "MP_UNREACH_NLRI", 16: "EXTENDED_COMMUNITIES",
              22: "PMSI_TUNNEL"}


def parse_attrs(data):
    """Yield (flags, type, value, raw) for each path attribute (RFC 4271 4.3)."""
    i = 0
    while i < len(data):
        flags, typ = data[i], data[i + 1]
        if flags & 0x10:
            (alen,) = struct.unpack("!H", data[i + 2:i + 4])
            hl = 4
        else:
            alen, hl = data[i + 2], 3
        yield flags, typ, data[i + hl:i + hl + alen], data[i:i + hl + alen]
        i += hl + alen


def parse_update(msg):
    assert msg[:16] == b"\xff" * 16, "bad marker"
    length, mtype = struct.unpack("!HB", msg[16:19])
    assert length == len(msg) and mtype == 2, "not a whole UPDATE"
    (wlen,) = struct.unpack("!H", msg[19:21])
    (alen,) = struct.unpack("!H", msg[21 + wlen:23 + wlen])
    attrs = list(parse_attrs(msg[23 + wlen:23 + wlen + alen]))
    return wlen, attrs, msg[23 + wlen + alen:]


def fmt_rd(b):
    t = struct.unpack("!H", b[:2])[0]
    if t == 0:
        return "type0 %d:%d" % struct.unpack("!HI", b[2:8])
    if t == 1:
        return "type1 %s:%d" % (ipaddress.IPv4Address(b[2:6]),
                                struct.unpack("!H", b[6:8])[0])
    if t == 2:
        return "type2 %d:%d" % struct.unpack("!IH", b[2:8])
    return "unknown " + b.hex()


def fmt_ec(b):
    t, st = b[0], b[1]
    if (t, st) == (0x00, 0x02):
        return "route-target %d:%d" % struct.unpack("!HI", b[2:8])
    if (t, st) == (0x03, 0x0C):
        tt = struct.unpack("!H", b[6:8])[0]
        name = {2: "GRE", 8: "VXLAN", 10: "MPLS", 13: "MPLS-in-UDP"}.get(
            tt, "?")
        return "encapsulation tunnel-type %d (%s), reserved %s" % (
            tt, name, b[2:6].hex())
    if (t, st) == (0x03, 0x14):
        return "consistent-hash-sort-order %d, reserved %s" % (
            struct.unpack("!I", b[2:6])[0], b[6:8].hex())
    return "unknown type 0x%02x subtype 0x%02x value %s" % (t, st, b[2:].hex())


def split_nlri(afi, safi, data):
    """Split an NLRI field into (raw, description) items."""
    out = []
    i = 0
    while i < len(data):
        if (afi, safi) == (25, 70):  # RFC 7432 s7
            rtype, rlen = data[i], data[i + 1]
            raw = data[i:i + 2 + rlen]
            out.append((raw, decode_evpn(rtype, raw[2:])))
            i += 2 + rlen
        else:  # length in bits, RFC 4760 s5 / RFC 4684 s4 / RFC 3107
            bits = data[i]
            n = (bits + 7) // 8
            raw = data[i:i + 1 + n]
            out.append((raw, decode_prefix(afi, safi, bits, raw[1:])))
            i += 1 + n
    return out


def decode_evpn(rtype, b):
    d = ["route type %d, length %d" % (rtype, len(b))]
    if rtype == 2:
        d.append("RD %s [%s]" % (b[0:8].hex(), fmt_rd(b[0:8])))
        d.append("ESI %s" % b[8:18].hex())
        d.append("Ethernet tag %s (%d)" % (b[18:22].hex(),
                                           struct.unpack("!I", b[18:22])[0]))
        d.append("MAC length %d, MAC %s" % (
            b[22], ":".join("%02x" % x for x in b[23:29])))
        iplen = b[29]
        ip = b[30:30 + iplen // 8]
        d.append("IP length %d%s" % (
            iplen, (", IP %s" % ipaddress.ip_address(ip)) if ip else ""))
        rest = b[30 + iplen // 8:]
        d.append("label1 %s (raw %d; as MPLS label %d, S=%d)" % (
            rest[:3].hex(), int.from_bytes(rest[:3], "big"),
            int.from_bytes(rest[:3], "big") >> 4, rest[2] & 1))
        if len(rest) > 3:
            d.append("label2 %s" % rest[3:].hex())
    elif rtype == 3:
        d.append("RD %s [%s]" % (b[0:8].hex(), fmt_rd(b[0:8])))
        d.append("Ethernet tag %s (%d)" % (b[8:12].hex(),
                                           struct.unpack("!I", b[8:12])[0]))
        iplen = b[12]
        d.append("originating IP length %d, IP %s" % (
            iplen, ipaddress.ip_address(b[13:13 + iplen // 8])))
    else:
        d.append("value %s" % b.hex())
    return d


def decode_prefix(afi, safi, bits, b):
    d = ["length %d bits" % bits]
    if (afi, safi) == (1, 132):  # RFC 4684 s4
        if bits == 0:
            d.append("default (wildcard) RTC route")
        else:
            d.append("origin AS %s (%d)" % (b[:4].hex(),
                                            struct.unpack("!I", b[:4])[0]))
            d.append("RT %s [%s]" % (b[4:12].hex(), fmt_ec(b[4:12])))
    elif (afi, safi) == (1, 128):  # RFC 4364 s4.3.4 + RFC 3107 s3
        lab = int.from_bytes(b[:3], "big")
        d.append("label field %s (label %d, S=%d%s)" % (
            b[:3].hex(), lab >> 4, lab & 1,
            ", 0x800000 = withdraw compat" if lab == 0x800000 else ""))
        d.append("RD %s [%s]" % (b[3:11].hex(), fmt_rd(b[3:11])))
        pfx = b[11:] + b"\x00" * (4 - len(b[11:]))
        d.append("prefix %s/%d" % (ipaddress.IPv4Address(pfx), bits - 88))
    else:
        d.append("value %s" % b.hex())
    return d


def classify(msg):
    """Return the classification key of one UPDATE (see STEPS)."""
    _, attrs, _ = parse_update(msg)
    for _, typ, val, _ in attrs:
        if typ in (14, 15):
            afi, safi = struct.unpack("!HB", val[:3])
            if typ == 14:
                nhlen = val[3]
                nlri = val[4 + nhlen + 1:]
                sign = "+"
            else:
                nlri = val[3:]
                sign = "-"
            items = split_nlri(afi, safi, nlri)
            assert len(items) == 1, "expected one NLRI, got %d" % len(items)
            raw = items[0][0]
            if (afi, safi) == (25, 70):
                if raw[0] == 3:
                    return "evpn3" + sign
                iplen = raw[2 + 29]
                return "evpn2:%s%s" % ("ip" if iplen else "noip", sign)
            if (afi, safi) == (1, 132):
                asn, nn = struct.unpack("!HI", raw[7:13])
                return "rtc:%d:%d%s" % (asn, nn, sign)
            if (afi, safi) == (1, 128):
                return "vpnv4" + sign
            return "%d/%d%s" % (afi, safi, sign)
    return "no-mp-attribute"


def extract(log, outdir):
    steps = {}
    cur = None
    opens = []
    keepalives = []
    for line in open(log):
        line = line.rstrip("\n")
        if line.startswith("# STEP "):
            _, _, name, body = line.split(" ", 3)
            cur = name
            steps[cur] = {"body": body, "updates": []}
            continue
        if line.startswith("#") or not line:
            continue
        _, mtype, hexs = line.split(" ")
        if mtype == "OPEN":
            opens.append(hexs)
        elif mtype == "KEEPALIVE":
            keepalives.append(hexs)
        elif mtype == "UPDATE" and cur is not None:
            steps[cur]["updates"].append(bytes.fromhex(hexs))
    os.makedirs(outdir, exist_ok=True)
    assert len(opens) == 1, "expected one OPEN, got %d" % len(opens)
    with open(os.path.join(outdir, "open.hex"), "w") as f:
        f.write("# OPEN sent by upstream bagpipe-bgp: local_address=127.0.0.10"
                " my_as=64512 enable_rtc=True, dummy drivers\n")
        f.write(opens[0] + "\n")
    with open(os.path.join(outdir, "keepalive.hex"), "w") as f:
        f.write("# KEEPALIVE sent by upstream bagpipe-bgp\n")
        f.write(keepalives[0] + "\n")
    ok = True
    for step, expected in STEPS.items():
        got = steps.get(step)
        if got is None:
            print("step %s: missing" % step, file=sys.stderr)
            ok = False
            continue
        keys = [classify(m) for m in got["updates"]]
        if sorted(keys) != sorted(expected):
            print("step %s: got %s, expected %s" % (
                step, keys, sorted(expected)), file=sys.stderr)
            ok = False
            continue
        for k, m in zip(keys, got["updates"]):
            name = expected[k]
            with open(os.path.join(outdir, name + ".hex"), "w") as f:
                f.write("# step %s (key %s): %s\n" % (step, k, got["body"]))
                f.write(m.hex() + "\n")
            print("%-45s %s" % (name + ".hex", k))
    return 0 if ok else 1


def decode_one(path):
    hexs = "".join(l.strip() for l in open(path) if not l.startswith("#"))
    m = bytes.fromhex(hexs)
    out = ["%s (%d bytes)" % (os.path.basename(path), len(m))]
    length, mtype = struct.unpack("!HB", m[16:19])
    out.append("  header: marker ff*16, length %d, type %d" % (length, mtype))
    if mtype == 4:
        out.append("  (KEEPALIVE: header only)")
        return "\n".join(out)
    if mtype == 1:
        ver, asn, hold, rid, olen = struct.unpack("!BHH4sB", m[19:29])
        out.append("  version %d, my AS %d, hold time %d, BGP id %s, opt len %d"
                   % (ver, asn, hold, ipaddress.IPv4Address(rid), olen))
        i = 29
        while i < 29 + olen:
            ptype, plen = m[i], m[i + 1]
            p = m[i + 2:i + 2 + plen]
            out.append("  opt param type %d len %d: %s" % (ptype, plen,
                                                           p.hex()))
            j = 0
            while ptype == 2 and j < len(p):
                code, clen = p[j], p[j + 1]
                cv = p[j + 2:j + 2 + clen]
                if code == 1:
                    afi, _, safi = struct.unpack("!HBB", cv)
                    out.append("    capability 1 (multiprotocol) AFI %d SAFI %d"
                               % (afi, safi))
                else:
                    out.append("    capability %d len %d: %s" % (code, clen,
                                                                 cv.hex()))
                j += 2 + clen
            i += 2 + plen
        return "\n".join(out)
    wlen, attrs, nlri = parse_update(m)
    out.append("  withdrawn routes length %d, total path attribute length %d"
               % (wlen, sum(len(a[3]) for a in attrs)))
    for pos, (flags, typ, val, raw) in enumerate(attrs, 1):
        hdr = raw[:len(raw) - len(val)]
        out.append("  attr #%d: %s = flags 0x%02x type %d (%s) len %d" % (
            pos, hdr.hex(), flags, typ, ATTR_NAMES.get(typ, "?"), len(val)))
        if typ == 1:
            out.append("      %s (%s)" % (val.hex(), {0: "IGP", 1: "EGP",
                                                       2: "INCOMPLETE"}[val[0]]))
        elif typ == 2:
            out.append("      %s%s" % (val.hex(), "(empty)" if not val else ""))
        elif typ == 5:
            out.append("      %s (%d)" % (val.hex(),
                                          struct.unpack("!I", val)[0]))
        elif typ == 16:
            for k in range(0, len(val), 8):
                out.append("      %s  %s" % (val[k:k + 8].hex(),
                                             fmt_ec(val[k:k + 8])))
        elif typ == 22:  # RFC 6514 s5
            out.append("      flags %02x, tunnel type %d, label %s (raw %d), "
                       "tunnel id %s" % (
                           val[0], val[1], val[2:5].hex(),
                           int.from_bytes(val[2:5], "big"),
                           ipaddress.ip_address(val[5:])))
        elif typ in (14, 15):
            afi, safi = struct.unpack("!HB", val[:3])
            out.append("      AFI %d SAFI %d" % (afi, safi))
            if typ == 14:
                nhlen = val[3]
                nh = val[4:4 + nhlen]
                out.append("      next hop length %d: %s (%s)" % (
                    nhlen, nh.hex(), ipaddress.ip_address(nh)
                    if nhlen in (4, 16) else "?"))
                out.append("      reserved %02x" % val[4 + nhlen])
                items = split_nlri(afi, safi, val[5 + nhlen:])
            else:
                items = split_nlri(afi, safi, val[3:])
            for raw_n, desc in items:
                out.append("      NLRI %s" % raw_n.hex())
                for dline in desc:
                    out.append("        " + dline)
        else:
            out.append("      %s" % val.hex())
    if nlri:
        out.append("  IPv4 NLRI: %s" % nlri.hex())
    return "\n".join(out)


def main(argv):
    if len(argv) >= 4 and argv[1] == "extract":
        return extract(argv[2], argv[3])
    if len(argv) >= 3 and argv[1] == "decode":
        print("\n\n".join(decode_one(p) for p in argv[2:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
