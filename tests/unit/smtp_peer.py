#!/usr/bin/python3
"""smtp_peer.py - a scripted SMTP server for tests/unit/test_smtp_client.c

usage: smtp_peer.py PORTFILE SCRIPT

SCRIPT is a JSON file:

  {"listen": ["127.0.0.1", "127.0.0.3"],   addresses, all on one port
   "log": "/path/to/record",                what the peer saw (below)
   "sessions": [ {...}, {...} ]}            behaviour of the 1st, 2nd, ...
                                            connection; the last repeats

A session object overrides any of these replies (DEFAULTS below): banner,
ehlo, helo, mail, rcpt, data, body, rset, quit, starttls, noop. A reply is
a string; "\n" separates the lines of a multi-line reply. "mail", "data"
and "body" may be lists, indexed by the transaction number on the
connection; "rcpt" may be a list (indexed by the RCPT's position in its
transaction) or an object mapping the address to a reply ("*" for the
rest). Two special replies: "DROP" closes the connection at once, "HANG"
never answers (the peer then waits for the client to go away).
DATA gets "554 5.5.1 no valid recipients" when no RCPT was accepted in
the transaction, unless "data_always_354" is true.
"tls": "real" (with "cert" and "key") runs a TLS server after a 220 to
STARTTLS; "garbage" answers the client's handshake with junk instead.
"auth" is the list of replies to AUTH: the first answers the command,
each later one the next line the client sends while the previous reply
was a 334 (default: "504 5.5.4 not supported").
"split_before_lf": true sends the final LF of every reply in a write of
its own, 0.2 s after the rest, so the client reads the CR without its LF.

The record file gets one line per event, flushed at once:
  CONNECT <n> <local-ip> <client-ip>
  CMD <command line>
  BATCH <k>          k >= 2 command lines arrived in one read (pipelining)
  BODY <hex>         the raw DATA bytes up to and including ".\\r\\n"
  AUTHDATA <line>    a line sent in answer to a 334
  TLS <sni or ->     the TLS handshake completed
  TLSFAIL <reason>
  CLOSE <n>
The port is written to PORTFILE once every listener is ready.
"""
import json
import os
import selectors
import signal
import socket
import ssl
import sys
import time

DEFAULTS = {
    "banner": "220 peer.test ESMTP scripted",
    "ehlo": "250-peer.test\n250-PIPELINING\n250-SIZE\n250-8BITMIME\n"
            "250-ENHANCEDSTATUSCODES\n250-DSN\n250 SMTPUTF8",
    "helo": "250 peer.test",
    "mail": "250 2.1.0 sender ok",
    "rcpt": "250 2.1.5 recipient ok",
    "data": "354 go ahead",
    "body": "250 2.0.0 queued",
    "rset": "250 2.0.0 ok",
    "noop": "250 2.0.0 ok",
    "quit": "221 2.0.0 bye",
    "starttls": "502 5.5.1 not implemented",
}


class Dropped(Exception):
    pass


class Peer:
    def __init__(self, script):
        self.script = script
        self.log = open(script["log"], "a", buffering=1)
        self.nconn = 0

    def record(self, line):
        self.log.write(line + "\n")
        self.log.flush()

    def session_conf(self):
        sessions = self.script.get("sessions") or [{}]
        conf = dict(DEFAULTS)
        conf.update(sessions[min(self.nconn - 1, len(sessions) - 1)])
        return conf


def pick(value, idx):
    if isinstance(value, list):
        return value[min(idx, len(value) - 1)]
    return value


