"""
test_dkim_sign.py - DKIM signatures of modules/opendkim/dkim_sign.c checked by independent verifiers

The signer is dkim_sign_tool (tests/unit/dkim_sign_tool.c, the module's
pure signing code compiled into a small program; $IMPETUS_DKIM_SIGN_TOOL).
Keys are made by this test with the openssl command: RSA 2048 and
Ed25519. Every message below is signed with each key and each of the four
canonicalisation pairs and verified by dkimpy (Debian python3-dkim, with
python3-nacl for Ed25519), whose DNS look-up is a function answering the
test's own TXT records (v=DKIM1; k=rsa|ed25519; p=...).

The messages: folded and oddly spaced headers, several instances of a
field, trailing blank lines, an 8-bit body, a 5,000-octet line, an empty
body, a body without a final CRLF, WSP-only lines, oversigned headers.

So that a pass means something, the same verifier must also refuse: a
changed body byte; a second From: or a Subject: added to a message
whose h= oversigns them; whitespace changes in the body are accepted by
relaxed and refused by simple. l= (body length limit) lets text appended
after the signed part verify and is refused without it.

dkimpy refuses to parse a header field with WSP before its colon
("Subject : x", obsolete syntax of RFC 5322 §4.5); that rule of relaxed
canonicalisation is tested by the RFC 6376 §3.4.5 example in
tests/unit/test_dkim.c instead.

The module itself (modules/opendkim/opendkim.c) is tested through the
daemon in test_module_opendkim.py.

OpenDKIM is the second verifier (opendkim_verify.py: the opendkim
daemon's test mode with the keys from a TestDNSData file; why not
opendkim-testmsg is written there): every message, key type and
canonicalisation again, and a changed body must fail there too.
"""

import base64
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
import opendkim_verify
from harness import main

try:
    import dkim
except ImportError:  # reported by the tests, never skipped
    dkim = None

DOMAIN = "example.com"
T = "1700000000"


def tool():
    """tool - the path of dkim_sign_tool."""
    p = os.environ.get("IMPETUS_DKIM_SIGN_TOOL")
    if not p and os.environ.get("IMPETUS_BUILD_DIR"):
        p = os.path.join(os.environ["IMPETUS_BUILD_DIR"], "tests", "dkim_sign_tool")
    if not p or not os.path.exists(p):
        raise AssertionError("dkim_sign_tool not built (IMPETUS_DKIM_SIGN_TOOL=%r)" % p)
    return p


MESSAGES = {
    "plain": (b"From: Joe <joe@example.com>\r\nTo: Sue <sue@example.net>\r\n"
              b"Subject: hello\r\nDate: Mon, 13 Nov 2023 10:00:00 +0000\r\n"
              b"Message-ID: <1@example.com>\r\n\r\nHi Sue.\r\n"),
    "folded": (b"From: \"Joe Sixpack\"\r\n  <joe@example.com>\r\nTo: a@example.net,\r\n"
               b"\tb@example.net,   \r\n \t c@example.net\r\nSUBJECT:   many   spaces\t here \r\n"
               b"X-Empty:\r\nX-Tab:\tv\r\n\r\nbody\r\n"),
    "trailing_blank_lines": (b"From: joe@example.com\r\nSubject: t\r\n\r\nline one\r\n"
                             b"\r\n  \r\nline four  \r\n\r\n\r\n\r\n \t\r\n\r\n"),
    "8bit": ("From: J\u00f6rg <joerg@example.com>\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n"
             "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 \u00e9t\u00e9 \u65e5\u672c\r\n"
             "\t tab  and  spaces \r\n").encode("utf-8") + b"latin1 \xe9\xe8\r\n",
    "long_lines": (b"From: joe@example.com\r\nSubject: long\r\nX-Long: " + b"h" * 900 + b"\r\n\r\n"
                   + b"x" * 5000 + b"\r\n" + b"<p>" + b"y " * 3000 + b"</p>\r\n"),
    "several_instances": (b"Received: from a by b\r\nFrom: joe@example.com\r\nTo: one@example.net\r\n"
                          b"Cc: c@example.net\r\nTo: two@example.net\r\nSubject: s\r\n\r\nbody\r\n"),
    "empty_body": b"From: joe@example.com\r\nSubject: nothing\r\n\r\n",
    "no_body_at_all": b"From: joe@example.com\r\nSubject: nothing\r\n",
    "no_final_crlf": b"From: joe@example.com\r\nSubject: x\r\n\r\nlast line without CRLF",
    "wsp_lines": b"From: joe@example.com\r\n\r\n \t \r\n\t\r\nword\t\t \r\n   \r\n",
}

CANONS = ["simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"]
HEADERS = "from:to:cc:subject:date:message-id:content-type:x-long:x-empty:x-tab"
OVERSIGN = "from:subject:reply-to"


class DkimSignTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="impetus-dkim-")
        cls.keys = {}
        cls.txt = {}
        for sel, args, ktype in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa"),
                                 ("ed", ["-algorithm", "ed25519"], "ed25519")):
            path = os.path.join(cls.dir, sel + ".pem")
            subprocess.run(["openssl", "genpkey"] + args + ["-out", path], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True).stdout
            # RFC 8463 §4: an Ed25519 p= is the bare 32-byte key, not the SPKI.
            pub = der[-32:] if ktype == "ed25519" else der
            cls.keys[sel] = path
            cls.txt["%s._domainkey.%s." % (sel, DOMAIN)] = "v=DKIM1; k=%s; p=%s" % (
                ktype, base64.b64encode(pub).decode())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        if dkim is None:
            self.fail("dkimpy missing: install python3-dkim and python3-nacl (scripts/install-deps.sh)")

    def dns(self, name, timeout=5):
        """dns - dkimpy's look-up: the test's TXT record or nothing."""
        if isinstance(name, bytes):
            name = name.decode()
        return self.txt.get(name, "").encode()

    def sign(self, msg, sel, canon="relaxed/relaxed", headers=HEADERS, oversign=OVERSIGN,
             extra=()):
        """sign - msg with the key of selector sel; the signed message (field + msg)."""
        args = [tool(), "-k", self.keys[sel], "-d", DOMAIN, "-s", sel, "-c", canon,
                "-h", headers, "-t", T] + list(extra)
        if oversign:
            args += ["-o", oversign]
        r = subprocess.run(args, input=msg, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        self.assertTrue(r.stdout.endswith(msg))
        return r.stdout

    def verify(self, signed):
        """verify - dkimpy's verdict on the first signature."""
        return dkim.verify(signed, dnsfunc=self.dns)

    def field(self, signed):
        """field - the DKIM-Signature field of a signed message, unfolded."""
        head = signed.split(b"\r\nFrom", 1)[0] if not signed.startswith(b"From") else b""
        m = re.match(rb"DKIM-Signature: (.*?\r\n)(?![ \t])", signed, re.S)
        self.assertIsNotNone(m, head[:200])
        return re.sub(rb"\r\n[ \t]", b" ", m.group(1))

    # ---- every message, key and canonicalisation ----

    def test_every_message_verifies(self):
        n = 0
        for sel in ("rsa", "ed"):
            for canon in CANONS:
                for name, msg in MESSAGES.items():
                    with self.subTest(key=sel, canon=canon, msg=name):
                        signed = self.sign(msg, sel, canon)
                        f = self.field(signed)
                        self.assertIn(b"a=%s;" % (b"rsa-sha256" if sel == "rsa" else b"ed25519-sha256"), f)
                        self.assertIn(b"c=%s;" % canon.encode(), f)
                        self.assertTrue(self.verify(signed), "%s %s %s:\n%r" % (sel, canon, name, signed[:600]))
                        # Folded at 78 columns.
                        for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n"):
                            if line.startswith(b"DKIM-Signature") or line.startswith(b"\t"):
                                self.assertLessEqual(len(line), 78)
                        n += 1
        self.assertEqual(n, 2 * len(CANONS) * len(MESSAGES))

    def test_opendkim_verifies(self):
        # Two inputs OpenDKIM's test mode cannot take as they are, both
        # checked by dkimpy above: it rebuilds each header field from the
        # milter's name and value as "Name: value", so under simple header
        # canonicalisation a field with other than one space after the
        # colon ("folded": "SUBJECT:   many", "X-Empty:") no longer
        # matches; and it reads files by lines, so a message whose last
        # line has no CRLF (which SMTP cannot carry) is not read whole.
        def opendkim_can_read(canon, name):
            if name == "no_final_crlf":
                return False
            return not (name == "folded" and canon.startswith("simple/"))

        cases, signed = [], []
        for sel in ("rsa", "ed"):
            for canon in CANONS:
                for name, msg in MESSAGES.items():
                    if not opendkim_can_read(canon, name):
                        continue
                    cases.append("%s %s %s" % (sel, canon, name))
                    signed.append(self.sign(msg, sel, canon))
        # The same signatures with one body byte changed must fail.
        bad = self.sign(MESSAGES["plain"], "rsa")
        cases.append("changed body")
        signed.append(bad.replace(b"Hi Sue.", b"Hi Sue!"))
        verdicts = opendkim_verify.verify(signed, self.txt)
        for case, (ok, line) in zip(cases[:-1], verdicts[:-1]):
            with self.subTest(case=case):
                self.assertTrue(ok, line)
        self.assertFalse(verdicts[-1][0], verdicts[-1][1])
        self.assertIn("failed", verdicts[-1][1])

    # ---- the verifier must also refuse ----

    def test_changed_body_refused(self):
        for sel in ("rsa", "ed"):
            for canon in CANONS:
                with self.subTest(key=sel, canon=canon):
                    signed = self.sign(MESSAGES["plain"], sel, canon)
                    self.assertTrue(self.verify(signed))
                    self.assertFalse(self.verify(signed.replace(b"Hi Sue.", b"Hi Sud.")))

    def test_oversigned_headers(self):
        for sel in ("rsa", "ed"):
            with self.subTest(key=sel):
                msg = MESSAGES["several_instances"]
                signed = self.sign(msg, sel, "relaxed/relaxed", oversign="from:subject:reply-to")
                f = self.field(signed)
                h = re.search(rb"[ ;]h=([^;]*);", f).group(1).replace(b" ", b"")
                self.assertEqual(h, b"from:from:to:to:cc:subject:subject:reply-to")
                self.assertTrue(self.verify(signed))
                # Added after signing: a second From, a second Subject, a Reply-To: refused.
                for added in (b"From: evil@example.org\r\n", b"Subject: changed\r\n",
                              b"Reply-To: evil@example.org\r\n"):
                    self.assertFalse(self.verify(signed.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n", 1)),
                                     added)
                # A field not signed may be added; one signed but not oversigned
                # (To) added above the others changes nothing either, bottom-up.
                self.assertTrue(self.verify(signed.replace(b"\r\n\r\n", b"\r\nX-Later: ok\r\n\r\n", 1)))
                self.assertTrue(self.verify(signed.replace(b"Received:", b"To: top@example.net\r\nReceived:", 1)))
                self.assertFalse(self.verify(signed.replace(b"\r\n\r\n", b"\r\nTo: new@example.net\r\n\r\n", 1)))
                # Without oversigning the same additions of a From are not noticed... when absent from h.
                plain = self.sign(msg, sel, "relaxed/relaxed", oversign="")
                self.assertTrue(self.verify(plain))
                self.assertTrue(self.verify(plain.replace(b"\r\n\r\n", b"\r\nReply-To: x@example.org\r\n\r\n", 1)))

    def test_whitespace_relaxed_vs_simple(self):
        msg = MESSAGES["plain"].replace(b"Hi Sue.", b"Hi  Sue.  ")
        for sel in ("rsa", "ed"):
            with self.subTest(key=sel):
                changed = lambda s: s.replace(b"Hi  Sue.  ", b"Hi \t Sue.").replace(
                    b"Subject: hello", b"Subject:   hello ")
                relaxed = self.sign(msg, sel, "relaxed/relaxed")
                simple = self.sign(msg, sel, "simple/simple")
                self.assertTrue(self.verify(changed(relaxed)))
                self.assertFalse(self.verify(changed(simple)))
                # Trailing blank lines added: both still verify (both drop them).
                self.assertTrue(self.verify(simple + b"\r\n\r\n"))
                self.assertTrue(self.verify(relaxed + b"\r\n \r\n"))

    def test_body_length_limit(self):
        msg = b"From: joe@example.com\r\nSubject: l\r\n\r\nsigned part\r\n"
        for sel in ("rsa", "ed"):
            for canon in ("simple/simple", "relaxed/relaxed"):
                with self.subTest(key=sel, canon=canon):
                    limited = self.sign(msg, sel, canon, extra=["-l", "1000"])
                    self.assertIn(b" l=13;", self.field(limited))
                    self.assertTrue(self.verify(limited))
                    self.assertTrue(self.verify(limited + b"appended later\r\n"))
                    unlimited = self.sign(msg, sel, canon)
                    self.assertNotIn(b" l=", self.field(unlimited))
                    self.assertFalse(self.verify(unlimited + b"appended later\r\n"))
                    short = self.sign(msg, sel, canon, extra=["-l", "6"])
                    self.assertIn(b" l=6;", self.field(short))
                    self.assertTrue(self.verify(short.replace(b"signed part", b"signedXXXXX")))

    def test_expiry(self):
        signed = self.sign(MESSAGES["plain"], "ed", extra=["-x", "600"])
        self.assertIn(b" x=1700000600;", self.field(signed))
        # Signed in 2023 for ten minutes: dkimpy refuses it as expired now.
        self.assertFalse(self.verify(signed))

    def test_refusals(self):
        for args, want in (([], "must include From"),):
            r = subprocess.run([tool(), "-k", self.keys["rsa"], "-d", DOMAIN, "-s", "rsa",
                                "-h", "to:subject"] + args, input=MESSAGES["plain"],
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn(want, r.stderr.decode())
            self.assertEqual(r.stdout, b"")
        r = subprocess.run([tool(), "-k", os.path.join(self.dir, "none.pem"), "-d", DOMAIN, "-s", "x"],
                           input=b"", capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open", r.stderr.decode())



if __name__ == "__main__":
    main()
