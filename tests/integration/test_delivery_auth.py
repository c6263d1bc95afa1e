"""
test_delivery_auth.py - outbound SMTP AUTH (Outbound_SMTP_AUTH_*) against a
real receiver that requires it

The receivers are Python's aiosmtpd (Debian python3-aiosmtpd), an SMTP
server written independently of impetus, with an authenticator that knows
three users:

  tls_rx    STARTTLS offered (self-signed certificate: impetus's TLS is
            opportunistic, it does not verify), AUTH only inside TLS
            (aiosmtpd answers 538 otherwise), PLAIN and LOGIN
  clear_rx  no STARTTLS; AUTH offered in clear text

One daemon, one domain per case, each with its own credentials:

  plain.test     -> tls_rx, PLAIN as alice             delivered, inside TLS, as alice
  login.test     -> tls_rx, LOGIN as bob               delivered, as bob (per-domain
                                                        credentials: each its own user)
  bind.test      -> tls_rx, PLAIN as carol, set in the binding::domain scope of
                    binding b1 (the domain's own stanza says alice)
  wrong.test     -> tls_rx, alice with a wrong password 535 -> P line, B line with
                                                        the reason, a bounce to the sender
  flaky.test     -> tls_rx, PLAIN as flaky             454 on the first attempt -> T line,
                                                        retried, then delivered
  clear-ok.test  -> clear_rx, Allow_Plaintext = true   delivered in clear text
  clear-no.test  -> clear_rx, plain text not allowed   nothing sent: T line "4.7.0 ...
                                                        not sent without TLS", retried
  reload.test    -> tls_rx, PLAIN as alice, Idle_Timeout = 60; a reload
                    switches it to bob: the idle connection logged in as
                    alice is not reused, the next message goes as bob
  bounces.test   -> a plain sink (senders live there, so bounces land in it)

And no password appears in any file under the daemon's directory but its
configuration file; the paniclog warns that this configuration file is
world-readable while it holds a password.
"""

import base64
import os
import re
import signal
import ssl
import threading
import time
import warnings

from harness import DaemonTestCase, free_port, main, make_cert, make_message, missing_feature
from deliverykit import inject, wait_records, wait_until
from sink import Sink

# aiosmtpd 1.4 warns about its own use of Session.login_data on every AUTH.
warnings.filterwarnings("ignore", message=".*login_data is deprecated.*")

USERS = {
    "alice": "alice-S3cret!pw",
    "bob": "bob-Pa55:word",
    "carol": "carol-&-secret",
    "flaky": "flaky-secret-9",
}
WRONG = "not-alices-password-77"


class Receiver:
    """Receiver - an aiosmtpd server that records who authenticated for each message."""

    def __init__(self, tls_cert=None):
        try:
            from aiosmtpd.controller import Controller
            from aiosmtpd.smtp import AuthResult, LoginPassword
        except ImportError:
            missing_feature("aiosmtpd missing: install python3-aiosmtpd (scripts/install-deps.sh)")
        self.AuthResult = AuthResult
        self.LoginPassword = LoginPassword
        self.lock = threading.Lock()
        self.messages = []          # dicts: user, rcpts, data, tls
        self.attempts = []          # (mechanism, user, ok)
        self.flaky_left = 1         # 454s still to give to user "flaky"
        self.port = free_port()
        kw = dict(authenticator=self.authenticate, auth_require_tls=tls_cert is not None)
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls_cert)
            kw["tls_context"] = ctx
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kw)

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """authenticate - the aiosmtpd authenticator: USERS, and 454 once for flaky."""
        if not isinstance(auth_data, self.LoginPassword):
            return self.AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        with self.lock:
            if user == "flaky" and self.flaky_left > 0:
                self.flaky_left -= 1
                self.attempts.append((mechanism, user, "454"))
                return self.AuthResult(success=False, handled=False,
                                       message="454 4.7.0 Temporary authentication failure")
            ok = USERS.get(user) == password
            self.attempts.append((mechanism, user, "235" if ok else "535"))
        if not ok:
            return self.AuthResult(success=False, handled=False)
        return self.AuthResult(success=True, auth_data=auth_data)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # The receiver takes mail only from authenticated clients, as a smart host does.
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(dict(
                user=session.auth_data.login.decode() if session.auth_data else None,
                rcpts=list(envelope.rcpt_tos), data=envelope.content,
                tls=session.ssl is not None))
        return "250 2.0.0 OK"

    def to(self, rcpt):
        with self.lock:
            return [m for m in self.messages if rcpt in m["rcpts"]]


