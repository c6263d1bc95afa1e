"""
test_module_opendkim.py - the opendkim module signing through the real daemon

Messages are relayed through impetusd to tests/integration/sink.py; every
DKIM-Signature the sink receives is verified by dkimpy (Debian
python3-dkim, python3-nacl for Ed25519) whose DNS look-up is a local map
of this test's keys (selector -> "v=DKIM1; k=...; p=..."), so a pass means
an independent verifier accepted the bytes the next hop got. OpenDKIM
(opendkim_verify.py: the opendkim daemon's test mode, keys from a
TestDNSData file) judges every single signature again, except those its
test mode cannot read (opendkim_can_read).

Keys are made here with the openssl command (RSA 1024, 2048, 4096 and
Ed25519) and laid out as Momentum's example does, <dir>/<domain>/<selector>.key,
with `key = "<dir>/%{d}/%{s}.key"`. Each dkim_domain stanza below names one
case (a key size, a canonicalisation pair, both digests at once...), and
the From: domain of a message picks it.

What must also hold, and is checked so that the positive results mean
something: the signature breaks when the received bytes are changed
(dkimpy refuses them); a second Subject: added below an oversigned one is
refused; opendkim_sign = false in a Domain or Binding scope leaves the
message unsigned (after a signed message of the same daemon proves
signing works); a missing key is one paniclog line, the message still
delivered unsigned; sign_condition = "can_relay" signs a client of
Relay_Hosts and not one that may only send to Relay_Domains, and other
keys are read from the connection and message contexts (set by
tests/modules/test_validate.c), an unset key leaving mail unsigned; after a key
file is replaced and SIGHUP, the new signature verifies with the new key
and not with the old; a 5,000-octet line, which the SMTP client folds on
the wire, and bare LFs still verify at the next hop. `impetusd -t`
reports bad options with file:line:col.
"""

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import opendkim_verify  # noqa: E402
from deliverykit import inject, inject_many, wait_records, wait_until  # noqa: E402
from sink import Sink  # noqa: E402

try:
    import dkim
except ImportError:  # reported by the tests, never skipped
    dkim = None

RCPT_DOMAIN = "sink.test"
HEADERS = '( "From" "To" "Subject" "Date" "Message-ID" )'

# The selectors and their keys (openssl genpkey arguments, DNS k=).
KEYS = {
    "s1024": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], "rsa"),
    "s2048": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa"),
    "s4096": (["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"], "rsa"),
    "sed": (["-algorithm", "ed25519"], "ed25519"),
}

# From: domain -> the body of its dkim_domain stanza.
DOMAINS = {
    "rsa1024.test": 'selector = "s1024"',
    "rsa2048.test": 'selector = "s2048"',
    "rsa4096.test": 'selector = "s4096"',
    "ed.test": 'digest = "ed25519-sha256" selector = "sed"',
    "both.test": 'digest = ( "rsa-sha256" "ed25519-sha256" ) selector = ( "s2048" "sed" )',
    "ss.test": 'selector = "s2048" header_canon = "simple" body_canon = "simple"',
    "sr.test": 'selector = "s2048" header_canon = "simple" body_canon = "relaxed"',
    "rs.test": 'selector = "s2048" header_canon = "relaxed" body_canon = "simple"',
    "rr.test": 'selector = "s2048" header_canon = "relaxed" body_canon = "relaxed"',
    "edss.test": 'digest = "ed25519-sha256" selector = "sed" header_canon = "simple" '
                 'body_canon = "simple"',
    "over.test": 'selector = "s2048" oversign_headerlist = ( "From" "Subject" )',
    "corp.base.test": 'selector = "s2048" base_domain = "base.test"',
    "nokey.test": 'selector = "nosuch"',
    "cond.test": 'selector = "s2048" sign_condition = "can_relay"',
    "authd.test": 'selector = "s2048" sign_condition = "auth_user"',
    "conn.test": 'selector = "s2048" sign_condition = "test.rcpts_seen"',
    "mess.test": 'selector = "s2048" sign_condition = "test.rcpt.0"',
    "unset.test": 'selector = "s2048" sign_condition = "test.nosuch"',
    "inj.test": 'selector = "s2048"',
    "injcond.test": 'selector = "s2048" sign_condition = "inj.ok"',
    "extra.test": 'selector = "s2048" lifetime = 2 body_length_limit = true '
                  'identity = "news@%{d}"',
    "reload.test": 'selector = "srl"',
}


