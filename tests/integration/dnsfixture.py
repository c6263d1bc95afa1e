#!/usr/bin/python3
"""
dnsfixture.py - a real DNS server (dnsmasq) on a free loopback port

Tests that need MX, A and AAAA answers start a DnsServer with the records
given as Python data; it writes a dnsmasq configuration into a fresh
temporary directory, runs dnsmasq in the foreground on 127.0.0.1:PORT
(UDP and TCP) and stops it at the end. Nothing on the system is touched:
no /etc/resolv.conf, no /etc/hosts, no pid file, no syslog.

    from dnsfixture import DnsServer
    with DnsServer(mx=[("example.test", "mx1.example.test", 10)],
                   hosts={"mx1.example.test": ["127.0.0.1", "::1"]}) as dns:
        conf = 'DNS_Servers = ( "%s" )' % dns.servers   # "127.0.0.1:PORT"

Records:
  mx        [(domain, host, pref), ...]; host "." is a null MX (RFC 7505)
  hosts     {name: [address, ...]} IPv4 and IPv6 addresses (A / AAAA)
  cnames    {alias: target}
  txt       {name: text} one TXT record each (a name that exists but has
            no MX and no address, SPF and DKIM records)
  zones     domains dnsmasq answers for itself ("test" by default): a name
            under a zone that has no record gets NXDOMAIN; an existing name
            asked for a type it lacks gets NOERROR with no answer (NODATA)
  servfail  domains (and names below them) answered SERVFAIL (dnsmasq forwards
            them to a small responder in this process that says SERVFAIL)
  timeout   domains (and names below them) never answered (dnsmasq forwards
            them to a socket that reads nothing)
  ttl       TTL of every local record (dnsmasq's local-ttl), default 300
  ttls      {name: ttl} a different TTL for the addresses of some hosts
  dnsmasq   the binary; default $DNSMASQ, then dnsmasq in PATH or /usr/sbin
Any name outside the zones gets REFUSED (dnsmasq has no upstream server).

How each answer was found to work with dnsmasq 2.90 (Debian 12):
  - NXDOMAIN: local=/zone/ makes dnsmasq answer unknown names itself.
  - null MX: mx-host=domain,.,0 yields an MX whose exchange is the root.
  - SERVFAIL: dnsmasq never makes one up for a dead upstream (UDP: no
    answer at all; TCP: it closes the connection), but it passes on the
    rcode of an upstream, so the fixture runs that upstream.
  - timeout: a forward to a bound socket that never reads.
  - REFUSED: what dnsmasq says when no upstream is configured.

Command-line mode, for the C unit tests:
    python3 dnsfixture.py --zone ZONE.json [--exit-on-eof]
ZONE.json holds the keyword arguments above (mx as lists of three). The
first line printed is the port; the server runs until SIGTERM or SIGINT,
or, with --exit-on-eof, until standard input is closed (so a test that
crashes cannot leave dnsmasq behind). Exit status 2 when it cannot start.
    python3 dnsfixture.py --self-test
checks that the installed dnsmasq gives every kind of answer above.

Ownership: a DnsServer owns its temporary directory, the dnsmasq process
and its helper sockets and thread; close() (or leaving the with block)
releases all of them and is safe to call twice, while stop() only stops
dnsmasq so that start() can bring it back on the same port. If this process dies
without cleaning up (SIGKILL), a small watchdog (sh reading a pipe only we
hold) sees end-of-file, stops dnsmasq and removes the directory. A
parent-death signal would not do: dnsmasq changes its credentials at
start, and the kernel then forgets the setting.
Failure modes: dnsmasq missing, or not answering within START_TIMEOUT,
raises RuntimeError carrying its log; nothing is ever skipped silently.
"""

import ipaddress
import json
import os
import pwd
import random
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

QTYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28}


