"""
test_smtp_auth.py - inbound SMTP AUTH (PLAIN, LOGIN) against the real daemon

docs/smtp-server.md, "Authentication": AUTH is offered per listener with
SMTP_Extensions = ( "AUTH LOGIN PLAIN" ) and AuthLoginParameters = [ uri =
"file:///..." ] (a file of user:crypt-hash lines), only under TLS unless
Auth_Allow_Plaintext is set; an authenticated client may relay, its name
is in the R line; failures go to the rejectlog and are slowed down per
client address (the tarpit), then answered 421; no log ever holds a
password. Two independent clients drive it: swaks (Debian's swaks) and
Python's smtplib; raw lines (harness.RawClient) check the exact replies.

The hashes are made here by libcrypt itself (crypt_gensalt + crypt through
ctypes): yescrypt for alice, SHA-512 for bob.
"""

import base64
import ctypes
import ctypes.util
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import (RawClient, Daemon, client_tls_context, free_port, impetusd_path,
                     make_message, missing_feature)

PASSWORDS = {"alice": "s3cret-Alice!", "bob": "Bob's pa55 w0rd", "carol": "carol-new-pw"}
AUTH_EXT = 'SMTP_Extensions = ( "ENHANCEDSTATUSCODES" "AUTH LOGIN PLAIN" )'


def crypt_hash(password, prefix):
    """crypt_hash - crypt(3) of password with a fresh salt of the method prefix ($y$, $6$)."""
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    lib = ctypes.CDLL(name)
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    setting = lib.crypt_gensalt(prefix.encode(), 0, None, 0)
    h = lib.crypt(password.encode(), setting)
    assert h and h.startswith(prefix.encode()), "libcrypt cannot make %s hashes" % prefix
    return h.decode()


def write_passwd(path, users):
    """write_passwd - a password file with a comment, a blank line and users (name, method)."""
    lines = ["# impetus test accounts", ""]
    for name, method in users:
        lines.append("%s:%s" % (name, crypt_hash(PASSWORDS[name], method)))
    with open(path + ".new", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".new", path)


