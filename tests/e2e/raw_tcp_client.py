#!/usr/bin/env python3
"""Seeded adversarial TCP streams, segment by segment, for the executed-versus-decided
oracle: a small TCP sender on a raw socket, so that the client chooses every sequence
number, flag and copy that the appliance and the server see.

    raw_tcp_client.py IFACE SRC_IP DST_IP:PORT DST_MAC STREAMS SEED [KIND,KIND...]

IFACE is the client host's link; SRC_IP an address no host owns (the client host's
kernel drops the replies to it instead of resetting them; the server host reaches it
by a static neighbour entry to IFACE's MAC); DST_MAC the server's MAC.

Each stream is one connection: a handshake, then the stream's bytes in segments sent
in the order and with the copies its kind chooses, then a retransmission loop (every
60 ms, the unacknowledged bytes in their original segments) until the server
acknowledged everything or the connection was reset (3 s at most), then the responses are read and
the connection reset. The kinds (KINDS below) aim at the limited route /local with the
users of DLB_ADVERSARIAL_USERS (default u0..u3): reordered segments, duplicates with
conflicting bytes (the route or the user), SYN, FIN and RST injected in and out of the
window, heads after a gap that start with CRLF, pipelined heads whose later segment
arrives first, bodies made of a victim's heads sent ahead of their head, and
exhaustion: stalled half-heads holding the reassembly buffers and idle connections
filling the flow table while the other kinds run. The user "victim" never sends a head
of its own. Prints one line per stream (kind, user, the status lines received, or "reset", or
"unanswered" when its bytes were neither acknowledged nor answered, or "none"), then
"streams sent: N". DLB_RAW_KINDS picks kinds; DLB_RAW_HOLDERS and DLB_RAW_IDLE size the
exhaustion (20 and 30); DLB_RAW_DEBUG=1 prints each reset received, 2 every segment.
"""
import os
import random
import re
import select
import socket
import struct
import sys
import time

USERS = os.environ.get("DLB_ADVERSARIAL_USERS", "u0,u1,u2,u3").split(",")
ETH_P_IP = 0x0800
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MOD = 1 << 32
STATUS = re.compile(rb"HTTP/1\.1 \d\d\d[^\r]*")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text):
    return bytes(int(x, 16) for x in text.split(":"))


class Link:
    """Frames of one source address on a raw packet socket, demultiplexed by port."""

    def __init__(self, iface, src_ip, dst_ip, dst_mac):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sock.bind((iface, ETH_P_IP))
        with open(f"/sys/class/net/{iface}/address") as f:
            self.src_mac = mac(f.read().strip())
        self.dst_mac = mac(dst_mac)
        self.src = socket.inet_aton(src_ip)
        self.dst = socket.inet_aton(dst_ip)
        self.conns = {}
        self.ip_id = 1

    def send(self, sport, dport, seq, ack, flags, payload=b"", window=65535, opts=b""):
        off = (20 + len(opts)) // 4
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq % MOD, ack % MOD, off << 4, flags, window, 0, 0) + opts
        pseudo = self.src + self.dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ip_id, 0x4000, 64, 6, 0,
                         self.src, self.dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        self.sock.send(self.dst_mac + self.src_mac + struct.pack("!H", ETH_P_IP) + ip + tcp + payload)

    def poll(self, timeout, until=None):
        """Hands every segment that arrives within `timeout` to its connection; returns
        early once until() holds."""
        end = time.monotonic() + timeout
        while True:
            if until is not None and until():
                return
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return
            while True:
                try:
                    frame, addr = self.sock.recvfrom(65536, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] == socket.PACKET_OUTGOING or len(frame) < 34:
                    continue
                ip = frame[14:]
                if ip[9] != 6 or ip[16:20] != self.src or ip[12:16] != self.dst:
                    continue
                ihl = (ip[0] & 15) * 4
                total = struct.unpack("!H", ip[2:4])[0]
                tcp = ip[ihl:total]
                sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", tcp[:14])
                conn = self.conns.get(dport)
                if conn is not None:
                    conn.segment(seq, ack, flags, tcp[(off >> 4) * 4:])