def auth_stanza(user, password, mech="PLAIN", extra=""):
    return ('Outbound_SMTP_AUTH_User = "%s" Outbound_SMTP_AUTH_Pass = "%s" '
            'Outbound_SMTP_AUTH_Type = "%s" %s' % (user, password, mech, extra))


class DeliveryAuthTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.certdir = tempfile.mkdtemp(prefix="impetus-auth-")
        cert = make_cert(cls.certdir, "relay.test")
        cls.tls_rx = Receiver(tls_cert=cert)
        cls.clear_rx = Receiver()
        cls.bounce_sink = Sink()
        cls.servers = [cls.tls_rx, cls.clear_rx, cls.bounce_sink]
        for s in cls.servers:
            s.start()
        tls_route = 'Routes = ( "smtp://127.0.0.1:%d" )' % cls.tls_rx.port
        clear_route = 'Routes = ( "smtp://127.0.0.1:%d" )' % cls.clear_rx.port
        cls.shared = dict(
            relay_domains=(), relay_hosts=("127.0.0.0/8",), hold_delivery=False,
            global_text="\n".join([
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Domain "plain.test" { %s %s }' % (tls_route, auth_stanza("alice", USERS["alice"])),
                'Domain "login.test" { %s %s }'
                % (tls_route, auth_stanza("bob", USERS["bob"], "LOGIN")),
                'Domain "bind.test" { %s Assign_Binding = "b1" %s }'
                % (tls_route, auth_stanza("alice", USERS["alice"])),
                'Binding "b1" { Domain "bind.test" { %s } }'
                % auth_stanza("carol", USERS["carol"], "LOGIN"),
                'Domain "wrong.test" { %s %s }'
                % (tls_route, auth_stanza("alice", WRONG, extra='Outbound_SMTP_AUTH_Key = "k-wrong"')),
                'Domain "flaky.test" { %s %s }' % (tls_route, auth_stanza("flaky", USERS["flaky"])),
                'Domain "clear-ok.test" { %s %s }'
                % (clear_route, auth_stanza("alice", USERS["alice"], "LOGIN",
                                            "Outbound_SMTP_AUTH_Allow_Plaintext = true")),
                'Domain "clear-no.test" { %s %s }'
                % (clear_route, auth_stanza("alice", USERS["alice"])),
                cls.reload_stanza("alice"),
                'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                % cls.bounce_sink.port,
            ]))
        try:
            super().setUpClass()
        except BaseException:
            for s in cls.servers:
                s.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            for s in cls.servers:
                s.stop()
            import shutil
            shutil.rmtree(cls.certdir, ignore_errors=True)

    @classmethod
    def reload_stanza(cls, user):
        return 'Domain "reload.test" { Routes = ( "smtp://127.0.0.1:%d" ) Idle_Timeout = 60 %s }' % (
            cls.tls_rx.port, auth_stanza(user, USERS[user]))

    def send(self, domain):
        tag = "r%d" % (time.time_ns() % 10**12)
        rcpt = "%s@%s" % (tag, domain)
        sender = "s-%s@bounces.test" % tag
        mid = inject(self.d, sender, [rcpt], make_message(marker=tag))
        return mid, rcpt, sender

    def arrived(self, rx, rcpt, mid):
        wait_records(self.d, "D", mid)
        got = rx.to(rcpt)
        self.assertEqual(len(got), 1, "exactly one copy of the message expected at the receiver")
        return got[0]

    def test_plain_inside_tls(self):
        mid, rcpt, _ = self.send("plain.test")
        m = self.arrived(self.tls_rx, rcpt, mid)
        self.assertEqual(m["user"], "alice")
        self.assertTrue(m["tls"], "AUTH PLAIN credentials went out without TLS")
        self.assertIn(("PLAIN", "alice", "235"), self.tls_rx.attempts)

    def test_login_and_per_domain_credentials(self):
        mid, rcpt, _ = self.send("login.test")
        mid2, rcpt2, _ = self.send("plain.test")
        self.assertEqual(self.arrived(self.tls_rx, rcpt, mid)["user"], "bob")
        self.assertEqual(self.arrived(self.tls_rx, rcpt2, mid2)["user"], "alice")
        self.assertIn(("LOGIN", "bob", "235"), self.tls_rx.attempts)

    def test_binding_domain_scope(self):
        mid, rcpt, _ = self.send("bind.test")
        m = self.arrived(self.tls_rx, rcpt, mid)
        self.assertEqual(m["user"], "carol",
                         "the binding::domain credentials should win over the domain's")
        self.assertIn(("LOGIN", "carol", "235"), self.tls_rx.attempts)

    def test_wrong_password_bounces(self):
        mid, rcpt, sender = self.send("wrong.test")
        p = wait_records(self.d, "P", mid)[0]
        self.assertIn("535 5.7.8", p["response"])
        self.assertIn("(outbound AUTH as user alice rejected)", p["response"])
        b = wait_records(self.d, "B", mid)[0]
        self.assertIn("535 5.7.8", b["response"])
        self.assertIn("outbound AUTH as user alice rejected", b["response"])
        self.assertEqual(self.tls_rx.to(rcpt), [])
        self.assertIn(("PLAIN", "alice", "535"), self.tls_rx.attempts)
        wait_until(lambda: [t for t in self.bounce_sink.messages() if sender in t.rcpts],
                   what="a bounce to %s" % sender)
        bounce = [t for t in self.bounce_sink.messages() if sender in t.rcpts][0]
        text = re.sub(rb"\r\n[ \t]+", b" ", bounce.body)	# unfold
        self.assertIn(b"Status: 5.7.8", text)
        self.assertIn(b"Diagnostic-Code: smtp; 535 5.7.8 Authentication credentials invalid "
                      b"(outbound AUTH as user alice rejected)", text)
        self.d.wait_log("paniclog", lambda l: "smtpc auth rejected" in l and 'key="k-wrong"' in l)

    def test_454_is_retried(self):
        mid, rcpt, _ = self.send("flaky.test")
        t = wait_records(self.d, "T", mid)[0]
        self.assertIn("454 4.7.0", t["response"])
        self.assertIn("failed temporarily", t["response"])
        m = self.arrived(self.tls_rx, rcpt, mid)
        self.assertEqual(m["user"], "flaky")
        self.assertEqual([a[2] for a in self.tls_rx.attempts if a[1] == "flaky"], ["454", "235"])

    def test_reload_new_credentials(self):
        mid, rcpt, _ = self.send("reload.test")
        self.assertEqual(self.arrived(self.tls_rx, rcpt, mid)["user"], "alice")
        before = len(self.d.wait_log("paniclog", "reload configuration", count=0))
        self.d.global_text = self.d.global_text.replace(self.reload_stanza("alice"),
                                                        self.reload_stanza("bob"))
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log("paniclog", "reload configuration", count=before + 1)
        mid, rcpt, _ = self.send("reload.test")
        self.assertEqual(self.arrived(self.tls_rx, rcpt, mid)["user"], "bob",
                         "a connection logged in with the old credentials was reused")

    def test_plaintext_allowed(self):
        mid, rcpt, _ = self.send("clear-ok.test")
        m = self.arrived(self.clear_rx, rcpt, mid)
        self.assertEqual(m["user"], "alice")
        self.assertFalse(m["tls"])

    def test_no_tls_not_allowed(self):
        mid, rcpt, _ = self.send("clear-no.test")
        recs = wait_records(self.d, "T", mid, count=2)	# retried, still not sent
        for t in recs:
            self.assertIn("4.7.0 outbound AUTH as user alice not sent without TLS", t["response"])
            self.assertIn("Outbound_SMTP_AUTH_Allow_Plaintext is false", t["response"])
        self.assertEqual(self.clear_rx.to(rcpt), [])
        self.assertEqual(records_p(self.d, mid), [])

    def test_zz_no_password_in_any_log(self):
        # Runs last (alphabetical order): every case above has written its lines.
        for dom in ("plain.test", "login.test", "wrong.test", "clear-ok.test"):
            self.send(dom)
        time.sleep(2.5)	# two log flushes
        secrets = set()
        for user, pw in list(USERS.items()) + [("alice", WRONG)]:
            secrets.add(pw.encode())
            secrets.add(base64.b64encode(pw.encode()))
            secrets.add(base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()))
        conf = os.path.realpath(self.d.conf_path)
        checked = 0
        for root, _dirs, files in os.walk(self.d.tmp):
            for name in files:
                path = os.path.join(root, name)
                if os.path.realpath(path) == conf:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
                checked += 1
                for s in secrets:
                    self.assertNotIn(s, data, "a password is in %s" % path)
        self.assertGreater(checked, 3)
        self.assertTrue(any("smtpc auth" in l for l in self.d.paniclog()))
        # The configuration file is world-readable here (umask 022) and holds passwords.
        self.assertTrue(any("holds Outbound_SMTP_AUTH_Pass and is readable by everyone" in l
                            for l in self.d.paniclog()), "no warning about the readable config")


def records_p(daemon, mid):
    from deliverykit import records
    return records(daemon, "P", mid)


if __name__ == "__main__":
    main()
