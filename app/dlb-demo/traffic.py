#!/usr/bin/env python3
"""The demo's traffic mix against the payment gateway (POST /pay, X-User-ID header).

Classes, each paced on its own schedule (a sender that falls behind skips the slots it
missed rather than bursting to catch up, so "sent" is what was really sent):
  normal   N users at R req/s each (keep-alive connection per user), under their limit
  abusive  one user at R req/s (several connections; a 429 closes its connection)
  new      R req/s, each from a user ID never seen before

Every request is logged as "t_s class user status latency_ms" (t from the common start;
status 0 = no answer). One progress line per second goes to stdout.

  traffic.py --host IP --seconds S --log FILE [--normal-users 20 --normal-rate 2
             --abusive-rate 200 --new-rate 100]
"""
import argparse
import http.client
import socket
import sys
import threading
import time

BODY = b'{"amount": 1250, "currency": "EUR"}'


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {k: [0, 0, 0, 0] for k in ("normal", "abusive", "new")}  # sent, 200, 429, other

    def add(self, cls, status):
        with self.lock:
            row = self.c[cls]
            row[0] += 1
            if status == 200:
                row[1] += 1
            elif status == 429:
                row[2] += 1
            else:
                row[3] += 1

    def snapshot(self):
        with self.lock:
            return {k: list(v) for k, v in self.c.items()}


class Sender:
    """One keep-alive HTTP/1.1 connection; reconnects after a close."""

    def __init__(self, host, timeout):
        self.host, self.timeout, self.conn = host, timeout, None

    def post(self, user):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, 80, timeout=self.timeout)
                self.conn.request("POST", "/pay", body=BODY, headers={
                    "X-User-ID": user, "Content-Type": "application/json", "Host": "gateway"})
                r = self.conn.getresponse()
                r.read()
                if r.will_close:
                    self.conn.close()
                    self.conn = None
                return r.status
            except (OSError, http.client.HTTPException):
                # A keep-alive connection the peer closed between two requests: one retry
                # on a fresh connection; anything else is logged as status 0.
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 1:
                    return 0
        return 0


def run_schedule(start, seconds, rate, phase, fn, stop):
    """Calls fn() at start + phase + k / rate for every k within the run."""
    period = 1.0 / rate
    k = 0
    while not stop.is_set():
        due = start + phase + k * period
        if due >= start + seconds:
            return
        now = time.time()
        if due > now:
            time.sleep(due - now)
        elif now - due > period:
            k = int((now - start - phase) / period) + 1  # behind: skip missed slots
            continue
        fn()
        k += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--log", required=True)
    ap.add_argument("--normal-users", type=int, default=20)
    ap.add_argument("--normal-rate", type=float, default=2)
    ap.add_argument("--abusive-rate", type=float, default=200)
    ap.add_argument("--abusive-connections", type=int, default=4)
    ap.add_argument("--new-rate", type=float, default=100)
    ap.add_argument("--new-connections", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=5)
    a = ap.parse_args()

    counters = Counters()
    log_lock = threading.Lock()
    log = open(a.log, "w", buffering=1)
    stop = threading.Event()
    start = time.time() + 1.0
    new_ids = iter(range(10**9))
    new_lock = threading.Lock()

    def request(sender, cls, user):
        t0 = time.time()
        status = sender.post(user)
        t1 = time.time()
        counters.add(cls, status)
        with log_lock:
            log.write(f"{t0 - start:.4f} {cls} {user} {status} {(t1 - t0) * 1000:.2f}\n")

    threads = []

    def spawn(rate, phase, fn):
        t = threading.Thread(target=run_schedule, args=(start, a.seconds, rate, phase, fn, stop), daemon=True)
        threads.append(t)

    for i in range(a.normal_users):
        s, user = Sender(a.host, a.timeout), f"user-{i + 1:02d}"
        spawn(a.normal_rate, i / (a.normal_users * a.normal_rate), lambda s=s, u=user: request(s, "normal", u))
    for i in range(a.abusive_connections):
        s = Sender(a.host, a.timeout)
        rate = a.abusive_rate / a.abusive_connections
        spawn(rate, i / a.abusive_rate, lambda s=s: request(s, "abusive", "mallory"))
    for i in range(a.new_connections):
        s = Sender(a.host, a.timeout)
        rate = a.new_rate / a.new_connections

        def fresh(s=s):
            with new_lock:
                n = next(new_ids)
            request(s, "new", f"new-{n:06d}")
        spawn(rate, i / a.new_rate, fresh)

    for t in threads:
        t.start()
    try:
        second = 1
        while any(t.is_alive() for t in threads):
            time.sleep(max(0.0, start + second - time.time()))
            snap = counters.snapshot()
            parts = []
            for cls in ("normal", "abusive", "new"):
                sent, ok, rej, other = snap[cls]
                parts.append(f"{cls} {sent}/{ok}/{rej}" + (f" ({other} failed)" if other else ""))
            print(f"    t={second:3d}s  sent/allowed/rejected:  " + "   ".join(parts), flush=True)
            second += 1
            if second > a.seconds + 30:
                break  # senders stuck on timeouts: the summary reports them
    except KeyboardInterrupt:
        stop.set()
        return 130
    stop.set()
    for t in threads:
        t.join(timeout=a.timeout + 1)
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
