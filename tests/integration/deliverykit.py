"""
deliverykit.py - shared helpers of the delivery tests (test_delivery*.py)

What the delivery tests need on top of harness.py:

  * inject()            send one message with smtplib (MAIL/RCPT parameters
                        included) and return the id from "250 2.0.0 OK <id>";
  * parse_line() and LogWatch: the mainlog D/T/P/R lines and the bouncelog
                        B lines split into named fields (shared/REFERENCE.md);
  * parse_bounce()      an RFC 3464 report as Python's email package sees it:
                        (message, per-message fields, [per-recipient fields],
                        third part);
  * conf_option()       find an option in src/config/conf_options.def by a
                        name pattern, so the DNS tests can use whatever the
                        resolver and port options end up being called, and
                        fail with a clear message while they do not exist;
  * wait_until()        poll a condition with a deadline.

Nothing here knows the daemon's internals; everything is black-box.
Ownership: stateless helpers; the caller owns the Daemon and the sinks.
Failure modes: every wait raises AssertionError saying what it waited for
and what it saw instead.
"""

import email
import email.policy
import os
import re
import time

from harness import SOURCE_DIR, accepted_id, missing_feature

# Generous: the whole suite also runs under ASan.
DELIVERY_TIMEOUT = 20.0

# Field names after the common prefix time@id@batch@conn@TYPE@.
FIELDS = {
    "R": ["rcpt_local", "rcpt_domain", "sender_local", "sender_domain", "client_ip",
          "size", "protocol", "bgroup", "binding"],
    "D": ["domain", "size", "bgroup", "binding", "retries", "secs", "remote"],
    "T": ["domain", "bytes", "bgroup", "binding", "stage", "retries", "secs", "remote",
          "response"],
    "P": ["domain", "bytes", "bgroup", "binding", "stage", "retries", "secs", "remote",
          "response"],
    "B": ["rcpt_local", "rcpt_domain", "sender_local", "sender_domain", "bgroup",
          "binding", "stage", "cls", "size", "remote", "response"],
}
PREFIX = ["time", "id", "batch", "conn", "type"]


def parse_line(line):
    """
    parse_line - one log line as a dict of named fields, or None for lines
    of other types. The last field (a response text) may itself hold '@'
    in theory, so the split stops before it.
    """
    head = line.split("@", 5)
    if len(head) < 6 or head[4] not in FIELDS:
        return None
    names = FIELDS[head[4]]
    rest = head[5].split("@", len(names) - 1)
    rec = dict(zip(PREFIX, head[:5]))
    rec["id"] = rec["id"].upper()
    rec["raw"] = line
    rec["nfields"] = 5 + len(rest)
    for i, name in enumerate(names):
        rec[name] = rest[i] if i < len(rest) else None
    return rec


def records(daemon, rtype, msg_id=None, log=None):
    """records - parsed lines of one type (from mainlog, or bouncelog for B)."""
    log = log or ("bouncelog" if rtype == "B" else "mainlog")
    out = []
    for line in daemon.log(log):
        rec = parse_line(line)
        if rec is None or rec["type"] != rtype:
            continue
        if msg_id is not None and rec["id"] != msg_id.upper():
            continue
        out.append(rec)
    return out


def wait_records(daemon, rtype, msg_id=None, count=1, timeout=DELIVERY_TIMEOUT, pred=None,
                 what=None):
    """
    wait_records - at least `count` parsed lines of type rtype (for msg_id,
    matching pred); AssertionError with the logs' tails when they do not
    come. Logs are flushed about once a second.
    """
    deadline = time.monotonic() + timeout
    while True:
        daemon.assert_alive()
        recs = [r for r in records(daemon, rtype, msg_id) if pred is None or pred(r)]
        if len(recs) >= count:
            return recs
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise AssertionError(
        "%s: expected %d %s line(s)%s within %.0f s, found %d.\nmainlog tail:\n%s\n"
        "bouncelog tail:\n%s\npaniclog tail:\n%s"
        % (what or "log", count, rtype, (" for " + msg_id) if msg_id else "", timeout,
           len(recs), "\n".join(daemon.mainlog()[-25:]),
           "\n".join(daemon.log("bouncelog")[-10:]),
           "\n".join(daemon.paniclog()[-15:])))


