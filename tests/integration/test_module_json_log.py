"""
test_module_json_log.py - the json_log module (modules/json_log) against the real daemon

A daemon relays sink.test to a scripted sink and loads json_log. The sink
answers by the recipient's local part:

  ok-*     250
  temp-*   450 on the first RCPT of the address, then 250
  perm-*   550 5.1.1 with plain ASCII text
  odd-*    550 5.1.1 with UTF-8 ("cafe" with an e-acute), a control byte
           (0x01) and a byte that is not UTF-8 (0xff)

and a RCPT to other.test is refused (relaying denied) for a rejectlog line.
What is checked is black-box: every line of the JSON file parses with
Python's json; each mainlog, bouncelog and rejectlog line is the `line`
field of exactly one event (byte for byte: the daemon runs with
invalid_utf8 = "surrogate", which Python's surrogateescape undoes), and
the other fields agree with the fields of those lines (deliverykit's
parser). Then: `types`, the reopen of a new path on reload, the flush at
shutdown, and a bad option refusing start-up.
"""

import json
import os
import signal
import subprocess
import threading
import time

import harness
from harness import DaemonTestCase, main, make_message
from deliverykit import inject, parse_line, wait_records, wait_until
from sink import Sink

HOSTNAME = "mx.test.example"
ODD_TEXT = "550 5.1.1 caf\u00e9 \x01 bad byte \udcff here"
FIELDS = ["type", "time", "message_id", "conn_id", "sender", "recipient", "nrecipients",
          "size", "binding_group", "binding", "domain", "peer", "peer_host", "protocol",
          "phase", "code", "reply", "bounce_class", "bounce_class_name", "attempts", "line"]


class Script:
    """Script - the sink's replies (see the module comment)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = set()

    def rcpt(self, addr):
        local = addr.split("@", 1)[0]
        if local.startswith("temp-"):
            with self.lock:
                first = addr not in self.seen
                self.seen.add(addr)
            return "450 4.2.0 busy, try again" if first else "250 2.1.5 OK"
        if local.startswith("perm-"):
            return "550 5.1.1 <%s>: no such user here" % addr
        if local.startswith("odd-"):
            return ODD_TEXT
        return "250 2.1.5 OK"


def read_json(path):
    """read_json - (raw bytes, [parsed objects]); every line must parse."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return b"", []
    events = []
    for i, line in enumerate(raw.split(b"\n")[:-1]):
        # Python's json accepts lone surrogates: the surrogate mode is lossless here.
        events.append(json.loads(line.decode("utf-8")))
    return raw, events


def raw_log(d, name):
    """raw_log - the lines of a log file as bytes."""
    try:
        with open(os.path.join(d.log_dir, name), "rb") as f:
            return [l for l in f.read().split(b"\n") if l]
    except FileNotFoundError:
        return []


def line_bytes(ev):
    return ev["line"].encode("utf-8", "surrogateescape")


def modules_line():
    return 'Module_Path = ( "%s" )' % harness.modules_dir()


class JsonLogTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.script = Script()
        cls.sink = Sink(rcpt_reply=cls.script.rcpt)
        cls.sink.start()
        try:
            cls.d = harness.Daemon(hostname=HOSTNAME, relay_domains=("sink.test",),
                                   hold_delivery=False, start=False)
            cls.json_path = os.path.join(cls.d.tmp, "events.jsonl")
            cls.d.global_text = "\n".join([
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Gateway = "127.0.0.1:%d"' % cls.d.dead_port,
                'Domain "sink.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % cls.sink.port,
                modules_line(),
                'json_log { path = "%s" invalid_utf8 = "surrogate" }' % cls.json_path,
            ])
            cls.d.write_config()
            cls.d.start()
        except BaseException:
            cls.sink.stop()
            if cls.d:
                cls.d.cleanup(check=False)
                cls.d = None
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sink.stop()

    def reject_one(self):
        """reject_one - a RCPT refused for relaying: one rejectlog line."""
        with harness.RawClient(self.d.port) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<s@sink.test>").code, 250)
            r = c.cmd("RCPT TO:<x@other.test>")
            self.assertEqual(r.code // 100, 5, str(r))
            c.cmd("QUIT")

    def wait_covered(self, timeout=25):
        """
        wait_covered - until every mainlog, bouncelog and rejectlog line is
        the line of a JSON event; returns (raw json, events, {file: lines}).
        """
        deadline = time.monotonic() + timeout
        while True:
            logs = {n: raw_log(self.d, n) for n in ("mainlog", "bouncelog", "rejectlog")}
            # The mainlog's event lines; its heartbeat (type M) is no log event.
            logs["mainlog"] = [l for l in logs["mainlog"] if l.split(b"@")[4:5] != [b"M"]]
            raw, events = read_json(self.json_path)
            have = {line_bytes(e) for e in events}
            missing = [l for ls in logs.values() for l in ls if l not in have]
            if not missing:
                return raw, events, logs
            if time.monotonic() > deadline:
                self.fail("log lines without a JSON event after %d s: %r\nJSON tail: %r"
                          % (timeout, missing[:5], raw[-2000:]))
            time.sleep(0.3)

    def test_events_match_the_logs(self):
        m = "jl%d" % (time.time_ns() % 10**9)
        rcpts = ["ok-%s@sink.test" % m, "temp-%s@sink.test" % m, "perm-%s@sink.test" % m,
                 "odd-%s@sink.test" % m]
        mid = inject(self.d, "s-%s@sink.test" % m, rcpts, make_message(marker=m))
        self.reject_one()
        wait_records(self.d, "D", mid, count=2)
        wait_records(self.d, "P", mid, count=2)
        wait_records(self.d, "B", mid, count=2)
        self.d.wait_log("rejectlog", "Relaying denied")

        raw, events, logs = self.wait_covered()

        # The file: UTF-8, one object per line, no raw control byte but the newlines.
        raw.decode("utf-8", "surrogateescape")
        self.assertFalse([b for b in raw if b < 0x20 and b != 0x0A],
                         "raw control bytes in the JSON file")
        for ev in events:
            self.assertEqual(list(ev.keys()), FIELDS)

        # Each log line is the line of exactly one event, of the right type.
        by_line = {}
        for ev in events:
            if ev["line"]:
                self.assertNotIn(line_bytes(ev), by_line, "two events with one line")
                by_line[line_bytes(ev)] = ev
        for name, lines in logs.items():
            for l in lines:
                ev = by_line.get(l)
                self.assertIsNotNone(ev, "%s line without event: %r" % (name, l))
                if name == "rejectlog":
                    self.assertEqual(ev["type"], "X")
                elif name == "bouncelog":
                    self.assertEqual(ev["type"], "B")
                else:
                    self.assertIn(ev["type"], "RDTP")
                    self.assertEqual(ev["type"], l.split(b"@")[4].decode())

        # Fields agree with the parsed log lines.
        mine = [e for e in events if e["message_id"].upper() == mid.upper()]
        for ev in mine:
            if not ev["line"]:
                continue
            rec = parse_line(ev["line"])
            self.assertIsNotNone(rec, ev["line"])
            self.assertEqual(rec["type"], ev["type"])
            self.assertEqual(rec["id"], ev["message_id"].upper())
            self.assertEqual(int(rec["time"]), ev["time"])
            if ev["type"] == "R":
                self.assertEqual("%s@%s" % (rec["rcpt_local"], rec["rcpt_domain"]),
                                 ev["recipient"])
                self.assertEqual(ev["nrecipients"], 4)
                self.assertEqual(rec["client_ip"], ev["peer"])
                self.assertEqual(ev["peer"], "127.0.0.1")
                self.assertEqual(rec["protocol"], ev["protocol"])
                self.assertEqual(int(rec["size"]), ev["size"])
                self.assertEqual(ev["sender"], "s-%s@sink.test" % m)
                self.assertEqual(ev["domain"], "sink.test")
            if ev["type"] in "DTP":
                self.assertEqual(rec["domain"], ev["domain"])
                self.assertIn(ev["recipient"], rcpts)
                self.assertTrue(rec["remote"].startswith("127.0.0.1"), rec)
                self.assertTrue(ev["peer"].startswith("127.0.0.1"), ev)
                # The host the route names (an MX name when DNS found it).
                self.assertEqual(ev["peer_host"], "127.0.0.1", ev)
            if ev["type"] == "D":
                self.assertEqual(int(rec["size"]), ev["size"])
                self.assertEqual(int(rec["retries"]) + 1, ev["attempts"])
            if ev["type"] in "TP":
                self.assertEqual(int(rec["retries"]) + (0 if ev["type"] == "T" else 1),
                                 ev["attempts"])
            if ev["type"] == "P":
                self.assertIn(ev["code"], (550,))
            if ev["type"] == "B":
                self.assertEqual(int(rec["cls"]), ev["bounce_class"])
                self.assertEqual(ev["bounce_class"], 10)
                self.assertEqual(ev["bounce_class_name"], "Invalid Recipient")
                self.assertEqual("%s@%s" % (rec["rcpt_local"], rec["rcpt_domain"]),
                                 ev["recipient"])

        types = sorted(e["type"] for e in mine)
        self.assertEqual(types.count("R"), 4)
        self.assertEqual(types.count("D"), 2)
        self.assertEqual(types.count("T"), 1)
        self.assertEqual(types.count("P"), 2)
        self.assertEqual(types.count("B"), 2)
        # A: one per recipient and attempt (ok, perm and odd once, temp twice), no line.
        attempts = [e for e in mine if e["type"] == "A"]
        self.assertEqual(sorted(e["recipient"] for e in attempts),
                         sorted(rcpts + ["temp-%s@sink.test" % m]))
        self.assertEqual({e["line"] for e in attempts}, {""})

        # The odd reply: UTF-8 kept, the control byte and the bad byte escaped.
        odd = [e for e in mine if e["type"] == "P" and e["recipient"].startswith("odd-")]
        self.assertEqual(len(odd), 1)
        self.assertIn("caf\u00e9", odd[0]["reply"])
        self.assertIn(b"caf\xc3\xa9", raw)
        self.assertIn(b"\\udcff", raw)
        self.assertIn("\udcff", odd[0]["reply"])

        # The rejection.
        x = [e for e in events if e["type"] == "X"]
        self.assertTrue(x)
        self.assertEqual(x[-1]["phase"], "rcptto")
        self.assertEqual(x[-1]["code"] // 100, 5)
        # "remote IP" says the header: the address alone, as R events give it.
        self.assertEqual(x[-1]["peer"], "127.0.0.1", x[-1])


class JsonLogLifeTest(DaemonTestCase):
    """types, reload to a new path, flush at shutdown, bad options."""

    def make(self, stanza_fn, start=True, **kw):
        d = self.new_daemon(start=False, **kw)
        d.global_text = modules_line() + "\n" + stanza_fn(d)
        d.write_config()
        if start:
            d.start()
        return d

    def test_types_and_reload_reopens(self):
        first = lambda d: os.path.join(d.tmp, "one.jsonl")
        second = lambda d: os.path.join(d.tmp, "two.jsonl")
        d = self.make(lambda d: 'json_log { path = "%s" types = "X" }' % first(d))
        d.send_mail(rcpts=("a@example.com",))
        with harness.RawClient(d.port) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<s@client.test>")
            self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.test>").code // 100, 5)
        wait_until(lambda: read_json(first(d))[1], what="the X event in one.jsonl")
        d.wait_log("mainlog", lambda l: "@R@" in l)
        # Only X: the reception (whose R line is in the mainlog now) is not there.
        time.sleep(1.5)
        self.assertEqual({e["type"] for e in read_json(first(d))[1]}, {"X"})

        # Reload: a new generation, a new instance, the new path, only R.
        d.global_text = modules_line() + '\njson_log { path = "%s" types = "R" }' % second(d)
        d.write_config()
        d.signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(second(d)), what="two.jsonl created by the reload")
        d.send_mail(rcpts=("b@example.com",))
        evs = wait_until(lambda: read_json(second(d))[1], what="the R event in two.jsonl")
        self.assertEqual({e["type"] for e in evs}, {"R"})
        self.assertEqual(evs[-1]["recipient"], "b@example.com")
        self.assertEqual({e["type"] for e in read_json(first(d))[1]}, {"X"})

    def test_flush_at_shutdown(self):
        path = lambda d: os.path.join(d.tmp, "late.jsonl")
        d = self.make(lambda d: 'json_log { path = "%s" types = "R" flush_interval = 3600 }'
                      % path(d))
        d.send_mail(rcpts=("late@example.com",))
        d.wait_log("mainlog", lambda l: "@R@" in l)
        # Flushed hourly: nothing yet (the R line that is in the mainlog came later).
        self.assertEqual(read_json(path(d))[1], [])
        d.stop()
        evs = read_json(path(d))[1]
        self.assertEqual([(e["type"], e["recipient"]) for e in evs], [("R", "late@example.com")])

    def test_bad_options_refuse_startup(self):
        for stanza, frag in [('json_log { path = "%s" types = "RQ" }', 'types = "RQ"'),
                             ('json_log { path = "%s" invalid_utf8 = "drop" }',
                              'invalid_utf8 = "drop"'),
                             ('json_log { path = "%s/no/such/dir/x.jsonl" }', "cannot open")]:
            with self.subTest(stanza=stanza):
                d = self.make(lambda d: stanza % d.tmp, start=False)
                with self.assertRaises(AssertionError) as cm:
                    d.start()
                self.assertIn("json_log", str(cm.exception))
                self.assertIn(frag, str(cm.exception))
                d.proc = None
                # impetusd -t checks the option table, not the module's own rules.
                r = subprocess.run([harness.impetusd_path(), "-t", "-c", d.conf_path],
                                   capture_output=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()
