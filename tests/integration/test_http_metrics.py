"""
test_http_metrics.py - GET /metrics (Prometheus text format) against the real daemon

Black-box, docs/http-api.md ("Metrics") as the contract:

- the answer is text/plain; version=0.0.4 and `promtool check metrics`
  (Debian's prometheus package) accepts it;
- every documented metric is there with # HELP and # TYPE, of its type;
- the counters move as mail flows: a message through a real downstream
  receiver (sink.py, via Gateway) raises received and delivered; a
  refused recipient raises rejections; none of them goes down after the
  console's `summary reset` (Prometheus counters only grow);
- auth as the admin GET routes: a read key is enough, no key -> 401;
  without any API_Key a loopback client is answered.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_until  # noqa: E402
from sink import Sink  # noqa: E402
from test_http_admin import ADMIN_KEY, READ_KEY, INJECT_KEY, Client, http_conf  # noqa: E402

SENDER = "sender@example.org"
COUNTERS = ("impetus_messages_received_total", "impetus_messages_delivered_total",
            "impetus_messages_failed_total", "impetus_rejections_total",
            "impetus_dns_queries_total")
GAUGES = ("impetus_queue_active", "impetus_queue_delayed", "impetus_queue_messages",
          "impetus_connections_in", "impetus_connections_out", "impetus_spool_bytes",
          "impetus_spool_segments", "impetus_spool_messages", "impetus_uptime_seconds")

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ([^ ]+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse(text):
    """
    parse - a tiny reader of the text format: {name: {"type", "help",
    "samples": {labels tuple: value}}}. Raises on a line it cannot read.
    """
    fams = {}
    for line in text.splitlines():
        if not line:
            continue
        m = re.match(r'^# (HELP|TYPE) (\S+) (.*)$', line)
        if m:
            fams.setdefault(m.group(2), {"samples": {}})[m.group(1).lower()] = m.group(3)
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("unreadable metrics line %r" % line)
        labels = ()
        if m.group(2):
            pairs = LABEL.findall(m.group(2))
            if "".join('%s="%s",' % p for p in pairs).rstrip(",") != m.group(2).rstrip(","):
                raise AssertionError("unreadable labels in %r" % line)
            labels = tuple(sorted(pairs))
        fams.setdefault(m.group(1), {"samples": {}})["samples"][labels] = float(m.group(3))
    return fams


def promtool_check(test, text):
    """promtool_check - `promtool check metrics` on text; fails the test on any complaint."""
    tool = shutil.which("promtool")
    if tool is None:
        test.skipTest("promtool not installed (Debian's prometheus package, "
                      "scripts/install-deps.sh)")
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True,
                       timeout=30)
    test.assertEqual(r.returncode, 0, "promtool check metrics: %s%s\n---\n%s"
                     % (r.stdout, r.stderr, text))
    test.assertEqual((r.stdout + r.stderr).strip(), "", "promtool complaints")


class HttpMetrics(harness.DaemonTestCase):

    def fetch(self, port, key=None):
        """fetch - GET /metrics: (status, content type, body text)."""
        c = Client(port, key)
        try:
            st, r, doc = c.req("GET", "/metrics")
            body = doc if isinstance(doc, bytes) else repr(doc).encode()
            return st, r.getheader("Content-Type"), body.decode()
        finally:
            c.close()

    def value(self, fams, name, labels=()):
        return fams[name]["samples"][labels]

    def test_metrics_flow_and_auth(self):
        sink = Sink()
        sink.start()
        self.addCleanup(sink.stop)
        port = harness.free_port()
        d = self.new_daemon(relay_domains=("example.com",), hold_delivery=False,
                            global_text=http_conf(port) +
                            'Gateway = "127.0.0.1:%d"\n' % sink.port)

        st, ctype, text = self.fetch(port, READ_KEY)
        self.assertEqual(st, 200, text)
        self.assertEqual(ctype, "text/plain; version=0.0.4")
        promtool_check(self, text)
        before = parse(text)
        for name in COUNTERS:
            self.assertEqual(before[name].get("type"), "counter", name)
            self.assertTrue(before[name].get("help"), name)
        for name in GAUGES:
            self.assertEqual(before[name].get("type"), "gauge", name)
            self.assertTrue(before[name].get("help"), name)
            self.assertTrue(before[name]["samples"], name)
        self.assertIn((("binding", "default"),), before["impetus_queue_active"]["samples"])

        # Mail through the real sink: received and delivered go up.
        inject(d, SENDER, ["one@example.com"], harness.make_message(marker="metrics-1"))
        sink.wait_for(1, timeout=10)

        def delivered():
            return parse(self.fetch(port, READ_KEY)[2])

        wait_until(lambda: self.value(delivered(), "impetus_messages_delivered_total") >=
                   self.value(before, "impetus_messages_delivered_total") + 1,
                   timeout=10, what="the delivered counter to move")
        st, _, text = self.fetch(port, READ_KEY)
        promtool_check(self, text)
        after = parse(text)
        self.assertEqual(self.value(after, "impetus_messages_received_total"),
                         self.value(before, "impetus_messages_received_total") + 1)
        self.assertEqual(self.value(after, "impetus_messages_delivered_total"),
                         self.value(before, "impetus_messages_delivered_total") + 1)
        self.assertEqual(self.value(after, "impetus_messages_failed_total"),
                         self.value(before, "impetus_messages_failed_total"))
        self.assertGreaterEqual(self.value(after, "impetus_spool_segments"), 1)

        # A recipient the daemon does not relay for: a rejection.
        s = self.smtp(d)
        s.ehlo("client.test")
        s.mail(SENDER)
        code, _ = s.rcpt("nobody@not-relayed.test")
        self.assertGreaterEqual(code, 500)
        s.quit()
        wait_until(lambda: self.value(delivered(), "impetus_rejections_total") >=
                   self.value(after, "impetus_rejections_total") + 1,
                   timeout=10, what="the rejections counter to move")

        # `summary reset` restarts summary's counts, not the metrics' counters.
        c = Client(port, ADMIN_KEY)
        st, _, doc = c.req("POST", "/api/v1/commands", body={"command": "summary", "args": ["reset"]})
        c.close()
        self.assertEqual(st, 200, doc)
        reset = parse(self.fetch(port, READ_KEY)[2])
        for name in ("impetus_messages_received_total", "impetus_messages_delivered_total"):
            self.assertGreaterEqual(self.value(reset, name), self.value(after, name), name)

        # Auth: no key and an inject key are refused; the admin key is let in.
        st, _, text = self.fetch(port)
        self.assertEqual(st, 401, text)
        st, _, text = self.fetch(port, INJECT_KEY)
        self.assertEqual(st, 403, text)
        self.assertEqual(self.fetch(port, ADMIN_KEY)[0], 200)

    def test_loopback_without_keys(self):
        port = harness.free_port()
        self.new_daemon(global_text=http_conf(port, keys=False))
        st, ctype, text = self.fetch(port)
        self.assertEqual(st, 200, text)
        self.assertEqual(ctype, "text/plain; version=0.0.4")
        promtool_check(self, text)
        self.assertIn("impetus_uptime_seconds", parse(text))


if __name__ == "__main__":
    unittest.main()