def _free_port():
    """_free_port - a port free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
        finally:
            u.close()
            t.close()
    raise RuntimeError("dnsfixture: no free UDP+TCP port on 127.0.0.1")


def _encode_name(name):
    """_encode_name - a domain name in DNS wire format (no compression)."""
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("idna") if not label.isascii() else label.encode()
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def _skip_name(msg, off):
    """_skip_name - the offset just past the (possibly compressed) name at off."""
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def query(port, name, qtype="A", timeout=2.0, host="127.0.0.1"):
    """
    query - ask one question over UDP; (rcode, [(type, ttl, rdata), ...]) or
    None on timeout. For tests that want to check the fixture itself.
    """
    qt = QTYPES[qtype] if isinstance(qtype, str) else qtype
    tid = random.randrange(65536)
    pkt = struct.pack(">HHHHHH", tid, 0x0100, 1, 0, 0, 0) + \
        _encode_name(name) + struct.pack(">HH", qt, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(pkt, (host, port))
        while True:
            try:
                msg, _ = s.recvfrom(65535)
            except socket.timeout:
                return None
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == tid:
                break
    finally:
        s.close()
    flags, qd, an = struct.unpack(">HHH", msg[2:8])
    off = 12
    for _ in range(qd):
        off = _skip_name(msg, off) + 4
    answers = []
    for _ in range(an):
        off = _skip_name(msg, off)
        rtype, _cls, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        answers.append((rtype, ttl, msg[off:off + rdlen]))
        off += rdlen
    return flags & 0xF, answers


class _ServfailResponder:
    """
    _ServfailResponder - a UDP server on 127.0.0.1 that answers every query
    with SERVFAIL; dnsmasq forwards the servfail domains to it.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="servfail", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                msg, peer = self.sock.recvfrom(65535)
            except OSError:
                continue
            if len(msg) < 12:
                continue
            tid, flags, qd = struct.unpack(">HHH", msg[:6])
            if flags & 0x8000 or qd != 1:
                continue
            try:
                end = _skip_name(msg, 12) + 4
            except IndexError:
                continue
            # QR, the query's opcode and RD, RA, rcode 2; the question echoed.
            rflags = 0x8000 | (flags & 0x7900) | 0x0080 | 2
            reply = struct.pack(">HHHHHH", tid, rflags, 1, 0, 0, 0) + msg[12:end]
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def close(self):
        os.write(self._stop_w, b"x")
        self._thread.join(STOP_TIMEOUT)
        self.sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