class Conn:
    def __init__(self, peer, sock, conf):
        self.peer = peer
        self.sock = sock
        self.conf = conf
        self.buf = b""
        self.ntx = 0           # transactions started on this connection
        self.nrcpt = 0         # RCPTs in this transaction
        self.accepted = 0

    def send(self, reply):
        if reply == "DROP":
            raise Dropped()
        if reply == "HANG":
            while self.sock.recv(4096):
                pass
            raise Dropped()
        lines = reply.split("\n")
        data = b"".join(l.encode() + b"\r\n" for l in lines)
        if self.conf.get("split_before_lf"):
            self.sock.sendall(data[:-1])
            time.sleep(0.2)
            data = data[-1:]
        self.sock.sendall(data)

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Dropped()
        self.buf += data

    def readline(self):
        while b"\n" not in self.buf:
            self.fill()
            self.note_batch()
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def note_batch(self):
        k = self.buf.count(b"\n")
        if k >= 2:
            self.peer.record("BATCH %d" % k)

    def read_body(self):
        while True:
            if self.buf.startswith(b".\r\n"):
                end = 3
                break
            i = self.buf.find(b"\r\n.\r\n")
            if i >= 0:
                end = i + 5
                break
            self.fill()
        body, self.buf = self.buf[:end], self.buf[end:]
        self.peer.record("BODY " + body.hex())

    def start_tls(self):
        mode = self.conf.get("tls", "real")
        if mode == "garbage":
            self.sock.sendall(b"this is not a TLS server hello\r\n" * 4)
            while self.sock.recv(4096):
                pass
            raise Dropped()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.conf["cert"], self.conf["key"])
        sni = []
        ctx.sni_callback = lambda sslobj, name, c: sni.append(name)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.peer.record("TLSFAIL %s" % e)
            raise Dropped()
        self.buf = b""
        self.peer.record("TLS %s" % (sni[0] if sni and sni[0] else "-"))

    def run(self):
        c = self.conf
        self.send(c["banner"])
        while True:
            line = self.readline()
            self.peer.record("CMD " + line)
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.send(c["ehlo"])
            elif verb == "HELO":
                self.send(c["helo"])
            elif verb == "STARTTLS":
                self.send(c["starttls"])
                if c["starttls"].startswith("220"):
                    self.start_tls()
            elif verb == "MAIL":
                self.nrcpt = 0
                self.accepted = 0
                self.send(pick(c["mail"], self.ntx))
                self.ntx += 1
            elif verb == "RCPT":
                r = c["rcpt"]
                if isinstance(r, dict):
                    addr = line[line.find("<") + 1:line.find(">")]
                    reply = r.get(addr, r.get("*", DEFAULTS["rcpt"]))
                else:
                    reply = pick(r, self.nrcpt)
                self.nrcpt += 1
                if reply.startswith("2"):
                    self.accepted += 1
                self.send(reply)
            elif verb == "DATA":
                reply = pick(c["data"], self.ntx - 1)
                if self.accepted == 0 and not c.get("data_always_354"):
                    reply = "554 5.5.1 no valid recipients"
                self.send(reply)
                if reply.startswith("354"):
                    self.read_body()
                    self.send(pick(c["body"], self.ntx - 1))
            elif verb == "RSET":
                self.nrcpt = 0
                self.accepted = 0
                self.send(c["rset"])
            elif verb == "AUTH":
                replies = c.get("auth", ["504 5.5.4 not supported"])
                k = 0
                self.send(replies[0])
                while replies[k].startswith("334") and k + 1 < len(replies):
                    self.peer.record("AUTHDATA " + self.readline())
                    k += 1
                    self.send(replies[k])
            elif verb == "NOOP":
                self.send(c["noop"])
            elif verb == "QUIT":
                self.send(c["quit"])
                raise Dropped()
            else:
                self.send("500 5.5.2 unknown command")


def main():
    portfile, scriptfile = sys.argv[1], sys.argv[2]
    with open(scriptfile) as f:
        script = json.load(f)
    signal.alarm(int(script.get("lifetime", 60)))   # never outlive a broken test
    peer = Peer(script)
    sel = selectors.DefaultSelector()
    port = 0
    for addr in script.get("listen", ["127.0.0.1"]):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        port = s.getsockname()[1]
        s.listen(16)
        sel.register(s, selectors.EVENT_READ)
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, portfile)

    while True:
        for key, _ in sel.select():
            sock, (cip, _cport) = key.fileobj.accept()
            peer.nconn += 1
            sock.settimeout(30)
            peer.record("CONNECT %d %s %s" % (peer.nconn, sock.getsockname()[0], cip))
            conn = Conn(peer, sock, peer.session_conf())
            try:
                conn.run()
            except (Dropped, OSError):
                pass
            try:
                conn.sock.close()
            except OSError:
                pass
            peer.record("CLOSE %d" % peer.nconn)


if __name__ == "__main__":
    main()
