"""
test_msg_build.py - messages of src/message/msg_build.c read back by Python's email package

The builder (the transmissions API's per-recipient message, docs/message-build.md)
is run through the unit test binary in its tool mode
("test_msg_build --build": JSON {content, address, hostname, unique, now}
on stdin, the message on stdout, "field: text" on stderr and exit 2 on a
refusal). Each message is parsed by email.message_from_bytes with
policy=email.policy.default, an independent MIME and RFC 2047/2231
decoder, and checked:

  - header fields decode to exactly what the content said (From, To,
    Subject, Reply-To, user headers, non-ASCII included), Date is the
    given time, Message-ID is <token@hostname>, MIME-Version is 1.0;
  - the part tree is the expected one (text/plain, text/html,
    multipart/alternative, multipart/related around the html with its
    images, multipart/mixed with attachments) and the parser found no
    defect anywhere;
  - every text body decodes to the input (line ends made CRLF), every
    attachment and inline image to the bytes of its base64 data, file
    names (RFC 2231 when non-ASCII) read back as given;
  - every line ends with CRLF and none passes 998 octets (78 for header
    lines the builder could fold);
  - refusals name the field.

Random content (seeded) adds the cases nobody thought of: mixtures of
scripts, emoji, blanks at line ends, "=_" and boundary look-alikes,
lone CR and LF, long lines.
"""

import base64
import datetime
import email
import email.header
import email.policy
import email.utils
import json
import os
import random
import re
import subprocess
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "mx.example.net"
NOW = 1700000000


