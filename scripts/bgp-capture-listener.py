#!/usr/bin/python3
"""Minimal passive BGP speaker that records every message it receives.

Used by scripts/capture-upstream-updates.sh to capture the exact wire bytes
sent by the upstream (Python) bagpipe-bgp daemon.  Standard library only.

It listens on 127.0.0.1:<port>, accepts one session at a time, and:
  * sends an OPEN (RFC 4271 s4.2) with AS <as>, hold time 180 s, BGP
    identifier <router-id>, and capabilities: multiprotocol (RFC 4760 s8)
    for 1/128, 25/70, 1/134, 1/132, route refresh (RFC 2918), 4-octet AS
    (RFC 6793);
  * answers the peer's OPEN with a KEEPALIVE and sends a KEEPALIVE every 30 s;
  * once the session is up, advertises RT-Constraint routes (RFC 4684 s4)
    for the RTs given with --rtc (origin AS = <as>), so that a peer using
    RT Constraint sends us its VPN routes for those RTs;
  * appends every received message, whole (marker and header included), as
    one line "<seq> <TYPE> <hex>" to --out, flushed immediately.
"""

import argparse
import socket
import struct
import sys
import threading
import time

MARKER = b"\xff" * 16
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE",
         5: "ROUTE-REFRESH"}


def msg(mtype, body):
    """Frame a BGP message (RFC 4271 s4.1)."""
    return MARKER + struct.pack("!HB", 19 + len(body), mtype) + body


def open_msg(my_as, router_id, hold):
    caps = b""
    for afi, safi in ((1, 128), (25, 70), (1, 134), (1, 132)):
        caps += struct.pack("!BBHBB", 1, 4, afi, 0, safi)  # RFC 4760 s8
    caps += struct.pack("!BB", 2, 0)                           # RFC 2918
    caps += struct.pack("!BBI", 65, 4, my_as)                  # RFC 6793
    opt = struct.pack("!BB", 2, len(caps)) + caps              # RFC 5492
    body = struct.pack("!BHH4sB", 4, my_as if my_as < 65536 else 23456,
                       hold, socket.inet_aton(router_id), len(opt)) + opt
    return msg(1, body)


def rtc_update(my_as, rt, next_hop):
    """UPDATE advertising one RTC route (RFC 4684 s4), iBGP attributes."""
    asn, nn = (int(x) for x in rt.split(":"))
    # NLRI: length 96 bits, origin AS (4), RT ext community type 0x00/0x02
    nlri = struct.pack("!BI", 96, my_as) + struct.pack("!BBHI", 0, 2, asn, nn)
    nh = socket.inet_aton(next_hop)
    mp = struct.pack("!HBB", 1, 132, len(nh)) + nh + b"\x00" + nlri
    attrs = b"\x40\x01\x01\x00"                      # ORIGIN IGP
    attrs += b"\x40\x02\x00"                         # AS_PATH empty (iBGP)
    attrs += b"\x40\x05\x04" + struct.pack("!I", 100)  # LOCAL_PREF
    attrs += struct.pack("!BBB", 0x80, 14, len(mp)) + mp  # MP_REACH_NLRI
    return msg(2, struct.pack("!H", 0) + struct.pack("!H", len(attrs)) + attrs)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return buf


class Session:
    def __init__(self, sock, args, out):
        self.sock = sock
        self.args = args
        self.out = out
        self.lock = threading.Lock()
        self.alive = True

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def keepalive_loop(self):
        while self.alive:
            time.sleep(30)
            try:
                self.send(msg(4, b""))
            except OSError:
                return

    def run(self, seq):
        self.send(open_msg(self.args.my_as, self.args.router_id, 180))
        threading.Thread(target=self.keepalive_loop, daemon=True).start()
        established = False
        while True:
            hdr = recv_exact(self.sock, 19)
            if hdr[:16] != MARKER:
                raise ValueError("bad marker: %s" % hdr.hex())
            length, mtype = struct.unpack("!HB", hdr[16:19])
            whole = hdr + recv_exact(self.sock, length - 19)
            seq += 1
            self.out.write("%d %s %s\n" % (seq, TYPES.get(mtype, str(mtype)),
                                           whole.hex()))
            self.out.flush()
            if mtype == 1:
                self.send(msg(4, b""))
            elif mtype == 4 and not established:
                established = True
                for rt in self.args.rtc:
                    self.send(rtc_update(self.args.my_as, rt,
                                         self.args.router_id))
                self.out.write("# ESTABLISHED\n")
                self.out.flush()
            elif mtype == 3:
                return seq


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=11179)
    p.add_argument("--my-as", type=int, default=64512)
    p.add_argument("--router-id", default="127.0.0.1")
    p.add_argument("--rtc", action="append", default=[],
                   help="RT to advertise in an RTC route (repeatable)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.listen, args.port))
    srv.listen(1)
    seq = 0
    with open(args.out, "a") as out:
        while True:
            sock, peer = srv.accept()
            out.write("# CONNECT %s:%d\n" % peer)
            out.flush()
            sess = Session(sock, args, out)
            try:
                seq = sess.run(seq)
            except (OSError, ValueError, ConnectionError) as e:
                out.write("# SESSION END: %s\n" % e)
                out.flush()
            sess.alive = False
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