def parse_fields(body):
    """parse_fields - the header fields of a message's bytes, unfolded, in order."""
    head = body.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    fields = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def tags(field):
    """tags - the tag=value pairs of a DKIM-Signature field (white space removed)."""
    v = field.split(":", 1)[1]
    out = {}
    for part in v.split(";"):
        if "=" in part:
            k, val = part.split("=", 1)
            out[k.strip()] = re.sub(r"\s+", "", val)
    return out


def difficult_message(marker, from_domain):
    """difficult_message - folded headers, trailing blank lines, 8-bit body, long lines."""
    long_line = (b"x" * 997) + b"\r\n"
    return (b"From: \"Sender, Name\" <news@" + from_domain.encode() + b">\r\n"
            b"To: r@" + RCPT_DOMAIN.encode() + b"\r\n"
            b"Subject:   folded\r\n\tacross   two lines\r\n"
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
            b"Message-ID: <" + marker.encode() + b"@client.test>\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"
            b"\r\n"
            b"body " + marker.encode() + b"\r\n"
            b"eight bit: \xc3\xa5\xc3\xa4\xc3\xb6 \xe2\x82\xac\r\n"
            b"spaces   and\ttabs \t \r\n" + long_line + long_line +
            b"\r\n\r\n\r\n")


def opendkim_can_read(body, t):
    """
    opendkim_can_read - whether OpenDKIM's test mode (opendkim_verify.py)
    can judge this signature: it rebuilds each header field as "Name:
    value" with one space, so under simple header canonicalisation a
    field written otherwise ("Subject:   folded") no longer matches what
    was signed. dkimpy judges those alone.
    """
    if not t.get("c", "simple").startswith("simple"):
        return True
    head = body.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            continue
        if not re.match(rb"[^:]+: [^ \t]", line):
            return False
    return True