def wait_until(cond, timeout=DELIVERY_TIMEOUT, what="condition", interval=0.1):
    """wait_until - poll cond() until it is true; AssertionError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_gone_from_spool(test, daemon, msg_id, timeout=DELIVERY_TIMEOUT):
    """wait_gone_from_spool - the message disappears from `impetus spool ls`."""
    deadline = time.monotonic() + timeout
    while True:
        live = [m for m in daemon.spool_ls() if str(m.get("id", "")).upper() == msg_id.upper()]
        if not live:
            return
        if time.monotonic() > deadline:
            test.fail("message %s still listed by `impetus spool ls` %.0f s after its last "
                      "recipient finished: %r" % (msg_id, timeout, live))
        time.sleep(0.3)


def inject(daemon, sender, rcpts, body, mail_opts=(), rcpt_opts=None):
    """
    inject - one message over a fresh smtplib session; returns its id.
    rcpt_opts: a list of options for every recipient, or a dict
    {address: [options]}.
    """
    s = daemon.smtp()
    try:
        code, msg = s.ehlo("client.test")
        if code != 250:
            raise AssertionError("EHLO refused: %d %r" % (code, msg))
        return _transaction(s, sender, rcpts, body, mail_opts, rcpt_opts)
    finally:
        try:
            s.quit()
        except Exception:
            s.close()


def inject_many(daemon, messages):
    """
    inject_many - several messages over one smtplib session; `messages` is a
    list of (sender, rcpts, body); returns their ids in order.
    """
    s = daemon.smtp()
    ids = []
    try:
        s.ehlo("client.test")
        for sender, rcpts, body in messages:
            ids.append(_transaction(s, sender, rcpts, body, (), None))
        return ids
    finally:
        try:
            s.quit()
        except Exception:
            s.close()


def _transaction(s, sender, rcpts, body, mail_opts, rcpt_opts):
    code, msg = s.mail(sender, list(mail_opts))
    if code != 250:
        raise AssertionError("MAIL FROM:<%s> %s refused: %d %r" % (sender, mail_opts, code, msg))
    for r in rcpts:
        if isinstance(rcpt_opts, dict):
            opts = rcpt_opts.get(r, [])
        else:
            opts = list(rcpt_opts or [])
        code, msg = s.rcpt(r, opts)
        if code != 250:
            raise AssertionError("RCPT TO:<%s> %s refused: %d %r" % (r, opts, code, msg))
    code, msg = s.data(body)
    return accepted_id((code, msg))


# ---------------------------------------------------------------------------
# Bounces
# ---------------------------------------------------------------------------

def parse_bounce(body):
    """
    parse_bounce - (msg, per_message, per_rcpt, third) of an RFC 3464 report:
    msg the parsed email.message.EmailMessage, per_message a dict of the
    delivery-status part's first block, per_rcpt a list of dicts (one per
    recipient block), third the third part or None. AssertionError when
    the structure is not a delivery-status report.
    """
    msg = email.message_from_bytes(body, policy=email.policy.default)
    if msg.get_content_type() != "multipart/report":
        raise AssertionError("bounce is %s, not multipart/report:\n%s"
                             % (msg.get_content_type(), body[:3000].decode(errors="replace")))
    if (msg.get_param("report-type") or "").lower() != "delivery-status":
        raise AssertionError("bounce report-type is %r, not delivery-status"
                             % msg.get_param("report-type"))
    parts = list(msg.iter_parts())
    if len(parts) < 2 or parts[1].get_content_type() != "message/delivery-status":
        raise AssertionError("second part of the bounce is not message/delivery-status: %r"
                             % [p.get_content_type() for p in parts])
    blocks = parts[1].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise AssertionError("message/delivery-status holds %r, expected a per-message block "
                             "and at least one per-recipient block:\n%s"
                             % (blocks, body[:3000].decode(errors="replace")))
    per_message = {k.lower(): str(v) for k, v in blocks[0].items()}
    per_rcpt = [{k.lower(): str(v) for k, v in b.items()} for b in blocks[1:]]
    third = parts[2] if len(parts) > 2 else None
    return msg, per_message, per_rcpt, third


def part_bytes(part):
    """part_bytes - the raw content of a MIME part (decoded transfer encoding)."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list):
            inner = inner[0]
        return inner.as_bytes(policy=email.policy.SMTP)
    data = part.get_payload(decode=True)
    if data is None:
        data = part.get_payload().encode()
    return data