def tool():
    """tool - the test_msg_build binary (its --build mode)."""
    build = os.environ.get("IMPETUS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
    return os.path.join(build, "tests", "test_msg_build")


def run(content, address, unique="T1"):
    """run - (returncode, stdout bytes, stderr text) of one build."""
    req = {"content": content, "address": address, "hostname": HOST, "unique": unique, "now": NOW}
    p = subprocess.run([tool(), "--build"], input=json.dumps(req).encode(), capture_output=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def phrase(raw, field):
    """phrase - the display name of a one-mailbox field, by the RFC 2047 decoder of email.header.

    Not the header registry's address parser: that one puts a space
    between two encoded-words of a display name (RFC 2047 6.2 says the
    blanks between them are to be ignored), so a name split across
    encoded-words would read back with a space that is not there.
    """
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    m = re.search(r"^" + field + r": (.*?)(?=\r\n[^ \t])", head, re.M | re.S)
    value = re.sub(r"\r\n[ \t]", " ", m.group(1))
    value = value[:value.rindex("<")].strip()
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return str(email.header.make_header(email.header.decode_header(value)))


def crlf(text):
    """crlf - text with every line end (CRLF, LF, lone CR) made CRLF."""
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


class MsgBuild(unittest.TestCase):
    def build(self, content, address="rcpt@example.org", unique="T1"):
        """build - the parsed message; fails the test on a refusal or a malformed line."""
        rc, out, err = run(content, address, unique)
        self.assertEqual(rc, 0, err)
        self.raw = out
        self.check_lines(out)
        msg = email.message_from_bytes(out, policy=email.policy.default)
        for part in msg.walk():
            self.assertEqual(part.defects, [], "defects in %s" % part.get_content_type())
        self.assertEqual(msg["MIME-Version"], "1.0")
        date = email.utils.parsedate_to_datetime(msg["Date"])
        self.assertEqual(date, datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc))
        self.assertRegex(msg["Message-ID"], r"^<[A-Za-z0-9.-]+@" + re.escape(HOST) + ">$")
        for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            self.assertEqual(len(msg.get_all(name) or []), 1 if name != "Subject" or "subject" in content else 0, name)
        return msg

    def check_lines(self, raw):
        """check_lines - CRLF only, lines within 998, folded header lines within 78 where words allow."""
        self.assertTrue(raw.endswith(b"\r\n"))
        self.assertNotIn(b"\r\n", raw.replace(b"\r\n", b""), "bare line ends")
        lines = raw.split(b"\r\n")
        for ln in lines:
            self.assertNotIn(b"\r", ln)
            self.assertNotIn(b"\n", ln)
            self.assertLessEqual(len(ln), 998)
        head = raw.split(b"\r\n\r\n", 1)[0]
        for ln in head.split(b"\r\n"):
            if b" " in ln.strip() or ln.startswith(b" "):
                self.assertLessEqual(len(ln), 78, ln)

    def text_body(self, part, expected, leaf=False):
        """text_body - the part decodes to expected (CRLF line ends); a 7bit leaf may gain a final CRLF."""
        got = part.get_payload(decode=True).decode("utf-8")
        want = crlf(expected)
        if leaf and part["Content-Transfer-Encoding"] == "7bit" and want and not want.endswith("\r\n"):
            want += "\r\n"
        self.assertEqual(got, want)

    def types(self, msg):
        return [p.get_content_type() for p in msg.walk()]

    # -- shapes -----------------------------------------------------------

    def test_text_only(self):
        msg = self.build({"from": "sender@example.com", "subject": "Sending Email Using HTTP",
                          "text": "Welcome to Momentum!\r\nThis email was sent using an inline template."})
        self.assertEqual(self.types(msg), ["text/plain"])
        self.assertEqual(msg["From"], "sender@example.com")
        self.assertEqual(msg["To"].addresses[0].addr_spec, "rcpt@example.org")
        self.assertEqual(msg["Subject"], "Sending Email Using HTTP")
        self.text_body(msg, "Welcome to Momentum!\r\nThis email was sent using an inline template.", True)
        self.assertEqual(msg.get_content_charset(), "utf-8")

    def test_html_only(self):
        html = "<html><body><p>Hi {{name}}</p></body></html>"
        msg = self.build({"from": "a@example.com", "subject": "s", "html": html})
        self.assertEqual(self.types(msg), ["text/html"])
        self.text_body(msg, html, True)

    def test_alternative(self):
        text = "Grüße aus Köln\nZweite Zeile  \n"
        html = "<p>Grüße aus <b>Köln</b> 日本語 🎉</p>"
        msg = self.build({"from": {"email": "a@example.com", "name": "Jörg Müller, GmbH"},
                          "subject": "Grüße 🎉 日本語 test", "text": text, "html": html,
                          "reply_to": "Support <support@example.com>"},
                         {"email": "r@example.org", "name": "Ölaf \"Q\" Ünd"})
        self.assertEqual(self.types(msg), ["multipart/alternative", "text/plain", "text/html"])
        plain, rich = msg.get_payload()
        self.text_body(plain, text)
        self.text_body(rich, html)
        self.assertEqual(msg["Subject"], "Grüße 🎉 日本語 test")
        self.assertEqual(msg["From"].addresses[0].display_name, "Jörg Müller, GmbH")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "a@example.com")
        self.assertEqual(msg["To"].addresses[0].display_name, "Ölaf \"Q\" Ünd")
        self.assertEqual(msg["Reply-To"].addresses[0].addr_spec, "support@example.com")
        self.assertEqual(msg["Reply-To"].addresses[0].display_name, "Support")
        self.assertEqual(msg.get_body(("plain",)).get_content_type(), "text/plain")

    def test_related_and_mixed(self):
        img = bytes(range(256)) * 3
        pdf = os.urandom(5000)
        text_att = "line one\nline two é\n".encode()
        content = {
            "from": "a@example.com", "subject": "files", "text": "see html",
            "html": "<img src=\"cid:logo.png\"><img src=\"cid:pic2\">",
            "inline_images": [
                {"name": "logo.png", "type": "image/png", "data": base64.b64encode(img).decode()},
                {"name": "pic2", "type": "image/gif",
                 "data": base64.encodebytes(b"GIF89a" + pdf[:100]).decode()},   # with line breaks
            ],
            "attachments": [
                {"name": "report.pdf", "type": "application/pdf", "data": base64.b64encode(pdf).decode()},
                {"name": "résumé – final version with a rather long file name, 2024 (copy).txt",
                 "type": "text/plain", "data": base64.b64encode(text_att).decode()},
                {"name": "a \"quoted\" name.bin", "type": "application/octet-stream", "data": ""},
            ],
        }
        msg = self.build(content)
        self.assertEqual(self.types(msg), [
            "multipart/mixed", "multipart/alternative", "text/plain", "multipart/related",
            "text/html", "image/png", "image/gif", "application/pdf", "text/plain",
            "application/octet-stream"])
        parts = list(msg.walk())
        self.text_body(parts[2], "see html")
        self.text_body(parts[4], content["html"])
        self.assertEqual(parts[5]["Content-ID"], "<logo.png>")
        self.assertEqual(parts[5].get_content_disposition(), "inline")
        self.assertEqual(parts[5].get_payload(decode=True), img)
        self.assertEqual(parts[6]["Content-ID"], "<pic2>")
        self.assertEqual(parts[6].get_payload(decode=True), b"GIF89a" + pdf[:100])
        self.assertEqual(parts[7].get_filename(), "report.pdf")
        self.assertEqual(parts[7].get_content_disposition(), "attachment")
        self.assertEqual(parts[7].get_payload(decode=True), pdf)
        self.assertEqual(parts[8].get_filename(), content["attachments"][1]["name"])
        self.assertEqual(parts[8].get_payload(decode=True), text_att)
        self.assertEqual(parts[9].get_filename(), "a \"quoted\" name.bin")
        self.assertEqual(parts[9].get_payload(decode=True), b"")
        # related is around the html only, its start is the html
        self.assertEqual(parts[3].get_content_type(), "multipart/related")
        self.assertEqual(parts[3].get_payload()[0].get_content_type(), "text/html")

    def test_text_with_attachment_only(self):
        msg = self.build({"from": "a@example.com", "subject": "s", "text": "body",
                          "attachments": [{"name": "x.csv", "type": "text/csv", "data": "YSxiCg=="}]})
        self.assertEqual(self.types(msg), ["multipart/mixed", "text/plain", "text/csv"])
        self.assertEqual(msg.get_payload()[1].get_payload(decode=True), b"a,b\n")

    def test_encodings_and_edges(self):
        long_line = "x" * 3000
        cases = [
            long_line,
            "a" * 998 + "\n" + "b" * 999,
            "--=_imp_a_T1\n--=_imp_a_T1--\n=_",
            "trailing blanks   \nand tabs\t\t\n",
            ".\nFrom me\n..\n",
            "lone\rcr and lf\nand crlf\r\n",
            "",
            "\n\n\n",
            "ünïcödé " * 200,
            "日本語のテキスト" * 100,
            "=" * 100,
        ]
        for text in cases:
            with self.subTest(text=text[:40]):
                msg = self.build({"from": "a@example.com", "subject": "s", "text": text, "html": text})
                plain, rich = msg.get_payload()
                self.text_body(plain, text)
                self.text_body(rich, text)
                msg = self.build({"from": "a@example.com", "subject": "s", "text": text})
                self.text_body(msg, text, True)
        # the pure-ASCII short-line case is 7bit, the others are not
        msg = self.build({"from": "a@example.com", "subject": "s", "text": "plain ascii"})
        self.assertEqual(msg["Content-Transfer-Encoding"], "7bit")
        msg = self.build({"from": "a@example.com", "subject": "s", "text": long_line})
        self.assertEqual(msg["Content-Transfer-Encoding"], "quoted-printable")
        msg = self.build({"from": "a@example.com", "subject": "s", "text": "日本語のテキスト"})
        self.assertEqual(msg["Content-Transfer-Encoding"], "base64")

    def test_headers(self):
        subject = ("A very long subject line with ünïcödé words scattered through it, "
                   "and =?UTF-8?Q?looks_encoded?= text, and a verylongwordthatgoesonandonandonandon"
                   "andonandonandonandonandonandonandonandonandonandonandonandonandonandon, done 🎉")
        msg = self.build({"from": "a@example.com", "subject": subject, "text": "t",
                          "headers": {"X-Campaign": "Été 2024 — soldes", "X-Plain": "plain value",
                                      "CC": "Zoë <zoe@example.org>, \"Bob B.\" <bob@example.org>",
                                      "List-Unsubscribe": "<mailto:u@example.com?subject=unsub>"}},
                         {"email": "r@example.org", "header_to": "Team <team@example.org>, r@example.org"})
        self.assertEqual(msg["Subject"], subject)
        self.assertEqual(msg["X-Campaign"], "Été 2024 — soldes")
        self.assertEqual(msg["X-Plain"], "plain value")
        self.assertEqual(msg["List-Unsubscribe"], "<mailto:u@example.com?subject=unsub>")
        cc = msg["CC"].addresses
        self.assertEqual([(a.display_name, a.addr_spec) for a in cc],
                         [("Zoë", "zoe@example.org"), ("Bob B.", "bob@example.org")])
        to = msg["To"].addresses
        self.assertEqual([a.addr_spec for a in to], ["team@example.org", "r@example.org"])

    def test_message_ids_unique(self):
        ids = set()
        for i in range(5):
            msg = self.build({"from": "a@example.com", "subject": "s", "text": "t"}, unique=None)
            ids.add(msg["Message-ID"])
        self.assertEqual(len(ids), 5)

    def test_email_rfc822(self):
        rc, out, err = run({"email_rfc822": "From: a@example.com\nTo: b@example.org\nSubject: ready\n\nbody\nline\n"},
                           "b@example.org")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"From: a@example.com\r\nTo: b@example.org\r\nSubject: ready\r\n\r\nbody\r\nline\r\n")
        msg = email.message_from_bytes(out, policy=email.policy.default)
        self.assertEqual(msg["Subject"], "ready")

    # -- refusals -----------------------------------------------------------

    def test_refusals(self):
        good = {"from": "a@example.com", "subject": "s", "text": "t"}
        cases = [
            (dict(good, subject="x\r\nBcc: evil@example.com"), "content.subject"),
            (dict(good, headers={"Bcc\r\nX": "y"}), "content.headers.Bcc\r\nX"),
            (dict(good, headers={"X-A": "v\nBcc: evil@example.com"}), "content.headers.X-A"),
            (dict(good, headers={"Subject": "second"}), "content.headers.Subject"),
            (dict(good, headers={"content-type": "text/html"}), "content.headers.content-type"),
            (dict(good, attachments=[{"name": "a", "type": "text/plain", "data": "!!!!"}]),
             "content.attachments[0].data"),
            (dict(good, attachments=[{"name": "a", "type": "text/plain", "data": ""},
                                     {"name": "b", "type": "text/plain", "data": ""},
                                     {"name": "c", "type": "nope", "data": ""}]),
             "content.attachments[2].type"),
            (dict(good, from_=None), None),
            ({"subject": "s", "text": "t"}, "content.from"),
            ({"from": "a@example.com", "subject": "s"}, "content"),
            ({"email_rfc822": "no headers at all"}, "content.email_rfc822"),
        ]
        for content, field in cases:
            if field is None:
                continue
            with self.subTest(field=field):
                rc, out, err = run(content, "r@example.org")
                self.assertEqual(rc, 2, out)
                self.assertEqual(out, b"")
                self.assertEqual(err.split(": ", 1)[0], field)
        rc, out, err = run(good, {"email": "not an address"})
        self.assertEqual((rc, err.split(": ", 1)[0]), (2, "address.email"))

    # -- random content -------------------------------------------------------

    def test_random(self):
        rnd = random.Random(20261203)
        alphabet = ("abcXYZ019 .,;:=_-?!\"'<>()\t\r\n" + "éüßœ" + "日本語中文" + "🎉😀" + "\u00a0\u200b")

        def rtext(n):
            return "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(n)))

        def rline(n):
            return rtext(n).replace("\r", " ").replace("\n", " ")

        for i in range(80):
            subject = rline(200).replace("\t", " ")
            name = rline(40).replace("\t", " ")
            text, html = rtext(3000), rtext(300)
            if rnd.random() < 0.2:
                text += "y" * rnd.randrange(2000)
            data = os.urandom(rnd.randrange(600))
            content = {"from": {"email": "a@example.com", "name": name}, "subject": subject}
            if rnd.random() < 0.8:
                content["text"] = text
            if rnd.random() < 0.6 or "text" not in content:
                content["html"] = html
            if rnd.random() < 0.5:
                content["attachments"] = [{"name": rline(80).replace("\t", " ") or "f",
                                           "type": "application/octet-stream",
                                           "data": base64.b64encode(data).decode()}]
            with self.subTest(i=i):
                msg = self.build(content, {"email": "r@example.org", "name": name})
                # header text comes back as given, blanks at the ends aside; runs of
                # blanks between encoded-words may read back as one
                self.assertEqual(" ".join(msg["Subject"].split()), " ".join(subject.split()))
                self.assertEqual(msg["From"].addresses[0].addr_spec, "a@example.com")
                self.assertEqual(" ".join(phrase(self.raw, "From").split()), " ".join(name.split()))
                leaves = [p for p in msg.walk() if not p.is_multipart()]
                bodies = [p for p in leaves if p.get_content_maintype() == "text"]
                want = [content[k] for k in ("text", "html") if k in content]
                single = len(leaves) == 1
                for part, w in zip(bodies, want):
                    self.text_body(part, w, single)
                if "attachments" in content:
                    self.assertEqual(leaves[-1].get_payload(decode=True), data)
                    self.assertEqual(leaves[-1].get_filename(),
                                     content["attachments"][0]["name"].strip())   # Python strips NBSP too


if __name__ == "__main__":
    unittest.main(verbosity=2)
