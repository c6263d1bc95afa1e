"""
harness.py - start the real impetusd on a free loopback port and talk to it

The integration tests are black-box: they write a configuration into a
fresh temporary directory (spool/, log/, impetus.conf), start the daemon
binary named by $IMPETUSD, wait for its 220 banner and then use real
clients (smtplib, ssl, raw sockets). Nothing here knows the daemon's
internals; everything asserted comes from docs/smtp-server.md and
shared/REFERENCE.md.

Environment (set by ctest, see tests/CMakeLists.txt):
  IMPETUSD            the daemon binary (default ../../build/impetusd)
  IMPETUS             the operator tool (default ../../build/impetus)
  IMPETUS_SOURCE_DIR  the source tree (default ../..)
  KEEP_TMP            when set, temporary directories are kept and named

Ownership: each Daemon owns its temporary directory and its process; the
test that created it (or the class, for a shared daemon) cleans it up.
Failure modes: a daemon that does not greet within 20 s, dies, or writes
a sanitizer report raises AssertionError with its stderr, so the test
fails with the reason instead of hanging.
"""

import collections
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import ports

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("IMPETUS_SOURCE_DIR",
                            os.path.normpath(os.path.join(HERE, "..", "..")))

# Generous: the suite also runs under ASan, which is several times slower.
REPLY_TIMEOUT = 20.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 45.0	# the daemon may wait up to 30 s for transactions in flight

SANITIZER_PATTERNS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                      "ThreadSanitizer", "MemorySanitizer")

# "250 2.0.0 OK <id>": 16 hex digits, maybe in angle brackets.
ACCEPT_RE = re.compile(r"^2\.0\.0 OK <?([0-9A-Fa-f]{16})>?\s*$")


def _program(env_name, name):
    """_program - path of a built program: $env_name or ../../build/name."""
    path = os.environ.get(env_name)
    if path:
        return path
    return os.path.normpath(os.path.join(HERE, "..", "..", "build", name))


def impetusd_path():
    return _program("IMPETUSD", "impetusd")


def impetus_path():
    return _program("IMPETUS", "impetus")


def modules_dir():
    """modules_dir - where CMake put the test modules (tests/modules), for Module_Path."""
    d = os.environ.get("IMPETUS_TEST_MODULES")
    if not d:
        d = os.path.join(os.path.dirname(impetusd_path()), "modules")
    if not os.path.isdir(d):
        missing_feature("test modules not built: %s (set IMPETUS_TEST_MODULES)" % d)
    return d


def free_port():
    """free_port - a TCP port on 127.0.0.1 that nothing listens on now (ports.py: not given to another test)."""
    return ports.free_port()


class FeatureMissing(AssertionError):
    """A test needs something that is not built yet (never a silent skip)."""


def missing_feature(what):
    """missing_feature - fail loudly for a feature that is not built yet."""
    raise FeatureMissing("FEATURE MISSING: " + what)


# ---------------------------------------------------------------------------
# Raw SMTP client
# ---------------------------------------------------------------------------

class Reply(collections.namedtuple("Reply", "code lines")):
    """One SMTP reply: code (int) and the text of each line (after 'NNN-')."""

    @property
    def text(self):
        return "\n".join(self.lines)

    @property
    def first(self):
        return self.lines[0] if self.lines else ""

    def __str__(self):
        return " | ".join("%d %s" % (self.code, l) for l in self.lines)


class ConnectionClosed(AssertionError):
    pass


