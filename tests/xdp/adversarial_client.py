#!/usr/bin/env python3
"""Seeded adversarial HTTP/1.1 streams for the end-to-end oracle tests.

    adversarial_client.py SERVER_IP[:PORT] STREAMS SEED [KIND,KIND...]
    adversarial_client.py --pieces SERVER_IP[:PORT] HEX [HEX...]

The second form sends the given pieces (hex) as one stream and prints its status line.

Each stream is one TCP connection to SERVER_IP:PORT (default 80) whose bytes are written in pieces,
one TCP segment each (Nagle off; each write once the one before was acknowledged), so
that the segment boundaries are the ones chosen here. The streams aim at the limited
route /local (also spelled //local, /%6cocal, /./local, ...) (capacity 3 per user) with users u0..u3; the user "victim" never sends
anything here, but the bodies of some streams are made of bytes that read like its heads.
Prints one line per stream (its kind and the status line received, or "none"), then
"streams sent: N".
"""
import fcntl
import os
import random
import socket
import struct
import sys
import termios
import time

# DLB_ADVERSARIAL_USERS: a comma list in place of u0..u3 (fresh buckets for a second run).
USERS = os.environ.get("DLB_ADVERSARIAL_USERS", "u0,u1,u2,u3").split(",")


def head(user, path="/local", method="GET", extra=""):
    return f"{method} {path} HTTP/1.1\r\nHost: gw\r\n{extra}X-User-ID: {user}\r\n\r\n".encode()


def split(data, rng, most=4):
    """data cut at up to most-1 random places (every piece non-empty)."""
    if len(data) < 2:
        return [data]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, most - 1))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def stream(kind, rng, user):
    if kind == "segmented":
        return split(head(user), rng)
    if kind == "empty-lines":
        return split(b"\r\n" * rng.randint(1, 3) + head(user), rng)
    if kind == "victim-body":
        fake = head("victim")
        body = fake * rng.randint(1, 3)
        first = (f"POST /upload HTTP/1.1\r\nHost: gw\r\nX-User-ID: {user}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n").encode()
        return [first] + [body[i:i + len(fake)] for i in range(0, len(body), len(fake))]
    if kind == "pipelined":
        return [head(user) + head(user)]
    if kind == "chunked":
        h = head(user, method="POST", extra="Transfer-Encoding: chunked\r\n")
        return [h, b"5\r\nhello\r\n0\r\n\r\n"]
    if kind == "duplicate-identity":
        return [f"GET /local HTTP/1.1\r\nHost: gw\r\nX-User-ID: {user}\r\nX-User-ID: victim\r\n\r\n".encode()]
    if kind == "path-spelling":
        # Spellings nginx and most frameworks route to /local.
        path = rng.choice(["//local", "/%6cocal", "/./local", "/x/../local", "/local/.", "/%2e/local"])
        return split(head(user, path=path), rng)
    if kind == "empty-then-identity":
        return [b"GET /local HTTP/1.1\r\nHost: gw\r\nX-User-ID:\r\nX-User-ID: victim\r\n\r\n"]
    raise ValueError(kind)


KINDS = ["segmented", "empty-lines", "victim-body", "pipelined", "chunked",
         "duplicate-identity", "empty-then-identity", "path-spelling"]


def send(server, pieces):
    host, _, port = server.partition(":")
    try:
        s = socket.create_connection((host, int(port or 80)), timeout=1)
    except OSError:
        return "connect-failed"
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for p in pieces:
            s.sendall(p)
            for _ in range(500):
                if struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\0\0\0\0"))[0] == 0:
                    break
                time.sleep(0.001)
        data = s.recv(4096)
    except OSError:
        data = b""
    finally:
        s.close()
    return data.split(b"\r\n")[0].decode(errors="replace") if data else "none"


def main():
    if sys.argv[1] == "--pieces":
        print(send(sys.argv[2], [bytes.fromhex(p) for p in sys.argv[3:]]))
        return
    server, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kinds = sys.argv[4].split(",") if len(sys.argv) > 4 else KINDS
    rng = random.Random(seed)
    for i in range(count):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        user = rng.choice(USERS)
        pieces = stream(kind, rng, user)
        print(f"{kind} {user} {[len(p) for p in pieces]}: {send(server, pieces)}")
    print(f"streams sent: {count}")


if __name__ == "__main__":
    main()