class DnsServer:
    """DnsServer - dnsmasq on 127.0.0.1:port serving the given records."""

    def __init__(self, mx=(), hosts=None, cnames=None, txt=None, zones=("test",),
                 servfail=(), timeout=(), ttl=300, ttls=None, log_queries=True,
                 dnsmasq=None):
        self.mx = [tuple(m) for m in mx]
        self.hosts = dict(hosts or {})
        self.cnames = dict(cnames or {})
        self.txt = dict(txt or {})
        self.zones = list(zones)
        self.servfail = list(servfail)
        self.timeout = list(timeout)
        self.ttl = int(ttl)
        self.ttls = {k: int(v) for k, v in (ttls or {}).items()}
        self.log_queries = log_queries
        self.dnsmasq = dnsmasq or os.environ.get("DNSMASQ") or shutil.which("dnsmasq") or \
            next((p for p in ("/usr/sbin/dnsmasq", "/sbin/dnsmasq") if os.path.exists(p)), None)
        if not self.dnsmasq or not os.access(self.dnsmasq, os.X_OK):
            raise RuntimeError("dnsfixture: dnsmasq not found (install the Debian package "
                               "dnsmasq-base or dnsmasq); DNS tests need a real server"
                               + (" (tried %s)" % self.dnsmasq if self.dnsmasq else ""))
        self.port = None
        self.proc = None
        self.tmpdir = None
        self._servfail = None
        self._blackhole = None
        self._watchdog = None
        self._validate()
        self.tmpdir = tempfile.mkdtemp(prefix="impetus-dns-")
        self.conf_path = os.path.join(self.tmpdir, "dnsmasq.conf")
        self.log_path = os.path.join(self.tmpdir, "dnsmasq.log")

    # ---- configuration ------------------------------------------------

    def _validate(self):
        for m in self.mx:
            if len(m) != 3 or not isinstance(m[2], int) or not 0 <= m[2] <= 65535:
                raise ValueError("dnsfixture: mx entries are (domain, host, pref): %r" % (m,))
        for name, addrs in self.hosts.items():
            if isinstance(addrs, str):
                self.hosts[name] = addrs = [addrs]
            for a in addrs:
                ipaddress.ip_address(a)	# raises ValueError on a bad address

    def _config_text(self):
        """_config_text - the dnsmasq configuration for the records."""
        lines = ["# written by tests/integration/dnsfixture.py",
                 "local-ttl=%d" % self.ttl,
                 "cache-size=0",
                 "no-negcache"]
        for z in self.zones:
            lines.append("local=/%s/" % z.strip("."))
        if self.servfail:
            for d in self.servfail:
                lines.append("server=/%s/127.0.0.1#%d" % (d, self._servfail.port))
        if self.timeout:
            for d in self.timeout:
                lines.append("server=/%s/127.0.0.1#%d" % (d, self._blackhole.getsockname()[1]))
        for domain, host, pref in self.mx:
            lines.append("mx-host=%s,%s,%d" % (domain, host if host else ".", pref))
        for name, addrs in self.hosts.items():
            v4 = [a for a in addrs if ipaddress.ip_address(a).version == 4]
            v6 = [a for a in addrs if ipaddress.ip_address(a).version == 6]
            # One host-record carries at most one address of each family;
            # dnsmasq merges several lines for the same name.
            for i in range(max(len(v4), len(v6))):
                parts = [name]
                if i < len(v4):
                    parts.append(v4[i])
                if i < len(v6):
                    parts.append(v6[i])
                if name in self.ttls:
                    parts.append(str(self.ttls[name]))
                lines.append("host-record=" + ",".join(parts))
        for alias, target in self.cnames.items():
            lines.append("cname=%s,%s" % (alias, target))
        for name, text in self.txt.items():
            lines.append('txt-record=%s,"%s"' % (name, text.replace("\\", "\\\\").replace('"', '\\"')))
        return "\n".join(lines) + "\n"

    # ---- life cycle -------------------------------------------------

    @property
    def servers(self):
        """servers - the resolver's server list: "127.0.0.1:PORT"."""
        return "127.0.0.1:%d" % self.port

    def start(self):
        """start - run dnsmasq (again, on the same port after a stop())."""
        if self.proc:
            return self
        if self.servfail and not self._servfail:
            self._servfail = _ServfailResponder()
        if self.timeout and not self._blackhole:
            self._blackhole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._blackhole.bind(("127.0.0.1", 0))
        with open(self.conf_path, "w") as f:
            f.write(self._config_text())
        fixed = self.port is not None
        last = ""
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = _free_port()
            if self._spawn():
                return self
            last = self.log()
        self._release_helpers()
        raise RuntimeError("dnsfixture: dnsmasq did not start on port %d:\n%s" % (self.port, last))

    def _spawn(self):
        """_spawn - start dnsmasq on self.port; True once it answers."""
        argv = [self.dnsmasq,
                "--keep-in-foreground",
                "--conf-file=" + self.conf_path,	# and no /etc/dnsmasq.conf
                "--no-resolv", "--no-hosts", "--no-poll",
                "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--pid-file=",			# empty: no pid file
                "--log-facility=-",		# log to stderr, not syslog
                "--user=" + pwd.getpwuid(os.getuid()).pw_name]	# root stays root, no "nobody"
        if self.log_queries:
            argv.append("--log-queries")
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log)
        finally:
            log.close()
        self._start_watchdog()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._stop_watchdog()
                self.proc = None
                return False
            if query(self.port, "dnsfixture-probe." + (self.zones[0] if self.zones else "test"),
                     "A", timeout=0.05) is not None:
                return True
        self._kill()
        return False

    def _start_watchdog(self):
        """_start_watchdog - stop dnsmasq and clean up if we die without doing it."""
        script = "cat >/dev/null; kill -TERM %d 2>/dev/null" % self.proc.pid
        if not os.environ.get("KEEP_TMP"):
            script += "; sleep 1; rm -rf %s" % shlex.quote(self.tmpdir)
        self._watchdog = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)

    def _stop_watchdog(self):
        if self._watchdog:
            self._watchdog.kill()	# first, so it can never signal a recycled pid
            self._watchdog.wait()
            self._watchdog.stdin.close()
            self._watchdog = None

    def _kill(self):
        self._stop_watchdog()
        if not self.proc:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        """stop - stop dnsmasq; the port stays reserved for a later start()."""
        self._kill()

    def _release_helpers(self):
        if self._servfail:
            self._servfail.close()
            self._servfail = None
        if self._blackhole:
            self._blackhole.close()
            self._blackhole = None

    def close(self):
        """close - stop everything and remove the temporary directory."""
        self._kill()
        self._release_helpers()
        if self.tmpdir and not os.environ.get("KEEP_TMP"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def log(self):
        """log - dnsmasq's log so far (queries too when log_queries)."""
        try:
            with open(self.log_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def queries(self, name=None):
        """queries - the logged questions as (type, name), optionally for one name."""
        out = []
        for line in self.log().splitlines():
            # "dnsmasq[123]: query[MX] example.test from 127.0.0.1"
            i = line.find(": query[")
            if i < 0:
                continue
            rest = line[i + 8:]
            qtype, _, tail = rest.partition("] ")
            qname = tail.split(" ", 1)[0]
            if name is None or qname.lower() == name.lower():
                out.append((qtype, qname))
        return out

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _self_test():
    """_self_test - check each kind of answer the fixture promises; exit status."""
    failures = 0
    with DnsServer(mx=[("a.test", "mx.a.test", 10), ("null.test", ".", 0)],
                   hosts={"mx.a.test": ["192.0.2.1", "192.0.2.2", "2001:db8::1"]},
                   cnames={"c.test": "mx.a.test"}, txt={"t.test": "x"},
                   servfail=["sf.test"], timeout=["to.test"], ttl=42,
                   ttls={"mx.a.test": 7}) as dns:
        cases = [
            ("a.test", "MX", lambda r: r and r[0] == 0 and [a[0] for a in r[1]] == [15]
             and r[1][0][1] == 42),
            ("mx.a.test", "A", lambda r: r and r[0] == 0 and len(r[1]) == 2 and r[1][0][1] == 7),
            ("mx.a.test", "AAAA", lambda r: r and r[0] == 0 and len(r[1]) == 1),
            ("null.test", "MX", lambda r: r and r[0] == 0 and r[1][0][2] == b"\0\0\0"),
            ("t.test", "MX", lambda r: r and r[0] == 0 and r[1] == []),
            ("c.test", "A", lambda r: r and r[0] == 0 and [a[0] for a in r[1]] == [5, 1, 1]),
            ("nx.test", "MX", lambda r: r and r[0] == 3),
            ("sf.test", "MX", lambda r: r and r[0] == 2),
            ("x.sf.test", "A", lambda r: r and r[0] == 2),
            ("example.com", "MX", lambda r: r and r[0] == 5),
            ("to.test", "MX", lambda r: r is None),
        ]
        for name, qtype, ok in cases:
            r = query(dns.port, name, qtype, timeout=1.0)
            good = bool(ok(r))
            failures += not good
            print("%-4s %s %s -> %r" % ("ok" if good else "FAIL", qtype, name, r))
        dns.stop()
        dns.start()
        r = query(dns.port, "a.test", "MX")
        failures += not (r and r[0] == 0)
        print("%-4s restart on port %d" % ("ok" if r and r[0] == 0 else "FAIL", dns.port))
    print("self-test %s" % ("passed" if failures == 0 else "FAILED"))
    return 1 if failures else 0


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="run dnsmasq with a zone given as JSON")
    ap.add_argument("--zone", help="JSON file: DnsServer keyword arguments")
    ap.add_argument("--exit-on-eof", action="store_true",
                    help="stop when standard input is closed")
    ap.add_argument("--self-test", action="store_true",
                    help="check that dnsmasq gives every kind of answer, then exit")
    args = ap.parse_args(argv)
    if args.self_test:
        try:
            return _self_test()
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
    if not args.zone:
        ap.error("--zone is required")
    try:
        with open(args.zone) as f:
            zone = json.load(f)
        server = DnsServer(**zone)
        server.start()
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        msg = str(e)
        print(msg if msg.startswith("dnsfixture:") else "dnsfixture: " + msg, file=sys.stderr)
        return 2

    done = threading.Event()

    def on_signal(signum, frame):
        done.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(server.port, flush=True)
    try:
        if args.exit_on_eof:
            while not done.is_set():
                r, _, _ = select.select([sys.stdin], [], [], 0.2)
                if r and not os.read(sys.stdin.fileno(), 4096):
                    break
        else:
            while not done.is_set():
                done.wait(0.2)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