def plain_b64(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password)).encode()).decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def swaks(port, *args, timeout=60):
    """swaks - run swaks against the daemon; (exit code, transcript)."""
    exe = shutil.which("swaks")
    if exe is None:
        missing_feature("swaks not installed (scripts/install-deps.sh)")
    r = subprocess.run([exe, "--server", "127.0.0.1", "--port", str(port), "--helo", "client.test",
                        "--from", "sender@example.com", "--timeout", "30"] + list(args),
                       capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")


class AuthDaemon:
    """AuthDaemon - a Daemon with a password file and AUTH on its listener."""

    @staticmethod
    def make(tls=True, listen_extra="", global_text="", users=(("alice", "$y$"), ("bob", "$6$")),
             env=None):
        tmp = tempfile.mkdtemp(prefix="impetus-auth-")
        passwd = os.path.join(tmp, "passwd")
        write_passwd(passwd, users)
        listen = "%s\nAuthLoginParameters = [ uri = \"file://%s\" ]" % (AUTH_EXT, passwd)
        if listen_extra:
            listen += "\n" + listen_extra
        old = {}
        for k, v in (env or {}).items():
            old[k] = os.environ.get(k)
            os.environ[k] = v
        try:
            d = Daemon(tls=tls, relay_domains=("example.com",), listen_text=listen,
                       global_text=global_text)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        d.passwd = passwd
        d.passwd_tmp = tmp
        return d


def smtp_tls(port):
    """smtp_tls - an smtplib session after EHLO, STARTTLS, EHLO."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    s.ehlo("client.test")
    s.starttls(context=client_tls_context())
    s.ehlo("client.test")
    return s


def client_tls(port):
    """client_tls - a raw Client after EHLO, STARTTLS, EHLO."""
    c = RawClient(port)
    c.ehlo()
    c.starttls()
    c.ehlo()
    return c


class TestSmtpAuth(unittest.TestCase):
    """One daemon with TLS, AUTH LOGIN PLAIN, no tarpit delay (the tarpit has its own class)."""

    @classmethod
    def setUpClass(cls):
        # IMPETUS_TRACE=smtp: every command line goes to the paniclog, so the
        # "no credentials in any log" check covers the trace too.
        cls.d = AuthDaemon.make(global_text="Auth_Tarpit_Delay = 0\nAuth_Failure_Limit = 0",
                                env={"IMPETUS_TRACE": "smtp"})

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        shutil.rmtree(cls.d.passwd_tmp, ignore_errors=True)

    # -- offered only under TLS -------------------------------------------

    def test_not_offered_without_tls(self):
        c = RawClient(self.d.port)
        r = c.ehlo()
        self.assertEqual(r.code, 250)
        self.assertNotIn("AUTH", r.text.upper().split(), "AUTH offered in clear text: " + str(r))
        self.assertIn("STARTTLS", r.text)
        r = c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"]))
        self.assertEqual((r.code, r.first.split()[0]), (538, "5.7.11"), str(r))
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.test>").code, 550, "relayed without AUTH")
        c.close()
        self.d.wait_log("rejectlog", "538 5.7.11")

    def test_swaks_without_tls_cannot_auth(self):
        rc, out = swaks(self.d.port, "--to", "x@elsewhere.test", "--auth", "PLAIN",
                        "--auth-user", "alice", "--auth-password", PASSWORDS["alice"])
        self.assertNotEqual(rc, 0, out)
        self.assertNotIn("235 ", out)

    def test_offered_after_starttls(self):
        c = client_tls(self.d.port)
        r = c.ehlo()
        self.assertIn("AUTH PLAIN LOGIN", r.text, str(r))
        c.close()

    # -- good passwords ---------------------------------------------------

    def test_swaks_plain_and_relay(self):
        rc, out = swaks(self.d.port, "--tls", "--to", "someone@elsewhere.test", "--auth", "PLAIN",
                        "--auth-user", "alice", "--auth-password", PASSWORDS["alice"],
                        "--header", "Subject: swaks plain")
        self.assertEqual(rc, 0, out)
        self.assertIn("235 2.7.0", out)
        self.assertRegex(out, r"250 2\.0\.0 OK")

    def test_swaks_login(self):
        rc, out = swaks(self.d.port, "--tls", "--to", "someone@elsewhere.test", "--auth", "LOGIN",
                        "--auth-user", "bob", "--auth-password", PASSWORDS["bob"])
        self.assertEqual(rc, 0, out)
        self.assertIn("334 VXNlcm5hbWU6", out)
        self.assertIn("235 2.7.0", out)

    def test_smtplib_login_relays_with_auth_user_in_r_line(self):
        # Without AUTH the same client may not relay to elsewhere.test.
        s = smtp_tls(self.d.port)
        with self.assertRaises(smtplib.SMTPRecipientsRefused):
            s.sendmail("sender@example.com", ["rcpt@elsewhere.test"], make_message())
        s.rset()
        code, text = s.login("bob", PASSWORDS["bob"])
        self.assertEqual(code, 235, text)
        s.sendmail("sender@example.com", ["rcpt@elsewhere.test"], make_message())
        s.quit()
        line = self.d.wait_log("mainlog", lambda l: "@R@rcpt@elsewhere.test@" in l)[0]
        self.assertEqual(line.split("@")[-1], "bob", line)
        self.assertEqual(len(line.split("@")), 15, "R line: 14 fields plus auth-user: " + line)

    def test_plain_initial_response_and_challenge(self):
        c = client_tls(self.d.port)
        r = c.cmd("AUTH PLAIN")
        self.assertEqual((r.code, r.text), (334, ""), str(r))
        r = c.cmd(plain_b64("alice", PASSWORDS["alice"]))
        self.assertEqual((r.code, r.first), (235, "2.7.0 Authentication successful"), str(r))
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 503)
        c.close()
        # initial response, authzid equal to the user (RFC 4616)
        c = client_tls(self.d.port)
        r = c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"], authzid="alice"))
        self.assertEqual(r.code, 235, str(r))
        c.close()

    def test_mail_auth_parameter(self):
        # RFC 4954 5: AUTH= on MAIL is accepted once AUTH is offered (and not trusted).
        c = client_tls(self.d.port)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 235)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com> AUTH=<>").code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com> AUTH=bob+40example.com").code, 250)
        c.close()
        c = RawClient(self.d.port)
        c.ehlo()
        r = c.cmd("MAIL FROM:<a@example.com> AUTH=<>")
        self.assertEqual(r.code, 555, "AUTH= where AUTH is not offered: " + str(r))
        c.close()

    def test_login_initial_response(self):
        c = client_tls(self.d.port)
        r = c.cmd("AUTH LOGIN " + b64("bob"))
        self.assertEqual((r.code, r.text), (334, "UGFzc3dvcmQ6"), str(r))
        r = c.cmd(b64(PASSWORDS["bob"]))
        self.assertEqual(r.code, 235, str(r))
        c.close()

    # -- bad passwords, unknown users, protocol errors ----------------------

    def test_bad_password_and_unknown_user(self):
        rc, out = swaks(self.d.port, "--tls", "--to", "x@elsewhere.test", "--auth", "PLAIN",
                        "--auth-user", "alice", "--auth-password", "wrong-Pw-1")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("535 5.7.8", out)
        s = smtp_tls(self.d.port)
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            s.login("mallory", "wrong-Pw-2")
        self.assertEqual(e.exception.smtp_code, 535)
        s.close()
        lines = self.d.wait_log("rejectlog", 'user="mallory" reason=unknown_user')
        self.assertIn('P="auth"', lines[0])
        self.d.wait_log("rejectlog", 'mech=PLAIN user="alice" reason=bad_password')
        for l in self.d.rejectlog():
            self.assertNotIn("wrong-Pw", l)

    def test_protocol_errors(self):
        c = client_tls(self.d.port)
        self.assertEqual(c.cmd("AUTH CRAM-MD5").code, 504)
        self.assertEqual(c.cmd("AUTH").code, 501)
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r.code, 334)
        r = c.cmd("*")
        self.assertEqual((r.code, r.first.split()[0]), (501, "5.7.0"), str(r))
        self.assertEqual(c.cmd("AUTH PLAIN !!!notbase64").first.split()[0], "5.5.2")
        self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
        r = c.cmd("YWJj ZGVm")
        self.assertEqual((r.code, r.first.split()[0]), (501, "5.5.2"), str(r))
        # PLAIN without the second NUL, and on behalf of someone else
        self.assertEqual(c.cmd("AUTH PLAIN " + b64("alice")).code, 501)
        r = c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"], authzid="bob"))
        self.assertEqual(r.code, 535, str(r))
        # AUTH in a transaction
        self.assertEqual(c.cmd("MAIL FROM:<a@example.com>").code, 250)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 503)
        self.assertEqual(c.cmd("RSET").code, 250)
        # still usable afterwards
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 235)
        c.close()
        c = RawClient(self.d.port)
        c.cmd("HELO client.test")
        c.starttls()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 503,
                         "AUTH before EHLO")
        c.close()

    def test_zz_no_credentials_in_any_log(self):
        # Runs last (zz): every exchange above has happened. First the
        # positive marker: the trace is on and shows the AUTH commands.
        self.d.wait_log("paniclog", "smtp < AUTH PLAIN ****")
        self.d.wait_log("paniclog", "smtp < ****")
        secrets = []
        for user, pw in list(PASSWORDS.items()) + [("alice", "wrong-Pw-1"), ("mallory", "wrong-Pw-2")]:
            secrets += [pw, b64(pw), plain_b64(user, pw), plain_b64(user, pw, authzid=user)]
        for name in os.listdir(self.d.log_dir):
            with open(os.path.join(self.d.log_dir, name), "rb") as f:
                data = f.read().decode("utf-8", "replace")
            self.assertTrue(data or name != "paniclog")
            for s in secrets:
                self.assertNotIn(s, data, "log %s holds a credential" % name)
        for s in secrets:
            self.assertNotIn(s, self.d.stderr())


class TestAuthPlaintextAllowed(unittest.TestCase):
    def test_plaintext_allowed_by_option(self):
        d = AuthDaemon.make(tls=False, listen_extra="Auth_Allow_Plaintext = true")
        try:
            c = RawClient(d.port)
            self.assertIn("AUTH PLAIN LOGIN", c.ehlo().text)
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 235)
            c.close()
            s = smtplib.SMTP("127.0.0.1", d.port, timeout=30)
            s.ehlo("client.test")
            self.assertEqual(s.login("bob", PASSWORDS["bob"])[0], 235)
            s.quit()
            rc, out = swaks(d.port, "--to", "x@elsewhere.test", "--auth", "LOGIN",
                            "--auth-user", "alice", "--auth-password", PASSWORDS["alice"])
            self.assertEqual(rc, 0, out)
        finally:
            d.cleanup()
            shutil.rmtree(d.passwd_tmp, ignore_errors=True)


class TestAuthTarpit(unittest.TestCase):
    """Delays of 1 s then 2 s, and 421 at the third failure; then the address is blocked."""

    def test_tarpit_then_421(self):
        d = AuthDaemon.make(global_text="Auth_Tarpit_Delay = 1\nAuth_Tarpit_Max_Delay = 2\n"
                            "Auth_Failure_Limit = 3\nAuth_Failure_Window = 600")
        try:
            c = client_tls(d.port)
            times = []
            for i in range(2):
                t = time.monotonic()
                r = c.cmd("AUTH PLAIN " + plain_b64("alice", "guess-%d" % i), timeout=30)
                times.append(time.monotonic() - t)
                self.assertEqual(r.code, 535, str(r))
            self.assertGreaterEqual(times[0], 0.95)
            self.assertGreaterEqual(times[1], 1.95)
            self.assertLess(times[0], 1.9, "first delay should be about 1 s: %r" % times)
            # The session still works between failures (the tarpit does not eat commands).
            self.assertEqual(c.cmd("NOOP").code, 250)
            t = time.monotonic()
            r = c.cmd("AUTH PLAIN " + plain_b64("alice", "guess-2"), timeout=30)
            self.assertEqual((r.code, r.first.split()[0]), (421, "4.7.0"), str(r))
            self.assertLess(time.monotonic() - t, 1.5, "the 421 is not held back")
            self.assertTrue(c.wait_closed(), "the 421 closes the connection")
            c.close()
            # Another connection from the same address: blocked, even with the right password.
            c = client_tls(d.port)
            r = c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"]), timeout=30)
            self.assertEqual(r.code, 421, str(r))
            self.assertTrue(c.wait_closed(), "the 421 closes the connection")
            c.close()
            lines = d.wait_log("rejectlog", "421 4.7.0 too many failed authentication", count=2)
            self.assertIn('user="alice"', lines[0])
            self.assertEqual(len(d.wait_log("rejectlog", "535 5.7.8 authentication failed",
                                            count=2)), 2)
            # smtplib sees the same, through its own login()
            s = smtp_tls(d.port)
            with self.assertRaises((smtplib.SMTPServerDisconnected,
                                    smtplib.SMTPAuthenticationError)):
                s.login("alice", PASSWORDS["alice"])
            s.close()
        finally:
            d.cleanup()
            shutil.rmtree(d.passwd_tmp, ignore_errors=True)

    def test_client_leaves_while_held(self):
        # A client that leaves during the delay still counts, and nothing leaks
        # (the sanitizer suite checks the daemon at cleanup).
        d = AuthDaemon.make(global_text="Auth_Tarpit_Delay = 1\nAuth_Tarpit_Max_Delay = 8\n"
                            "Auth_Failure_Limit = 10")
        try:
            c = client_tls(d.port)
            c.send(("AUTH PLAIN %s\r\n" % plain_b64("alice", "bad-1")).encode())
            c.close()
            d.wait_log("rejectlog", "reason=bad_password delay_ms=1000")
            c = client_tls(d.port)
            c.send(("AUTH PLAIN %s\r\n" % plain_b64("alice", "bad-2")).encode())
            time.sleep(0.3)		# the check is done, the 535 is held back for 2 s
            c.close()
            d.wait_log("rejectlog", "reason=bad_password delay_ms=2000")
            c = client_tls(d.port)
            t = time.monotonic()
            r = c.cmd("AUTH PLAIN " + plain_b64("alice", "bad-3"), timeout=30)
            self.assertEqual(r.code, 535, str(r))
            self.assertGreaterEqual(time.monotonic() - t, 3.9, "third failure: 4 s")
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"]),
                                   timeout=30).code, 235)
            c.close()
        finally:
            d.cleanup()
            shutil.rmtree(d.passwd_tmp, ignore_errors=True)

    def test_swaks_sees_the_delay(self):
        d = AuthDaemon.make(global_text="Auth_Tarpit_Delay = 2\nAuth_Failure_Limit = 10")
        try:
            t = time.monotonic()
            rc, out = swaks(d.port, "--tls", "--to", "x@elsewhere.test", "--auth", "PLAIN",
                            "--auth-user", "alice", "--auth-password", "nope")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("535 5.7.8", out)
            self.assertGreaterEqual(time.monotonic() - t, 1.95)
        finally:
            d.cleanup()
            shutil.rmtree(d.passwd_tmp, ignore_errors=True)


class TestAuthReload(unittest.TestCase):
    def test_reload_rereads_passwd_and_keeps_old_on_error(self):
        d = AuthDaemon.make(global_text="Auth_Tarpit_Delay = 0\nAuth_Failure_Limit = 0")
        try:
            c = client_tls(d.port)
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("carol", PASSWORDS["carol"])).code, 535)
            c.close()
            write_passwd(d.passwd, [("carol", "$6$")])
            d.signal(signal.SIGHUP)
            d.wait_log("paniclog", "reload configuration=")
            c = client_tls(d.port)
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("carol", PASSWORDS["carol"])).code, 235)
            c.close()
            c = client_tls(d.port)
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("alice", PASSWORDS["alice"])).code, 535)
            c.close()
            # A malformed file: the reload is refused, carol still logs in.
            with open(d.passwd, "a") as f:
                f.write("broken line without colon\n")
            d.signal(signal.SIGHUP)
            line = d.wait_log("paniclog", "reload failed")[0]
            self.assertRegex(line, r"passwd:4: expected \"user:hash\"")
            c = client_tls(d.port)
            self.assertEqual(c.cmd("AUTH PLAIN " + plain_b64("carol", PASSWORDS["carol"])).code, 235)
            c.close()
        finally:
            d.cleanup()
            shutil.rmtree(d.passwd_tmp, ignore_errors=True)


class TestAuthConfigCheck(unittest.TestCase):
    def test_malformed_passwd_refused_by_check(self):
        tmp = tempfile.mkdtemp(prefix="impetus-auth-")
        try:
            passwd = os.path.join(tmp, "passwd")
            write_passwd(passwd, [("alice", "$y$")])
            with open(passwd, "a") as f:
                f.write("bob:$1$legacy$md5hashxxxxxxxxxxxxxxx\n")
            conf = os.path.join(tmp, "impetus.conf")
            with open(conf, "w") as f:
                f.write('ESMTP_Listener {\n  Listen "127.0.0.1:%d" {\n    %s\n'
                        '    AuthLoginParameters = [ uri = "file://%s" ]\n  }\n}\n'
                        % (free_port(), AUTH_EXT, passwd))
            r = subprocess.run([impetusd_path(), "-t", "-c", conf], capture_output=True,
                               timeout=60)
            err = (r.stdout + r.stderr).decode()
            self.assertNotEqual(r.returncode, 0, err)
            self.assertIn("%s:4:35: AuthLoginParameters: %s:4: user \"bob\"" % (conf, passwd), err)
            self.assertNotIn("md5hash", err, "the hash is not echoed")
            # fixed: accepted
            write_passwd(passwd, [("alice", "$y$"), ("bob", "$6$")])
            r = subprocess.run([impetusd_path(), "-t", "-c", conf], capture_output=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