def rcpt_of(per_rcpt, addr):
    """rcpt_of - the per-recipient block whose Final-Recipient is addr."""
    for b in per_rcpt:
        fr = b.get("final-recipient", "")
        if fr.split(";", 1)[-1].strip().lower() == addr.lower():
            return b
    raise AssertionError("no per-recipient block with Final-Recipient %s in %r" % (addr, per_rcpt))


# ---------------------------------------------------------------------------
# Options that may not exist yet
# ---------------------------------------------------------------------------

_OPT_RE = re.compile(r'CONF_OPTION\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*(CONF_T_\w+)\s*,\s*([^,]+),')


def conf_options():
    """conf_options - [(name, type, scopes)] from src/config/conf_options.def."""
    path = os.path.join(SOURCE_DIR, "src", "config", "conf_options.def")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    return [(m.group(2), m.group(3), m.group(4).strip()) for m in _OPT_RE.finditer(text)]


def conf_option(pattern, what):
    """
    conf_option - (name, type) of the first option whose name matches the
    regular expression (case-insensitive); missing_feature(what) if none.
    """
    rx = re.compile(pattern, re.I)
    for name, otype, _scopes in conf_options():
        if rx.search(name):
            return name, otype
    missing_feature(what)


def option_line(name, otype, value):
    """option_line - `Name = value` in the syntax the option's type takes."""
    if otype == "CONF_T_LIST":
        vals = value if isinstance(value, (list, tuple)) else [value]
        return "%s = ( %s )" % (name, " ".join('"%s"' % v for v in vals))
    if otype in ("CONF_T_INT", "CONF_T_INTERVAL", "CONF_T_SIZE"):
        return "%s = %s" % (name, value)
    return '%s = "%s"' % (name, value)


# The fields impetus puts in front of a message it receives over SMTP
# (RFC2822_Trace_Headers, RFC2822_Messageid_Header, RFC2822_Date_Header).
ADDED_FIELDS = (b"return-path", b"received", b"message-id", b"date")


def received_prefix_ok(delivered, original):
    """
    received_prefix_ok - None when `delivered` is `original` with only
    impetus's own fields put in front: Return-Path first, exactly one
    Received:, and the Message-ID or Date the client left out; else why not.
    """
    if not delivered.endswith(original):
        return "the delivered body does not end with the original message"
    prefix = delivered[:len(delivered) - len(original)]
    if not prefix.startswith(b"Return-Path: <"):
        return "the bytes before the original do not start with Return-Path: %r" % prefix[:300]
    lines = prefix.split(b"\r\n")
    if lines[-1] != b"":
        return "the added header does not end with CRLF: %r" % prefix[-100:]
    names = [l.split(b":", 1)[0].lower() for l in lines[:-1] if l[:1] not in (b" ", b"\t")]
    if names.count(b"received") != 1 or any(n not in ADDED_FIELDS for n in names):
        return "not exactly impetus's own fields were added: %r" % prefix
    orig_names = {l.split(b":", 1)[0].lower() for l in original.split(b"\r\n\r\n", 1)[0].split(b"\r\n")}
    for n in (b"message-id", b"date"):
        if n in names and n in orig_names:
            return "%s added although the client sent one: %r" % (n.decode(), prefix)
    return None