class Conn:
    def __init__(self, link, dport, rng):
        self.link, self.dport, self.rng = link, dport, rng
        self.sport = rng.randint(20000, 60000)
        while self.sport in link.conns:
            self.sport = rng.randint(20000, 60000)
        link.conns[self.sport] = self
        self.isn = rng.getrandbits(32)
        self.una = self.isn  # the first sequence number not acknowledged
        self.rcv = None  # the next sequence number expected from the server
        self.received = bytearray()
        self.reset = False
        self.fin = False  # the server closed its side
        self.data = b""  # the stream's bytes as a well-behaved TCP would retransmit them
        self.pieces = []  # (offset, length) of the segments as first cut

    def segment(self, seq, ack, flags, payload):
        if os.environ.get("DLB_RAW_DEBUG") == "2":
            print(f"  <- {self.sport} flags={flags:#x} seq={(seq - (self.rcv or seq)) % MOD} "
                  f"ack={(ack - self.isn) % MOD} len={len(payload)} {bytes(payload[:40])!r}", flush=True)
        if flags & RST:
            if os.environ.get("DLB_RAW_DEBUG"):
                print(f"  rst seq={(seq - (self.rcv or 0)) % MOD} ack={(ack - self.isn) % MOD} "
                      f"received={bytes(self.received)!r}", flush=True)
            self.reset = True
            return
        if flags & SYN and flags & ACK and self.rcv is None:
            self.rcv = (seq + 1) % MOD
        if flags & ACK and 0 < (ack - self.una) % MOD < (1 << 30):
            self.una = ack
        if self.rcv is None:
            return
        if payload and seq == self.rcv:
            self.received += payload
            self.rcv = (self.rcv + len(payload)) % MOD
        if flags & FIN and (seq + len(payload)) % MOD == self.rcv:
            self.rcv = (self.rcv + 1) % MOD
            self.fin = True
        if payload or flags & FIN:
            self.link.send(self.sport, self.dport, self.una, self.rcv, ACK)

    def nxt_seq(self):
        return (self.isn + 1 + len(self.data)) % MOD if self.data else (self.isn + 1) % MOD

    def connect(self):
        for _ in range(3):
            self.link.send(self.sport, self.dport, self.isn, 0, SYN, opts=struct.pack("!BBH", 2, 4, 1460))
            self.link.poll(0.25, lambda: self.rcv is not None or self.reset)
            if self.rcv is not None or self.reset:
                break
        if self.rcv is None:
            return False
        self.una = (self.isn + 1) % MOD
        self.link.send(self.sport, self.dport, self.una, self.rcv, ACK)
        return True

    def seq_at(self, offset):
        return (self.isn + 1 + offset) % MOD

    def send_data(self, offset, payload, flags=PSH | ACK):
        self.link.send(self.sport, self.dport, self.seq_at(offset), self.rcv, flags, payload)

    def send_piece(self, i, payload=None):
        off, n = self.pieces[i]
        self.send_data(off, self.data[off:off + n] if payload is None else payload)

    def acked(self):
        return (self.una - self.isn - 1) % MOD

    def deliver(self, timeout=3.0):
        """Retransmits the unacknowledged pieces until all are acknowledged."""
        end = time.monotonic() + timeout
        while not self.reset and self.acked() < len(self.data) and time.monotonic() < end:
            self.link.poll(0.06, lambda: self.reset or self.acked() >= len(self.data))
            done = self.acked()
            for i, (off, n) in enumerate(self.pieces):
                if off + n > done and not self.reset:
                    self.send_piece(i)
        return self.acked() >= len(self.data)

    def responses(self, want, timeout=1.5):
        end = time.monotonic() + timeout
        def done():
            return self.reset or self.fin or len(STATUS.findall(self.received)) >= want

        while not done() and time.monotonic() < end:
            self.link.poll(0.05, done)
        return [m.decode(errors="replace") for m in STATUS.findall(self.received)]

    def close(self):
        if not self.reset and self.rcv is not None:
            self.link.send(self.sport, self.dport, self.nxt_seq(), self.rcv, RST | ACK)
        self.link.conns.pop(self.sport, None)