class RawClient:
    """
    RawClient - a plain socket speaking SMTP byte for byte.

    send() writes exactly what it is given; read_reply() parses one
    (possibly multi-line) reply with a deadline. Used wherever smtplib
    would hide what the wire carries (pipelining, smuggling, limits).
    """

    def __init__(self, port, host="127.0.0.1", source=None, timeout=REPLY_TIMEOUT,
                 banner=True):
        self.timeout = timeout
        src = (source, 0) if source else None
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=src)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.banner = self.read_reply() if banner else None

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise ConnectionClosed("connection reset by the server; unparsed bytes: %r"
                                   % self.buf[:300]) from None
        if not chunk:
            raise ConnectionClosed("connection closed by the server; unparsed bytes: %r"
                                   % self.buf[:300])
        self.buf += chunk

    def _readline(self, deadline):
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_reply(self, timeout=None):
        """read_reply - one reply as Reply(code, lines); AssertionError on timeout."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        lines = []
        code = None
        try:
            while True:
                raw = self._readline(deadline)
                if not raw.endswith(b"\r"):
                    raise AssertionError("reply line not ended by CRLF: %r" % raw)
                raw = raw[:-1]
                m = re.match(rb"^(\d{3})([ -])(.*)$", raw, re.S)
                if not m and re.match(rb"^\d{3}$", raw):
                    m = re.match(rb"^(\d{3})()()$", raw)
                if not m:
                    raise AssertionError("malformed reply line: %r" % raw)
                c = int(m.group(1))
                if code is not None and c != code:
                    raise AssertionError("reply code changed inside a multi-line reply: "
                                         "%r after %d" % (raw, code))
                code = c
                lines.append(m.group(3).decode("utf-8", "replace"))
                if m.group(2) != b"-":
                    return Reply(code, lines)
        except socket.timeout:
            raise AssertionError("no complete reply within %.0f s (got lines %r, buffer %r)"
                                 % (t, lines, self.buf[:300])) from None

    def cmd(self, line, timeout=None):
        """cmd - send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def pending(self, wait=0.5):
        """pending - whatever the server sends within wait seconds (b'' if nothing)."""
        data = self.buf
        self.buf = b""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return data
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return data
            except (ConnectionResetError, ssl.SSLError):
                return data
            if not chunk:
                return data
            data += chunk

    def wait_closed(self, timeout=None):
        """wait_closed - True once the server closes; False if still open at timeout."""
        t = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + t
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            except ssl.SSLError:
                return True
            if not chunk:
                return True
            self.buf += chunk

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name)

    def starttls(self, context=None, server_hostname="mx.test.example"):
        """starttls - STARTTLS, expect 220, then the handshake; returns the 220 reply."""
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS refused: %s" % (r,))
        self.handshake(context, server_hostname)
        return r

    def handshake(self, context=None, server_hostname="mx.test.example"):
        if self.buf:
            raise AssertionError("server sent plain text after 220 to STARTTLS: %r" % self.buf)
        ctx = context or client_tls_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def transaction(self, sender, rcpts, body, mail_params="", dot_stuff=True):
        """
        transaction - MAIL, RCPT..., DATA, body, end; returns the final reply.
        body: bytes with CRLF line ends, without the terminating dot line.
        Every MAIL/RCPT/DATA reply is checked for success.
        """
        r = self.cmd("MAIL FROM:<%s>%s" % (sender, (" " + mail_params) if mail_params else ""))
        if r.code != 250:
            raise AssertionError("MAIL FROM:<%s> refused: %s" % (sender, r))
        for rc in rcpts:
            r = self.cmd("RCPT TO:<%s>" % rc)
            if r.code != 250:
                raise AssertionError("RCPT TO:<%s> refused: %s" % (rc, r))
        r = self.cmd("DATA")
        if r.code != 354:
            raise AssertionError("DATA refused: %s" % (r,))
        self.send(data_payload(body, dot_stuff))
        return self.read_reply()