class Opendkim(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix="impetus-odkim-")
        cls.keydir = os.path.join(cls.dir, "keys")
        cls.pem = {}
        cls.pub = {}
        for sel, (args, ktype) in KEYS.items():
            cls.pem[sel], cls.pub[sel] = cls.make_key(os.path.join(cls.dir, sel + ".pem"), args, ktype)
        for dom in DOMAINS:
            os.makedirs(os.path.join(cls.keydir, dom))
            for sel in KEYS:
                os.symlink(cls.pem[sel], os.path.join(cls.keydir, dom, sel + ".key"))
        os.makedirs(os.path.join(cls.keydir, "base.test"))
        os.symlink(cls.pem["s2048"], os.path.join(cls.keydir, "base.test", "s2048.key"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)
        super().tearDownClass()

    @staticmethod
    def make_key(path, args, ktype):
        """make_key - a private key file and its DNS record text."""
        subprocess.run(["openssl", "genpkey"] + args + ["-out", path], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        pub = der[-32:] if ktype == "ed25519" else der	# RFC 8463 §4: the bare key
        return path, "v=DKIM1; k=%s; p=%s" % (ktype, base64.b64encode(pub).decode())

    def setUp(self):
        super().setUp()
        if dkim is None:
            self.fail("dkimpy missing: install python3-dkim and python3-nacl (scripts/install-deps.sh)")
        self.records = dict(self.pub)
        self.opendkim_checked = 0

    def dns(self, name, timeout=5):
        """dns - dkimpy's TXT look-up: the record of the selector, for any domain."""
        if isinstance(name, bytes):
            name = name.decode()
        sel = name.split("._domainkey.", 1)[0]
        return self.records.get(sel, "").encode()

    # -- the daemon --------------------------------------------------------------

    def stanza(self, top="", domains=None):
        """stanza - the opendkim stanza with the dkim_domain stanzas of DOMAINS."""
        domains = DOMAINS if domains is None else domains
        text = ('opendkim "opendkim1" {\n  headerlist = %s\n  key = "%s/%%{d}/%%{s}.key"\n  %s\n'
                % (HEADERS, self.keydir, top))
        for dom, body in domains.items():
            text += '  dkim_domain "%s" { %s }\n' % (dom, body)
        return text + "}"

    def daemon(self, sink, stanza=None, scopes="opendkim_sign = true", relay_hosts=("127.0.0.0/8",),
               extra="", start=True, **kw):
        g = "\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(),
            scopes,
            stanza if stanza is not None else self.stanza(),
            'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }' % (RCPT_DOMAIN, sink.port),
            extra,
        ])
        return self.new_daemon(start=start, relay_hosts=relay_hosts, hold_delivery=False,
                               relay_domains=(RCPT_DOMAIN, "nosign.test", "bind.test"),
                               global_text=g, **kw)

    def relay(self, d, sink, msg, marker, rcpt="r@" + RCPT_DOMAIN, timeout=20):
        """relay - inject msg, wait for its delivery; the bytes the sink got."""
        mid = inject(d, "news@client.test", [rcpt], msg)
        wait_records(d, "D", mid, timeout=timeout)
        got = sink.with_marker(b"body " + marker.encode())
        self.assertEqual(len(got), 1, "the sink got %d copies of %s" % (len(got), marker))
        return mid, got[0].body

    def verifies(self, body, idx=0):
        """verifies - whether dkimpy accepts signature idx of body (a mismatch raises in dkimpy)."""
        try:
            return dkim.DKIM(body).verify(idx=idx, dnsfunc=self.dns)
        except dkim.ValidationError:
            return False

    def panic(self, d):
        return "\n".join(d.paniclog())

    def signatures(self, body):
        """signatures - the DKIM-Signature fields of a message, top down."""
        return [f for f in parse_fields(body) if f.lower().startswith("dkim-signature:")]

    def assertVerifies(self, body, count=1):
        """assertVerifies - body has count signatures and dkimpy verifies each; their tags."""
        sigs = self.signatures(body)
        self.assertEqual(len(sigs), count, "signatures: %r" % sigs)
        for i in range(count):
            self.assertTrue(self.verifies(body, i),
                            "dkimpy refused signature %d: %s" % (i, sigs[i]))
        got = [tags(s) for s in sigs]
        if count == 1 and opendkim_can_read(body, got[0]):
            t = got[0]
            txt = {"%s._domainkey.%s." % (t["s"], t["d"]): self.records[t["s"]]}
            ok, line = opendkim_verify.verify([body], txt)[0]
            self.assertTrue(ok, "OpenDKIM refused %s: %s" % (sigs[0], line))
            self.opendkim_checked += 1
        return got

    def send_from(self, d, sink, from_domain, marker=None):
        marker = marker or "m-" + from_domain
        return self.relay(d, sink, difficult_message(marker, from_domain), marker)

    # -- signing --------------------------------------------------------------

    def test_key_sizes_and_algorithms(self):
        with Sink() as sink:
            d = self.daemon(sink)
            for dom, sel, alg in (("rsa1024.test", "s1024", "rsa-sha256"),
                                  ("rsa2048.test", "s2048", "rsa-sha256"),
                                  ("rsa4096.test", "s4096", "rsa-sha256"),
                                  ("ed.test", "sed", "ed25519-sha256")):
                with self.subTest(domain=dom):
                    # one space after "Subject:", so that OpenDKIM can
                    # judge simple header canonicalisation (opendkim_can_read)
                    marker = "m-" + dom
                    msg = difficult_message(marker, dom).replace(b"Subject:   ", b"Subject: ", 1)
                    _, body = self.relay(d, sink, msg, marker)
                    t = self.assertVerifies(body)[0]
                    self.assertEqual((t["d"], t["s"], t["a"]), (dom, sel, alg))
                    self.assertEqual(t["h"], "from:to:subject:date:message-id")
                    # the same bytes with one body byte changed must fail
                    bad = body.replace(b"eight bit", b"eight bot", 1)
                    self.assertFalse(self.verifies(bad))
                    txt = {"%s._domainkey.%s." % (sel, dom): self.records[sel]}
                    self.assertFalse(opendkim_verify.verify([bad], txt)[0][0])
            self.assertEqual(self.opendkim_checked, 4, "OpenDKIM judged every key")

    def test_both_signatures_at_once(self):
        with Sink() as sink:
            d = self.daemon(sink)
            _, body = self.send_from(d, sink, "both.test")
            got = self.assertVerifies(body, count=2)
            self.assertEqual(sorted((t["a"], t["s"]) for t in got),
                             [("ed25519-sha256", "sed"), ("rsa-sha256", "s2048")])

    def test_canonicalisation_pairs(self):
        with Sink() as sink:
            d = self.daemon(sink)
            for dom, c in (("ss.test", "simple/simple"), ("sr.test", "simple/relaxed"),
                           ("rs.test", "relaxed/simple"), ("rr.test", "relaxed/relaxed"),
                           ("edss.test", "simple/simple")):
                with self.subTest(domain=dom):
                    _, body = self.send_from(d, sink, dom)
                    t = self.assertVerifies(body)[0]
                    self.assertEqual(t["c"], c)
                    # relaxed body ignores changed white space inside a line; simple does not
                    ws = body.replace(b"spaces   and", b"spaces and", 1)
                    self.assertEqual(self.verifies(ws), c.endswith("relaxed"))

    def test_large_message(self):
        # Past 256 KiB a message streams to a file while it arrives
        # (src/smtp/smtp_server_session.c, SPILL_AT): it is signed all the same
        # (imp_message_copy), with 997-octet lines throughout.
        with Sink() as sink:
            d = self.daemon(sink)
            line = b"".join(b"%07d " % i for i in range(8)) + b"\r\n"
            big = difficult_message("big", "rr.test") + line * 80000
            self.assertGreater(len(big), 600000)
            # 5 MB through the sanitizer build on a shared machine: time enough
            _, body = self.relay(d, sink, big, "big", timeout=90)
            self.assertVerifies(body)

    def test_lines_over_998_octets_and_bare_line_ends(self):
        # A 5,000-octet line is accepted (RFC2822_Max_Line_Length = ignore),
        # and the SMTP client folds it with CRLF SP on the wire; bare LFs
        # become CRLF. The signature covers what the next hop receives
        # (modules/opendkim/od_wire.c), so it verifies there.
        with Sink() as sink:
            d = self.daemon(sink)
            for dom in ("ss.test", "rr.test"):
                long_msg = (difficult_message("long-" + dom, dom) + b"y" * 5000 + b"\r\n" +
                            b"." + b"z" * 2500 + b"\r\nbare\nlf\n")
                _, body = self.relay(d, sink, long_msg, "long-" + dom)
                self.assertIn(b"\r\n y", body)	# folded on the way
                self.assertIn(b"bare\r\nlf\r\n", body)
                self.assertVerifies(body)

    def test_defaults_are_simple_simple_rsa_sha256(self):
        # Momentum's defaults: header_canon and body_canon simple, digest rsa-sha256.
        with Sink() as sink:
            d = self.daemon(sink)
            _, body = self.send_from(d, sink, "rsa2048.test")
            t = self.assertVerifies(body)[0]
            self.assertEqual((t["c"], t["a"]), ("simple/simple", "rsa-sha256"))
            self.assertNotIn("x", t)
            self.assertNotIn("l", t)

    def test_oversigned_headers(self):
        with Sink() as sink:
            d = self.daemon(sink)
            _, body = self.send_from(d, sink, "over.test")
            t = self.assertVerifies(body)[0]
            self.assertEqual(t["h"], "from:from:to:subject:subject:date:message-id")
            head, rest = body.split(b"\r\n\r\n", 1)
            added = head + b"\r\nSubject: a second subject" + b"\r\n\r\n" + rest
            self.assertFalse(self.verifies(added))

    def test_base_domain_subdomains_lifetime_identity(self):
        with Sink() as sink:
            d = self.daemon(sink)
            # a subdomain of a dkim_domain is signed with its stanza, d= its base_domain
            _, body = self.send_from(d, sink, "mail.corp.base.test")
            t = self.assertVerifies(body)[0]
            self.assertEqual((t["d"], t["s"]), ("base.test", "s2048"))
            _, body = self.send_from(d, sink, "extra.test")
            t = self.assertVerifies(body)[0]
            self.assertEqual(int(t["x"]) - int(t["t"]), 2 * 3600)
            self.assertEqual(t["i"], "news@extra.test")
            self.assertIn("l", t)
            # l=: text appended after the signed body still verifies
            self.assertTrue(self.verifies(body + b"appended\r\n"))

    def test_unconfigured_domain_is_not_signed(self):
        with Sink() as sink:
            d = self.daemon(sink)
            _, body = self.send_from(d, sink, "rr.test", marker="positive")
            self.assertVerifies(body)
            _, body = self.send_from(d, sink, "elsewhere.test")
            self.assertEqual(self.signatures(body), [])

    def test_instance_selector_signs_every_domain(self):
        # The instance's own selector (Momentum's "default selector") signs any From domain.
        with Sink() as sink:
            d = self.daemon(sink, stanza=self.stanza(top='selector = "s2048"', domains={}))
            _, body = self.send_from(d, sink, "rsa2048.test")
            t = self.assertVerifies(body)[0]
            self.assertEqual(t["d"], "rsa2048.test")

    # -- when not to sign -----------------------------------------------------------

    def test_opendkim_sign_false_in_domain_and_binding_scopes(self):
        scopes = "\n".join([
            "opendkim_sign = true",
            'Domain "nosign.test" { opendkim_sign = false Routes = ( "smtp://127.0.0.1:%d" ) }',
            'Binding "b1" { opendkim_sign = false }',
        ])
        with Sink() as sink:
            scopes = scopes % sink.port
            extra = 'Domain "bind.test" { Assign_Binding = "b1" Routes = ( "smtp://127.0.0.1:%d" ) }' % sink.port
            d = self.daemon(sink, scopes=scopes, extra=extra)
            _, body = self.relay(d, sink, difficult_message("pos", "rr.test"), "pos")
            self.assertVerifies(body)
            _, body = self.relay(d, sink, difficult_message("dom", "rr.test"), "dom",
                                 rcpt="r@nosign.test")
            self.assertEqual(self.signatures(body), [], "Domain opendkim_sign = false")
            _, body = self.relay(d, sink, difficult_message("bnd", "rr.test"), "bnd",
                                 rcpt="r@bind.test")
            self.assertEqual(self.signatures(body), [], "Binding opendkim_sign = false")

    def test_opendkim_sign_false_globally_true_in_binding_domain(self):
        with Sink() as sink:
            scopes = "opendkim_sign = false"
            extra = ('Domain "bind.test" { Assign_Binding = "b1" Routes = ( "smtp://127.0.0.1:%d" ) }\n'
                     'Binding "b1" { Domain "bind.test" { opendkim_sign = true } }' % sink.port)
            d = self.daemon(sink, scopes=scopes, extra=extra)
            _, body = self.relay(d, sink, difficult_message("bd", "rr.test"), "bd", rcpt="r@bind.test")
            self.assertVerifies(body)
            _, body = self.relay(d, sink, difficult_message("gl", "rr.test"), "gl")
            self.assertEqual(self.signatures(body), [])

    def test_missing_key_delivers_unsigned_and_says_so_once(self):
        with Sink() as sink:
            d = self.daemon(sink)
            for i in range(3):
                _, body = self.send_from(d, sink, "nokey.test", marker="nokey%d" % i)
                self.assertEqual(self.signatures(body), [])
            _, body = self.send_from(d, sink, "rr.test", marker="after")
            self.assertVerifies(body)
            lines = [l for l in d.paniclog() if "dkim_no_key" in l]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("domain=nokey.test selector=nosuch key=%s/nokey.test/nosuch.key" % self.keydir,
                          lines[0])
            d.stop()
            log = self.panic(d)
            self.assertIn("signing_stats domain=nokey.test signed=0 failed=0 no_key=3", log)
            self.assertIn("signing_stats domain=rr.test signed=1 failed=0 no_key=0", log)

    def test_missing_keys_of_many_domains_are_rate_limited(self):
        # The instance's own selector signs any From domain, so a stream of
        # domains without keys names a new key path each: at most 20
        # dkim_no_key lines a minute (two minute windows at most here).
        with Sink() as sink:
            d = self.daemon(sink, stanza=self.stanza(top='selector = "nosuch"', domains={}))
            msgs = [("news@client.test", ["r@" + RCPT_DOMAIN],
                     difficult_message("flood%d" % i, "flood%d.test" % i)) for i in range(45)]
            ids = inject_many(d, msgs)
            for mid in ids:
                wait_records(d, "D", mid)
            for i in range(45):
                got = sink.with_marker(b"body flood%d\r\n" % i)
                self.assertEqual(len(got), 1)
                self.assertEqual(self.signatures(got[0].body), [])
            lines = [l for l in d.paniclog() if "dkim_no_key" in l]
            self.assertGreaterEqual(len(lines), 20)
            self.assertLessEqual(len(lines), 40)

    def test_sign_condition_can_relay(self):
        with Sink() as sink:
            # Relay_Hosts: the client may relay (can_relay), so cond.test is signed.
            d = self.daemon(sink)
            _, body = self.send_from(d, sink, "cond.test", marker="relay-host")
            self.assertVerifies(body)
            d.stop()
        with Sink() as sink:
            # Only Relay_Domains: accepted for sink.test, but the client may not relay.
            d = self.daemon(sink, relay_hosts=())
            _, body = self.send_from(d, sink, "rr.test", marker="positive")
            self.assertVerifies(body)
            _, body = self.send_from(d, sink, "cond.test", marker="not-relay-host")
            self.assertEqual(self.signatures(body), [])

    def test_sign_condition_auth_user(self):
        # sign_condition = "auth_user": signed only for a client that logged
        # in with SMTP AUTH (docs/smtp-server.md "Authentication"); the
        # same daemon takes mail for sink.test (Relay_Domains) from anyone.
        from test_smtp_auth import AUTH_EXT, PASSWORDS, write_passwd
        passwd = os.path.join(self.dir, "passwd")
        write_passwd(passwd, [("alice", "$y$")])
        listen = '%s\nAuthLoginParameters = [ uri = "file://%s" ]' % (AUTH_EXT, passwd)
        with Sink() as sink:
            d = self.daemon(sink, relay_hosts=(), tls=True, listen_text=listen)
            for login, marker in ((True, "auth-yes"), (False, "auth-no")):
                s = d.smtp()
                s.ehlo("client.test")
                s.starttls(context=harness.client_tls_context())
                s.ehlo("client.test")
                if login:
                    s.login("alice", PASSWORDS["alice"])
                s.sendmail("news@authd.test", ["r@" + RCPT_DOMAIN], difficult_message(marker, "authd.test"))
                s.quit()
                wait_until(lambda: sink.with_marker(b"body " + marker.encode()), 20,
                           "delivery of " + marker)
            signed = sink.with_marker(b"body auth-yes")[0].body
            t = self.assertVerifies(signed)[0]
            self.assertEqual(t["d"], "authd.test")
            unsigned = sink.with_marker(b"body auth-no")[0].body
            self.assertEqual(self.signatures(unsigned), [])
            # RFC 3848: the Received: field says the client authenticated
            self.assertIn(b"(impetus) with ESMTPSA id", signed)
            self.assertIn(b"(impetus) with ESMTPS id", unsigned)

    def test_sign_condition_other_keys(self):
        # tests/modules/test_validate.c sets the connection key "test.rcpts_seen"
        # ("yes") and the message key "test.rcpt.0" (the recipient) at RCPT.
        with Sink() as sink:
            d = self.daemon(sink, stanza=self.stanza() + '\ntest_validate { }')
            for dom, signed in (("conn.test", True), ("mess.test", True), ("unset.test", False)):
                with self.subTest(domain=dom):
                    _, body = self.send_from(d, sink, dom)
                    if signed:
                        self.assertVerifies(body)
                    else:
                        self.assertEqual(self.signatures(body), [])

    def test_internal_injection(self):
        # imp_inject with IMP_INJECT_SIGN runs the signer (tests/modules/
        # test_services.c injects); without the flag it does not. A
        # sign_condition is read from the injected message's context.
        stanzas = [self.stanza()]
        for name, sender, rcpt, flags, vctx in (
                ("a", "a@inj.test", "a@sink.test", '"sign"', ""),
                ("b", "b@inj.test", "b@sink.test", "", ""),
                ("c", "c@injcond.test", "c@sink.test", '"sign"', '"inj.ok" "yes"'),
                ("d", "d@injcond.test", "d@sink.test", '"sign"', '"inj.ok" "no"')):
            stanzas.append('test_services "%s" { journal = "%s/journal-%s" inject_to = "%s" '
                           'inject_sender = "%s" inject_flags = ( %s ) inject_vctx = ( %s ) }'
                           % (name, self.dir, name, rcpt, sender, flags, vctx))
        with Sink() as sink:
            d = self.daemon(sink, stanza="\n".join(stanzas))
            sink.wait_for(4)
            by_rcpt = {t.rcpts[0]: t.body for t in sink.messages()}
            t = self.assertVerifies(by_rcpt["a@sink.test"])[0]
            self.assertEqual(t["d"], "inj.test")
            self.assertEqual(self.signatures(by_rcpt["b@sink.test"]), [])
            self.assertVerifies(by_rcpt["c@sink.test"])
            self.assertEqual(self.signatures(by_rcpt["d@sink.test"]), [])

    def test_reload_reads_keys_again(self):
        old, old_txt = self.make_key(os.path.join(self.dir, "srl-old.pem"), KEYS["s2048"][0], "rsa")
        new, new_txt = self.make_key(os.path.join(self.dir, "srl-new.pem"), KEYS["s2048"][0], "rsa")
        path = os.path.join(self.keydir, "reload.test", "srl.key")
        shutil.copy(old, path)
        with Sink() as sink:
            d = self.daemon(sink)
            self.records["srl"] = old_txt
            _, body = self.send_from(d, sink, "reload.test", marker="before")
            self.assertVerifies(body)
            shutil.copy(new, path + ".tmp")
            os.replace(path + ".tmp", path)
            d.signal(signal.SIGHUP)
            wait_until(lambda: "signing_stats total" in self.panic(d), what="the old generation's fini")
            _, body = self.send_from(d, sink, "reload.test", marker="after")
            self.records["srl"] = old_txt
            self.assertFalse(self.verifies(body), "still the old key")
            self.records["srl"] = new_txt
            self.assertVerifies(body)

    # -- configuration errors ------------------------------------------------------------

    def check(self, d):
        r = subprocess.run([harness.impetusd_path(), "-t", "-c", d.conf_path],
                           capture_output=True, timeout=60)
        return r.returncode, (r.stdout + r.stderr).decode()

    def test_check_reports_bad_options(self):
        cases = [
            # (global text, stanza top, message)
            ("opendkim_sign = maybe", "", r':\d+:\d+: "maybe" is not a valid bool'),
            ("opendkim_sig = true", "",
             r':\d+:\d+: unknown option "opendkim_sig" in global scope \(did you mean "opendkim_sign"\?\)'),
            ('Binding "b" { Retry_Intervall = 5 }', "",
             r':\d+:\d+: unknown option "Retry_Intervall" in Binding scope \(did you mean "Retry_Interval"\?\)'),
            ('Domain "x.test" { frobnicate = 1 }', "",
             r':\d+:\d+: unknown option "frobnicate" in Domain scope \(neither a core option'),
            ('Binding "b" { Domain "x.test" { opendkim_sign = 2x } }', "",
             r':\d+:\d+: "2x" is not a valid bool'),
            ("opendkim_sign = true\nopendkim_sign = false", "",
             r':\d+:\d+: duplicate option "opendkim_sign"'),
            ("", "lifetime = -1", r':\d+:\d+: value -1 out of range for lifetime'),
            ("", "keycache_size = lots", r':\d+:\d+: "lots" is not a valid'),
            ("", 'dkim_domain "x.test" { selektor = "s" }',
             r':\d+:\d+: unknown option "selektor" for sub-stanza dkim_domain'),
        ]
        with Sink() as sink:
            for scopes, top, want in cases:
                with self.subTest(scopes=scopes, top=top):
                    d = self.daemon(sink, scopes=scopes, stanza=self.stanza(top=top, domains={}),
                                    start=False)
                    rc, out = self.check(d)
                    self.assertNotEqual(rc, 0, out)
                    self.assertRegex(out, re.escape(d.conf_path) + want)
            # a listener is no place for it
            d = self.daemon(sink, scopes="", stanza=self.stanza(domains={}), start=False)
            d.listen_text = "opendkim_sign = true"
            d.write_config()
            rc, out = self.check(d)
            self.assertNotEqual(rc, 0, out)
            self.assertIn('unknown option "opendkim_sign"', out)
            # without any module stanza it is what it always was: an unknown option
            d = self.daemon(sink, scopes="opendkim_sign = true", stanza="", start=False)
            rc, out = self.check(d)
            self.assertNotEqual(rc, 0, out)
            self.assertRegex(out, re.escape(d.conf_path) + r':\d+:1: unknown option "opendkim_sign"')
            # and the good configuration passes
            d = self.daemon(sink, start=False)
            rc, out = self.check(d)
            self.assertEqual(rc, 0, out)

    def test_init_refuses_bad_profiles(self):
        cases = [
            ('dkim_domain "x.test" { selector = "s" digest = "rsa-sha1" }', "forbidden by RFC 8301"),
            ('dkim_domain "x.test" { selector = "s" digest = ( "rsa-sha256" "ed25519-sha256" ) }',
             "2 digests need 2 selectors"),
            ('dkim_domain "x.test" { selector = "s" header_canon = "loose" }',
             "header_canon and body_canon take simple or relaxed"),
            ('dkim_domain "x.test" { }', 'dkim_domain "x.test": selector is required'),
            ('dkim_domain "x.test" { selector = "s" headerlist = ( "To" ) }', "From must be signed"),
            ('dkim_domain "x.test" { selector = "s" skip_headerlist = ( "From" ) }', "From must be signed"),
            ('dkim_domain "x.test" { selector = "s" key = "/k/%{d" }', "bad macro syntax"),
        ]
        with Sink() as sink:
            for body, why in cases:
                with self.subTest(body=body):
                    text = ('opendkim "o" { headerlist = %s key = "/k/%%{d}/%%{s}" %s }'
                            % (HEADERS, body))
                    d = self.daemon(sink, stanza=text, start=False)
                    with self.assertRaises(AssertionError) as cm:
                        d.start()
                    self.assertIn('module opendkim "o": init failed: ', str(cm.exception))
                    self.assertIn(why, str(cm.exception))
                    d.proc = None


if __name__ == "__main__":
    harness.main()
