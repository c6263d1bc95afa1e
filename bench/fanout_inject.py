#!/usr/bin/python3
"""
fanout_inject.py - SMTP client for bench/fanout.sh: many recipients per
message, spread over several domains

smtp-source can give a message many recipients (-r) but all in one
domain; the fan-out benchmark needs each message's recipients spread over
DOMAINS domains (d0.fanout.test ... d9.fanout.test) that all resolve to one
next hop. This client sends MESSAGES messages of RCPTS recipients each
(recipient k of message m is m<m>r<k>@d<k % DOMAINS>.fanout.test) and
SIZE bytes of body over SESSIONS concurrent connections, each connection
kept open for its share of the messages (as smtp-source -d). When the
server offers PIPELINING, MAIL, every RCPT and DATA go in one write and
their replies are read afterwards (RFC 2920), so the client costs one
round trip per message, not RCPTS of them.

Prints one line: "sent N messages, R recipients in S s" (--times FILE:
also the start and end of the sending, without the interpreter's start-up,
which takes more than half a second on a busy machine). Exits 1 with the
server's reply on anything that is not success (a refused recipient
included): a benchmark run is one where everything was accepted.

    fanout_inject.py --port P [--messages 2000 --rcpts 100 --domains 10
                     --sessions 20 --size 4096]
"""

import argparse
import socket
import sys
import threading
import time


class SmtpError(Exception):
    pass


class Conn:
    """Conn - one SMTP connection with a read buffer."""

    def __init__(self, host, port, helo):
        self.sock = socket.create_connection((host, port), timeout=120)
        self.buf = b""
        self.reply("greeting", b"2")
        self.sock.sendall(b"EHLO %s\r\n" % helo.encode())
        lines = self.reply("EHLO", b"2")
        self.pipelining = any(l[4:].upper().startswith(b"PIPELINING") for l in lines)

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SmtpError("connection closed by the server")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def reply(self, what, want):
        """reply - read one (multi-line) reply; raise unless it starts with want."""
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if len(l) < 4 or l[3:4] != b"-":
                break
        if not lines[-1].startswith(want):
            raise SmtpError("%s: %s" % (what, lines[-1].decode(errors="replace")))
        return lines

    def send_message(self, sender, rcpts, body):
        """send_message - one transaction; pipelined when the server allows."""
        cmds = [b"MAIL FROM:<%s>\r\n" % sender.encode()]
        cmds += [b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts]
        if self.pipelining:
            self.sock.sendall(b"".join(cmds) + b"DATA\r\n")
            self.reply("MAIL", b"2")
            for r in rcpts:
                self.reply("RCPT " + r, b"2")
            self.reply("DATA", b"3")
        else:
            for c in cmds:
                self.sock.sendall(c)
                self.reply(c.decode().strip(), b"2")
            self.sock.sendall(b"DATA\r\n")
            self.reply("DATA", b"3")
        self.sock.sendall(body)
        self.reply("end of data", b"2")

    def quit(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.reply("QUIT", b"2")
        finally:
            self.sock.close()


def make_body(size, n):
    """make_body - headers and about size bytes of text, dot-terminated."""
    head = ("From: <bench@client.example>\r\nTo: <undisclosed-recipients:;>\r\n"
            "Subject: fan-out %d\r\nMessage-ID: <fanout-%d@client.example>\r\n\r\n" % (n, n))
    line = "x" * 76 + "\r\n"
    text = line * max(1, size // len(line))
    return (head + text + ".\r\n").encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rcpts", type=int, default=100)
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--sender", default="bench@client.example")
    ap.add_argument("--helo", default="client.example")
    ap.add_argument("--times", help="write 'start end' (epoch seconds) of the sending here")
    a = ap.parse_args()

    lock = threading.Lock()
    state = {"next": 0, "error": None}

    def worker():
        try:
            c = Conn(a.host, a.port, a.helo)
            while True:
                with lock:
                    if state["error"] or state["next"] >= a.messages:
                        break
                    m = state["next"]
                    state["next"] += 1
                rcpts = ["m%dr%d@d%d.fanout.test" % (m, k, k % a.domains)
                         for k in range(a.rcpts)]
                c.send_message(a.sender, rcpts, make_body(a.size, m))
            c.quit()
        except (OSError, SmtpError) as e:
            with lock:
                state["error"] = state["error"] or str(e)

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.time()
    secs = t1 - t0
    if a.times:
        with open(a.times, "w") as f:
            f.write("%.6f %.6f\n" % (t0, t1))
    if state["error"]:
        print("fanout_inject: %s" % state["error"], file=sys.stderr)
        return 1
    print("sent %d messages, %d recipients in %.3f s" % (a.messages, a.messages * a.rcpts, secs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