def head(user, path="/local", method="GET", extra=""):
    return f"{method} {path} HTTP/1.1\r\nHost: gw\r\n{extra}X-User-ID: {user}\r\n\r\n".encode()


def cut(data, rng, most=5):
    """(offset, length) pieces of data cut at up to most-1 random places."""
    k = min(len(data) - 1, rng.randint(1, most - 1))
    cuts = sorted(rng.sample(range(1, len(data)), k))
    return [(a, b - a) for a, b in zip([0] + cuts, cuts + [len(data)])]


def other_user(user):
    return USERS[(USERS.index(user) + 1) % len(USERS)]


def run_stream(link, dport, kind, rng, user):
    """Sends one stream of `kind`; returns (heads expected, status lines)."""
    c = Conn(link, dport, rng)
    try:
        if not c.connect():
            return 0, ["connect-failed"]
        want, statuses = play(c, kind, rng, user)
        if not statuses:
            # refused with a reset, or neither answered nor acknowledged (the segments
            # dropped each time they were sent), or acknowledged and not answered
            statuses = ["reset" if c.reset else "unanswered" if c.acked() < len(c.data) else "none"]
        return want, statuses
    finally:
        c.close()


def play(c, kind, rng, user):
    if kind == "reordered":
        c.data = head(user) + (head(user) if rng.random() < 0.5 else b"")
        c.pieces = cut(c.data, rng)
        order = list(range(len(c.pieces)))
        rng.shuffle(order)
        for i in order:
            c.send_piece(i)
        c.deliver()
        want = c.data.count(b"HTTP/1.1\r\n")
        return want, c.responses(want)
    if kind == "conflicting-copies":
        # The bytes of the route (or the user) sent twice, the copies disagreeing:
        # either both copies in order after the first piece (a retransmission that
        # disagrees with what went before), or both out of order with the first piece
        # held back (Linux lets a longer copy replace a queued one).
        real = head(user)
        c.data = real
        at = real.index(b"/local") if rng.random() < 0.5 else real.index(user.encode())
        c.pieces = [(0, at), (at, len(real) - at)]
        alt = bytearray(real[at:])
        if alt.startswith(b"/local"):
            alt[1:6] = b"lokal"  # the default rule
        else:
            alt[:len(user)] = other_user(user).encode()
        short = bytes(alt[:rng.randint(3, 12)])
        copies = [bytes(alt), real[at:], short, real[at:at + len(short)]]
        rng.shuffle(copies)
        in_order = rng.random() < 0.5
        if in_order:
            c.send_piece(0)
            c.link.poll(0.02)
        for p in copies[:rng.randint(2, 4)]:
            c.send_data(at, p)
        if not in_order:
            c.send_piece(0)
        c.deliver()
        return 1, c.responses(1)
    if kind in ("rst-in-window", "rst-out-of-window", "syn-mid-stream", "fin-ahead"):
        # A first head's first part, the injected control segment, then the rest and a
        # second head that starts with CRLF and spans segments.
        c.data = head(user) + b"\r\n" + head(user)
        first = head(user)
        c.pieces = [(0, 20)] + [(a + 20, n) for a, n in cut(first[20:], rng, 3)]
        c.pieces += [(len(first) + a, n) for a, n in cut(c.data[len(first):], rng, 3)]
        c.send_piece(0)
        c.link.poll(0.02)
        if kind == "rst-in-window":
            c.link.send(c.sport, c.dport, c.seq_at(rng.randint(21, 4000)), c.rcv, RST | ACK)
        elif kind == "rst-out-of-window":
            c.link.send(c.sport, c.dport, c.seq_at(-rng.randint(1, 1 << 20)), c.rcv, RST)
        elif kind == "syn-mid-stream":
            c.link.send(c.sport, c.dport, rng.getrandbits(32), 0, SYN)
        else:
            c.link.send(c.sport, c.dport, c.seq_at(len(c.data) + rng.randint(1, 50)), c.rcv, FIN | ACK)
        c.link.poll(0.02)
        for i in range(1, len(c.pieces)):
            c.send_piece(i)
        c.deliver()
        return 2, c.responses(2)
    if kind == "pipelined-gap":
        # A head on the free route, then limited heads; the segment holding the limited
        # heads arrives before the first.
        first = head(user, path="/free")
        c.data = first + head(user) + head(user)
        c.pieces = [(0, len(first) - rng.randint(0, 5) or len(first))]
        c.pieces.append((c.pieces[0][1], len(c.data) - c.pieces[0][1]))
        c.send_piece(1)
        c.link.poll(0.02)
        c.send_piece(0)
        c.deliver()
        return 3, c.responses(3)
    if kind == "victim-body-first":
        fake = head("victim")
        body = fake * rng.randint(1, 3)
        first = (f"POST /upload HTTP/1.1\r\nHost: gw\r\nX-User-ID: {user}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode()
        c.data = first + body
        c.pieces = [(0, len(first))] + [(len(first) + i, len(fake)) for i in range(0, len(body), len(fake))]
        for i in range(len(c.pieces) - 1, -1, -1):
            c.send_piece(i)
        c.deliver()
        return 1, c.responses(1)
    raise ValueError(kind)


def exhaust(link, dport, rng, holders, idle):
    """Connections that hold a reassembly buffer each (a head's first part) or only a
    flow entry (nothing sent); closed by the caller."""
    conns = []
    for i in range(holders + idle):
        c = Conn(link, dport, rng)
        if not c.connect():
            c.close()
            continue
        if i < holders:
            c.data = head(rng.choice(USERS))
            k = rng.randint(5, 30)
            c.pieces = [(0, k), (k, len(c.data) - k)]
            c.send_piece(0)
        conns.append(c)
    link.poll(0.05)
    return conns


def release(conns):
    """The stalled heads are completed (their buffers may have been reclaimed
    meanwhile), then every held connection is reset."""
    statuses = []
    for c in conns:
        if len(c.pieces) > 1 and not c.reset:
            c.send_piece(1)
    for c in conns:
        if len(c.pieces) > 1:
            c.deliver(0.5)
            statuses += c.responses(1, 0.2) or ["none"]
        c.close()
    if conns:
        print(f"released: stalled heads completed: {sorted(statuses)}", flush=True)


KINDS = ["reordered", "conflicting-copies", "rst-in-window", "rst-out-of-window", "syn-mid-stream",
         "fin-ahead", "pipelined-gap", "victim-body-first", "exhaustion"]


def main():
    iface, src_ip, dst, dst_mac, count, seed = sys.argv[1:7]
    kinds = (sys.argv[7] if len(sys.argv) > 7 else os.environ.get("DLB_RAW_KINDS", ",".join(KINDS))).split(",")
    host, _, port = dst.partition(":")
    link = Link(iface, src_ip, host, dst_mac)
    rng = random.Random(int(seed))
    held, release_at = [], 0
    for i in range(int(count)):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        if i == release_at:
            release(held)
            held = []
        if kind == "exhaustion":
            # Stalled heads and idle flows, open for the next streams.
            if not held:
                held = exhaust(link, int(port or 80), rng, int(os.environ.get("DLB_RAW_HOLDERS", "20")),
                               int(os.environ.get("DLB_RAW_IDLE", "30")))
                release_at = i + 6
                print(f"exhaustion: {len(held)} connections held for 5 streams", flush=True)
            continue
        user = rng.choice(USERS)
        t0 = time.monotonic()
        want, statuses = run_stream(link, int(port or 80), kind, rng, user)
        print(f"{kind} {user}: {statuses} of {want} ({time.monotonic() - t0:.2f} s)", flush=True)
    release(held)
    print(f"streams sent: {count}")


if __name__ == "__main__":
    main()
