#!/usr/bin/env python3
"""A second HTTP/1.1 server for the executed-versus-decided oracle: Python's own parser
(http.server), not nginx's.

    recording_server.py PORT LOG [SLOW_PREFIX SECONDS]

Answers every request 200 "ok" on a keep-alive connection (Content-Length and chunked
bodies read and discarded) and appends one line per executed request to LOG:

    METHOD NORMALIZED_PATH USER 200

NORMALIZED_PATH is the route a framework on this parser would see at most (percent-
decoded, slashes merged, dot segments removed): the oracle counts a request against the
limited route whenever any reading of its target reaches it. USER is the first
X-User-ID line, as http.server's headers.get() reads it ("-" when absent). Requests
whose path starts with SLOW_PREFIX are answered SECONDS late (a slow backend), after
they are logged.
"""
import http.server
import posixpath
import re
import socketserver
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()


def normalized(target):
    path = urllib.parse.urlsplit(target).path if "://" in target else target.split("?", 1)[0]
    path = re.sub("/+", "/", urllib.parse.unquote(path))
    norm = posixpath.normpath(path) if path else "/"
    return "/" + norm.lstrip("/") if norm != "." else "/"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def serve(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                self.rfile.read(size + 2)
        else:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
        user = self.headers.get("X-User-ID", "-").strip() or "-"
        with LOCK, open(self.server.log_path, "a") as f:
            f.write(f"{self.command} {normalized(self.path)} {user.replace(' ', '_')} 200\n")
        if self.server.slow_prefix and self.path.startswith(self.server.slow_prefix):
            time.sleep(self.server.slow_seconds)
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = serve

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("0.0.0.0", int(sys.argv[1])), Handler)
    server.log_path = sys.argv[2]
    server.slow_prefix = sys.argv[3] if len(sys.argv) > 4 else None
    server.slow_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    open(server.log_path, "a").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