def data_payload(body, dot_stuff=True):
    """data_payload - body (bytes) made ready to send after 354, terminator included."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if dot_stuff:
        lines = body.split(b"\r\n")
        body = b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def accepted_id(reply):
    """accepted_id - the message id from '250 2.0.0 OK <id>'; AssertionError otherwise."""
    if isinstance(reply, tuple) and not isinstance(reply, Reply):
        code, text = reply
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        reply = Reply(code, text.split("\n"))
    if reply.code != 250:
        raise AssertionError("message not accepted: %s" % (reply,))
    m = ACCEPT_RE.match(reply.lines[-1])
    if not m:
        raise AssertionError("accept reply is not '250 2.0.0 OK <16 hex digits>': %s" % (reply,))
    return m.group(1).upper()


def make_message(subject="test", marker=None, extra_body=b"", size=0):
    """make_message - a small RFC 5322 message (CRLF); marker goes in the body."""
    hdr = ("From: sender@client.test\r\nTo: rcpt@example.com\r\nSubject: %s\r\n"
           "Message-ID: <%s@client.test>\r\n\r\n" % (subject, marker or "m%d" % time.time_ns()))
    body = hdr.encode() + b"Hello.\r\n"
    if marker:
        body += marker.encode() + b"\r\n"
    body += extra_body
    line = b"x" * 70 + b"\r\n"
    while len(body) < size:
        body += line
    return body


def client_tls_context():
    """client_tls_context - TLS 1.2+ client that accepts the self-signed test certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_cert(directory, cn="mx.test.example"):
    """make_cert - self-signed certificate + key made with the openssl CLI; (cert, key)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl req failed: %s" % r.stderr.decode(errors="replace"))
    return cert, key


# ---------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------

class Daemon:
    """
    Daemon - one impetusd process with its own temporary directory.

    Parameters shape the configuration (see render_config); start=False
    only writes it. Use as a context manager or call cleanup().
    """

    def __init__(self, hostname="mx.test.example", relay_domains=("example.com",),
                 relay_hosts=(), global_text="", listen_text="", listener_text="",
                 tls=False, hold_delivery=True, start=True, config=None, preexec_fn=None):
        self.tmp = tempfile.mkdtemp(prefix="impetus-it-")
        self.spool_dir = os.path.join(self.tmp, "spool")
        self.log_dir = os.path.join(self.tmp, "log")
        os.mkdir(self.spool_dir)
        os.mkdir(self.log_dir)
        self.conf_path = os.path.join(self.tmp, "impetus.conf")
        self.stderr_path = os.path.join(self.tmp, "stderr.txt")
        self.stdout_path = os.path.join(self.tmp, "stdout.txt")
        self.port = free_port()
        self.dead_port = free_port()	# Gateway target nobody listens on
        self.hostname = hostname
        self.relay_domains = list(relay_domains)
        self.relay_hosts = list(relay_hosts)
        self.global_text = global_text
        self.listen_text = listen_text
        self.listener_text = listener_text
        self.hold_delivery = hold_delivery
        self.cert = self.key = None
        if tls:
            self.cert, self.key = make_cert(self.tmp, hostname)
        self.proc = None
        self.returncode = None
        self.config_text = config
        self.preexec_fn = preexec_fn	# run in the child before exec (e.g. setrlimit)
        self.write_config()
        if start:
            try:
                self.start()
            except BaseException:
                self.cleanup(check=False)
                raise

    # -- configuration ------------------------------------------------------

    def render_config(self):
        """render_config - the ecelerity.conf text from the parameters."""
        g = []
        g.append('Spoolbase = "%s"' % self.spool_dir)
        g.append('Log_Directory = "%s"' % self.log_dir)
        g.append('Hostname = "%s"' % self.hostname)
        if self.relay_domains:
            g.append("Relay_Domains = ( %s )" % " ".join('"%s"' % d for d in self.relay_domains))
        if self.hold_delivery:
            # Keep accepted mail in the spool: every delivery attempt goes to
            # a closed loopback port and fails transiently (connection refused),
            # so the tests never depend on DNS or on what example.com's MX does.
            g.append('Gateway = "127.0.0.1:%d"' % self.dead_port)
        if self.global_text:
            g.append(self.global_text)
        listen = []
        if self.relay_hosts:
            listen.append("Relay_Hosts = ( %s )" % " ".join('"%s"' % h for h in self.relay_hosts))
        if self.cert:
            listen.append('TLS_Certificate = "%s"' % self.cert)
            listen.append('TLS_Key = "%s"' % self.key)
        if self.listen_text:
            listen.append(self.listen_text)
        text = "# written by tests/integration/harness.py\n"
        text += "\n".join(g) + "\n"
        text += "ESMTP_Listener {\n"
        if self.listener_text:
            text += "  " + self.listener_text.replace("\n", "\n  ") + "\n"
        text += '  Listen "127.0.0.1:%d" {\n' % self.port
        for l in listen:
            text += "    " + l.replace("\n", "\n    ") + "\n"
        text += "  }\n}\n"
        return text

    def write_config(self, text=None):
        """write_config - (re)write impetus.conf from the parameters or the given text."""
        if text is None:
            text = self.config_text if self.config_text is not None else self.render_config()
        tmpname = self.conf_path + ".new"
        with open(tmpname, "w") as f:
            f.write(text)
        os.replace(tmpname, self.conf_path)

    # -- process ------------------------------------------------------------

    def start(self):
        """start - run impetusd -c conf and wait for the 220 banner (same spool on restart)."""
        exe = impetusd_path()
        if not os.access(exe, os.X_OK):
            missing_feature("daemon binary not built: %s (set IMPETUSD)" % exe)
        env = dict(os.environ)
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        out = open(self.stdout_path, "ab")
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([exe, "-c", self.conf_path], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=env, cwd=self.tmp,
                                         preexec_fn=self.preexec_fn)
        finally:
            out.close()
            err.close()
        self.returncode = None
        self.wait_ready()

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise AssertionError("impetusd exited with status %d before greeting.\n"
                                     "config:\n%s\nstderr:\n%s"
                                     % (rc, self.config(), self.stderr()))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5)
                    data = b""
                    while b"\n" not in data:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"220 ") or data.startswith(b"220-"):
                        # Say goodbye and wait for the close, so this probe is
                        # no longer counted against connection limits.
                        try:
                            s.sendall(b"QUIT\r\n")
                            while s.recv(4096):
                                pass
                        except OSError:
                            pass
                        return
                    last = "unexpected greeting %r" % data
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        self.kill9(check=False)
        raise AssertionError("impetusd did not greet on 127.0.0.1:%d within %.0f s (%s).\n"
                             "stderr:\n%s" % (self.port, timeout, last, self.stderr()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if self.proc is None:
            raise AssertionError("daemon was never started")
        rc = self.proc.poll()
        if rc is not None:
            self.returncode = rc
            raise AssertionError("impetusd died (status %d); stderr:\n%s"
                                 % (rc, self.stderr()[-6000:]))

    def signal(self, sig):
        self.assert_alive()
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_TIMEOUT, check=True):
        """stop - SIGTERM, wait, check stderr for sanitizer reports; returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9(check=False)
                raise AssertionError("impetusd did not exit within %.0f s of SIGTERM" % timeout)
            took = time.monotonic() - t0
            if took > 5.0:
                # Usually a session left open mid-transaction holding the
                # shutdown grace: it costs the suite time, so say so.
                sys.stderr.write("harness: impetusd took %.1f s to stop (%s)\n"
                                 % (took, self.tmp))
        self.returncode = self.proc.returncode
        self.proc = None
        if check:
            self.check_sanitizers()
        return self.returncode

    def kill9(self, check=True):
        """kill9 - SIGKILL and reap; returns the exit status."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.returncode = self.proc.returncode
        self.proc = None
        if check:
            self.check_sanitizers()
        return self.returncode

    def check_sanitizers(self):
        """check_sanitizers - AssertionError quoting any ASan/UBSan report on stderr/stdout."""
        for path in (self.stderr_path, self.stdout_path):
            text = self._read(path)
            for pat in SANITIZER_PATTERNS:
                i = text.find(pat)
                if i >= 0:
                    start = max(0, text.rfind("\n", 0, max(0, i - 200)))
                    raise AssertionError("sanitizer report in impetusd's %s:\n%s"
                                         % (os.path.basename(path), text[start:start + 8000]))

    def cleanup(self, check=True):
        """cleanup - stop the daemon if running, check sanitizers, remove the directory."""
        try:
            rc = 0
            if self.proc is not None:
                try:
                    rc = self.stop(check=False)
                except AssertionError:
                    self.kill9(check=False)
                    if check:
                        self.check_sanitizers()
                        raise
            if check:
                # A sanitizer report explains a bad exit status: check it first.
                self.check_sanitizers()
                if rc != 0:
                    raise AssertionError("impetusd exited with status %s on SIGTERM at teardown;"
                                         " stderr:\n%s" % (rc, self.stderr()[-4000:]))
        finally:
            if os.environ.get("KEEP_TMP"):
                sys.stderr.write("harness: kept %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup(check=exc[0] is None)

    # -- files --------------------------------------------------------------

    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        return self._read(self.stderr_path)

    def config(self):
        return self._read(self.conf_path)

    def log(self, name):
        text = self._read(os.path.join(self.log_dir, name))
        return [l for l in text.split("\n") if l]

    def mainlog(self):
        return self.log("mainlog")

    def rejectlog(self):
        return self.log("rejectlog")

    def paniclog(self):
        return self.log("paniclog")

    def wait_log(self, name, pred, timeout=10.0, count=1):
        """
        wait_log - lines of log `name` for which pred(line) is true, once
        there are at least `count` of them (logs are flushed about once a
        second); AssertionError with the log's tail on timeout.
        """
        if isinstance(pred, str):
            sub = pred
            pred = lambda l: sub in l
        deadline = time.monotonic() + timeout
        while True:
            lines = [l for l in self.log(name) if pred(l)]
            if len(lines) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if len(lines) < count:
            raise AssertionError("%s: expected %d matching line(s) within %.0f s, found %d.\n"
                                 "last lines:\n%s" % (name, count, timeout, len(lines),
                                                      "\n".join(self.log(name)[-20:])))
        return lines

    def r_lines(self, msg_id, count=1, timeout=10.0):
        """r_lines - the mainlog R lines of a message, split on '@'."""
        lines = self.wait_log("mainlog", lambda l: l.split("@")[1:2] == [msg_id]
                              and l.split("@")[4:5] == ["R"], timeout=timeout, count=count)
        return [l.split("@") for l in lines]

    # -- spool --------------------------------------------------------------

    def spool_ls(self):
        """spool_ls - `impetus spool ls --json SPOOL` parsed: one dict per live message."""
        tool = impetus_path()
        if not os.access(tool, os.X_OK):
            missing_feature("operator tool not built: %s (needed for `impetus spool ls --json`)"
                            % tool)
        r = subprocess.run([tool, "spool", "ls", "--json", self.spool_dir],
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("`impetus spool ls --json %s` exited %d: %s%s"
                                 % (self.spool_dir, r.returncode,
                                    r.stderr.decode(errors="replace"),
                                    r.stdout.decode(errors="replace")[:2000]))
        out = []
        for line in r.stdout.decode("utf-8", "replace").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise AssertionError("`impetus spool ls --json` printed a line that is "
                                         "not JSON (%s): %r" % (e, line))
        return out

    def spool_msg(self, msg_id):
        """spool_msg - the spool_ls entry with this id, or AssertionError."""
        msgs = self.spool_ls()
        for m in msgs:
            if str(m.get("id", "")).upper() == msg_id.upper():
                return m
        raise AssertionError("message %s not in the spool; spool holds ids %r"
                             % (msg_id, [m.get("id") for m in msgs]))

    def live_count(self):
        """live_count - number of live messages, or None when the tool is missing."""
        try:
            return len(self.spool_ls())
        except FeatureMissing:
            return None

    def spool_grep(self, needle):
        """spool_grep - names of files under the spool whose bytes contain needle."""
        if isinstance(needle, str):
            needle = needle.encode("utf-8")
        hits = []
        for root, _, files in os.walk(self.spool_dir):
            for f in files:
                p = os.path.join(root, f)
                try:
                    with open(p, "rb") as fh:
                        if needle in fh.read():
                            hits.append(p)
                except OSError:
                    pass
        return hits

    # -- clients ------------------------------------------------------------

    def smtp(self, source=None, timeout=REPLY_TIMEOUT):
        """smtp - an smtplib.SMTP connected to the daemon (caller quits/closes)."""
        return smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test",
                            timeout=timeout,
                            source_address=(source, 0) if source else None)

    def raw(self, **kw):
        return RawClient(self.port, **kw)

    def send_mail(self, sender="sender@client.test", rcpts=("rcpt@example.com",), body=None,
                  mail_params="", source=None):
        """send_mail - one whole raw session; returns the accepted id."""
        if body is None:
            body = make_message()
        with RawClient(self.port, source=source) as c:
            r = c.ehlo()
            if r.code != 250:
                raise AssertionError("EHLO refused: %s" % (r,))
            mid = accepted_id(c.transaction(sender, rcpts, body, mail_params))
            c.cmd("QUIT")
            return mid


# ---------------------------------------------------------------------------
# unittest glue
# ---------------------------------------------------------------------------

class DaemonTestCase(unittest.TestCase):
    """
    DaemonTestCase - base class. Set `shared` (a dict of Daemon arguments)
    to start one daemon for the whole class as self.d; tests that change
    the configuration or stop the daemon make their own with new_daemon().
    """

    shared = None
    d = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if cls.shared is not None:
            cls.d = Daemon(**cls.shared)

    @classmethod
    def tearDownClass(cls):
        if cls.d is not None:
            d, cls.d = cls.d, None
            d.cleanup()

    def setUp(self):
        if self.d is not None:
            self.d.assert_alive()

    def new_daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.cleanup)
        # Registered after cleanup, so it runs first, while the logs exist.
        self.addCleanup(self._dump_if_failed, d)
        return d

    def _failure_count(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return 0
        return len(result.failures) + len(result.errors)

    def run(self, result=None):
        self._failures_before = len(result.failures) + len(result.errors) if result else 0
        return super().run(result)

    def _dump_if_failed(self, d):
        """
        _dump_if_failed - when the test has failed, print the tail of the
        daemon's logs to stderr: a flake in CI leaves only this behind.
        """
        if self._failure_count() <= getattr(self, "_failures_before", 0):
            return
        for name in ("mainlog", "paniclog", "rejectlog"):
            lines = d.log(name)
            if name == "mainlog":
                # Deliveries are the bulk and rarely the story: keep the rest.
                lines = [l for l in lines if "@D@" not in l][-150:] + lines[-10:]
            if lines:
                sys.stderr.write("---- %s: %s (%d lines) ----\n%s\n"
                                 % (self.id(), name, len(lines), "\n".join(lines[-160:])))
        err = d.stderr()
        if err:
            sys.stderr.write("---- %s: impetusd stderr (last 1500 chars) ----\n%s\n"
                             % (self.id(), err[-1500:]))

    def raw(self, daemon=None, **kw):
        c = RawClient((daemon or self.d).port, **kw)
        self.addCleanup(c.close)
        return c

    def smtp(self, daemon=None, **kw):
        s = (daemon or self.d).smtp(**kw)
        self.addCleanup(s.close)
        return s

    def assertSpoolDelta(self, daemon, before, delta, msg=""):
        """
        assertSpoolDelta - the spool holds `delta` more live messages than
        `before` (from live_count). Protocol checks run first; a missing
        spool tool is reported here, as a failure, not skipped.
        """
        now = daemon.spool_ls()	# raises FeatureMissing if not built
        if before is None:
            missing_feature("`impetus spool ls` was not available at the start of the test")
        self.assertEqual(len(now), before + delta, "%s: live messages %d, expected %d + %d"
                         % (msg or "spool", len(now), before, delta))
        return now

    def assertReply(self, reply, code, ext=None, text=None, msg=None):
        """assertReply - code, and optionally the enhanced code and a text fragment."""
        where = (msg + ": ") if msg else ""
        self.assertEqual(reply.code, code, "%sexpected %d%s, got %s"
                         % (where, code, (" " + ext) if ext else "", reply))
        if ext is not None:
            self.assertTrue(reply.lines[-1].startswith(ext + " ") or reply.lines[-1] == ext,
                            "%sexpected enhanced code %s, got %s" % (where, ext, reply))
        if text is not None:
            self.assertIn(text.lower(), reply.text.lower(),
                          "%sexpected text %r in %s" % (where, text, reply))


def main():
    unittest.main(verbosity=2)
