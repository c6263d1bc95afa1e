#!/usr/bin/python3
"""dsn_check.py - read a rendered bounce the way a real mail program does.

Used by test_dsn.c: it writes a DSN rendered by dsn_render() to a file and
runs "python3 dsn_check.py FILE". This script parses the file with Python's
email package (policy.default, the modern parser), checks the structural
rules a bounce must keep, and prints what it read as "key=value" lines for
the C test to compare:

    header-names=From,To,...            top-level field names, in order
    content-type=multipart/report
    report-type=delivery-status
    subject=...
    part.N=<content type>
    msg.<field>=<value>                 per-message delivery-status fields
    rcpt.N.<field>=<value>              per-recipient fields (names lower-case)
    orig.subject=<Subject of the enclosed original>  (message/rfc822)
    orig.headers=<number of header fields>           (text/rfc822-headers)

Problems go to stderr as "dsn_check: ..." and make the exit status 1.
Standard library only.
"""

import email
import email.policy
import sys


def fail(problems, text):
    problems.append(text)


def check_lines(raw, problems):
    """Every line ends in CRLF; no bare CR or LF; header lines within 998."""
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find(b"\n", i)
        if j < 0:
            fail(problems, "last line has no line ending")
            break
        if j == i or raw[j - 1:j] != b"\r":
            fail(problems, "bare LF at byte %d" % j)
        line = raw[i:j - 1] if raw[j - 1:j] == b"\r" else raw[i:j]
        if b"\r" in line:
            fail(problems, "bare CR in line at byte %d" % i)
        if len(line) > 998:
            fail(problems, "line longer than 998 at byte %d" % i)
        i = j + 1


def raw_of(part):
    """raw_of - the content of a part as bytes; Python parses every message/*
    type as an enclosed message, so that one is serialised back (UTF-8 kept)."""
    pl = part.get_payload()
    if isinstance(pl, list):
        return b"".join(m.as_bytes(policy=email.policy.SMTPUTF8) for m in pl)
    return part.get_payload(decode=True) or b""


def one_line(v):
    return str(v).replace("\r", "\\r").replace("\n", "\\n")


def main():
    if len(sys.argv) != 2:
        print("usage: dsn_check.py FILE", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        raw = f.read()
    problems = []
    out = []
    check_lines(raw, problems)

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for part in msg.walk():
        for d in part.defects:
            fail(problems, "defect in %s: %r" % (part.get_content_type(), d))
    # An RFC 6533 (SMTPUTF8) report may carry UTF-8, and only well-formed.
    glob = str(msg.get_param("report-type", "")).lower() == "global-delivery-status"
    if glob:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            fail(problems, "global report is not well-formed UTF-8: %s" % e)
    hdr_end = raw.find(b"\r\n\r\n")
    for ln in raw[:hdr_end].split(b"\r\n"):
        if len(ln) >= 78:
            fail(problems, "top-level header line of %d chars" % len(ln))
        if any(c >= 0x80 for c in ln) and not glob:
            fail(problems, "8-bit byte in the top-level header")

    out.append("header-names=" + ",".join(msg.keys()))
    out.append("content-type=" + msg.get_content_type())
    out.append("report-type=" + str(msg.get_param("report-type", "")))
    for name in ("From", "To", "Subject", "Auto-Submitted", "Message-ID",
                 "MIME-Version"):
        if msg[name] is not None:
            out.append(name.lower() + "=" + one_line(msg[name]))
    if msg["Date"] is not None and msg["Date"].datetime is None:
        fail(problems, "Date does not parse: %r" % str(msg["Date"]))

    if not msg.is_multipart():
        fail(problems, "not multipart")
        parts = []
    else:
        parts = msg.get_payload()
    for i, part in enumerate(parts):
        ctype = part.get_content_type()
        out.append("part.%d=%s" % (i, ctype))
        if ctype == "text/plain":
            body = part.get_payload(decode=True)
            if any(c >= 0x80 for c in body) and not glob:
                fail(problems, "8-bit byte in the text part")
            for ln in body.split(b"\r\n"):
                if len(ln) >= 78:
                    fail(problems, "text line of %d chars: %r" % (len(ln), ln))
            out.append("text.has-recipients=%d" % body.count(b"<"))
        elif ctype == "message/delivery-status":
            blocks = part.get_payload()
            if not blocks:
                fail(problems, "empty delivery-status")
                continue
            raw_part = part.as_bytes()
            if any(c >= 0x80 for c in raw_part):
                fail(problems, "8-bit byte in the delivery-status part")
            for k, v in blocks[0].items():
                out.append("msg.%s=%s" % (k.lower(), one_line(v)))
            if blocks[0]["Reporting-MTA"] is None:
                fail(problems, "no Reporting-MTA")
            for n, blk in enumerate(blocks[1:]):
                for k, v in blk.items():
                    out.append("rcpt.%d.%s=%s" % (n, k.lower(), one_line(v)))
                for req in ("Final-Recipient", "Action", "Status"):
                    if blk[req] is None:
                        fail(problems, "recipient %d has no %s" % (n, req))
        elif ctype == "message/global-delivery-status":
            # Python does not split this type into blocks: do it by hand,
            # each block parsed as a header section by the email package.
            if not glob:
                fail(problems, "global part in a report that is not global")
            data = raw_of(part)
            blocks = [email.message_from_bytes(b + b"\r\n", policy=email.policy.default)
                      for b in data.replace(b"\r\n", b"\n").strip(b"\n").split(b"\n\n")]
            for k, v in blocks[0].items():
                out.append("msg.%s=%s" % (k.lower(), one_line(v)))
            for n, blk in enumerate(blocks[1:]):
                for k, v in blk.items():
                    out.append("rcpt.%d.%s=%s" % (n, k.lower(), one_line(v)))
                for req in ("Final-Recipient", "Action", "Status"):
                    if blk[req] is None:
                        fail(problems, "recipient %d has no %s" % (n, req))
        elif ctype in ("message/global", "message/global-headers"):
            data = raw_of(part)
            inner = email.message_from_bytes(data, policy=email.policy.default)
            out.append("orig.subject=" + one_line(inner["Subject"]))
            out.append("orig.headers=%d" % len(inner.keys()))
        elif ctype == "message/rfc822":
            inner = part.get_payload()
            if not inner:
                fail(problems, "empty message/rfc822")
                continue
            out.append("orig.subject=" + one_line(inner[0]["Subject"]))
            out.append("orig.body-bytes=%d" % len(inner[0].get_payload(decode=True) or b""))
        elif ctype == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            hdrs = email.message_from_bytes(body, policy=email.policy.default)
            out.append("orig.headers=%d" % len(hdrs.keys()))
            out.append("orig.subject=" + one_line(hdrs["Subject"]))
            if hdrs.get_payload():
                fail(problems, "text/rfc822-headers carries a body")
        else:
            fail(problems, "unexpected part type " + ctype)

    for line in out:
        print(line)
    for p in problems:
        print("dsn_check: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
