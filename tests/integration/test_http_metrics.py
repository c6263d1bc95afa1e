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
  without any API_Key a loopback client is answered;
- the labelled outcome counters move with real mail resolved through a
  real DNS server (dnsfixture.py, dnsmasq) and delivered to a real sink
  that answers 250, 450 (transient) or 550 (permanent) per recipient;
  with Metrics_Domain_Limit = 2 and five domains, two domains get their
  own series and the rest is domain="other", the domain series add up to
  the binding series, and no series ever goes down between scrapes;
- the histograms (group commit size, fdatasync latency, time to 250)
  count the messages, bucket by bucket cumulative, +Inf == _count;
- the DNS counters: queries, cache hits and a SERVFAIL as a temporary
  failure.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_records, wait_until  # noqa: E402
from dnsfixture import DnsServer  # noqa: E402
from sink import Sink  # noqa: E402
from test_http_admin import ADMIN_KEY, READ_KEY, INJECT_KEY, Client, http_conf  # noqa: E402

SENDER = "sender@example.org"
COUNTERS = ("impetus_messages_received_total", "impetus_messages_delivered_total",
            "impetus_messages_transient_failures_total",
            "impetus_messages_permanent_failures_total", "impetus_domain_delivered_total",
            "impetus_domain_transient_failures_total", "impetus_domain_permanent_failures_total",
            "impetus_bounces_total", "impetus_rejections_total")
HISTOGRAMS = ("impetus_spool_commit_messages", "impetus_spool_fsync_seconds",
              "impetus_smtp_time_to_250_seconds")
DNS_COUNTERS = ("impetus_dns_queries_total", "impetus_dns_lookups_total",
                "impetus_dns_cache_hits_total", "impetus_dns_failures_total")
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

    def total(self, fams, name):
        """total - the sum of a family's samples over all its labels."""
        return sum(fams[name]["samples"].values())

    def labelled(self, fams, name, label):
        """labelled - {label value: sample} of a family with one label."""
        out = {}
        for labels, v in fams[name]["samples"].items():
            d = dict(labels)
            self.assertEqual(list(d), [label], "%s labels %r" % (name, labels))
            out[d[label]] = v
        return out

    def check_histogram(self, fams, name):
        """check_histogram - cumulative buckets ending in +Inf == _count; returns _count."""
        self.assertEqual(fams[name].get("type"), "histogram", name)
        buckets = []
        for labels, v in fams[name + "_bucket"]["samples"].items():
            le = dict(labels)["le"]
            buckets.append((float("inf") if le == "+Inf" else float(le), v))
        buckets.sort()
        self.assertGreaterEqual(len(buckets), 5, name)
        self.assertEqual(buckets[-1][0], float("inf"), name)
        for (_, a), (_, b) in zip(buckets, buckets[1:]):
            self.assertLessEqual(a, b, "%s buckets not cumulative: %r" % (name, buckets))
        count = self.value(fams, name + "_count")
        self.assertEqual(buckets[-1][1], count, name)
        self.assertGreaterEqual(self.value(fams, name + "_sum"), 0, name)
        return count

    def check_monotonic(self, old, new):
        """check_monotonic - no counter or histogram sample of old is lower (or gone) in new."""
        for name, fam in old.items():
            if fam.get("type") not in ("counter", None) or name.startswith("impetus_uptime"):
                continue
            if fam.get("type") is None and not (name.endswith("_bucket") or
                                                name.endswith("_count")):
                continue
            for labels, v in fam["samples"].items():
                self.assertIn(labels, new[name]["samples"], "%s%r disappeared" % (name, labels))
                self.assertGreaterEqual(new[name]["samples"][labels], v,
                                        "%s%r went down" % (name, labels))

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

        wait_until(lambda: self.total(delivered(), "impetus_messages_delivered_total") >=
                   self.total(before, "impetus_messages_delivered_total") + 1,
                   timeout=10, what="the delivered counter to move")
        st, _, text = self.fetch(port, READ_KEY)
        promtool_check(self, text)
        after = parse(text)
        self.check_monotonic(before, after)
        self.assertEqual(self.value(after, "impetus_messages_received_total",
                                    (("protocol", "esmtp"),)),
                         self.total(before, "impetus_messages_received_total") + 1)
        self.assertEqual(self.value(after, "impetus_messages_delivered_total",
                                    (("binding", "default"),)),
                         self.total(before, "impetus_messages_delivered_total") + 1)
        self.assertEqual(self.total(after, "impetus_messages_permanent_failures_total"),
                         self.total(before, "impetus_messages_permanent_failures_total"))
        self.assertGreaterEqual(self.value(after, "impetus_spool_segments"), 1)
        # One message: one reception commit and one 250; the delivery's records add fsyncs.
        for name in ("impetus_spool_commit_messages", "impetus_smtp_time_to_250_seconds"):
            self.assertEqual(self.check_histogram(after, name),
                             self.check_histogram(before, name) + 1, name)
        self.assertGreaterEqual(self.check_histogram(after, "impetus_spool_fsync_seconds"),
                                self.check_histogram(before, "impetus_spool_fsync_seconds") + 1)

        # A recipient the daemon does not relay for: a rejection.
        s = self.smtp(d)
        s.ehlo("client.test")
        s.mail(SENDER)
        code, _ = s.rcpt("nobody@not-relayed.test")
        self.assertGreaterEqual(code, 500)
        s.quit()
        wait_until(lambda: self.value(delivered(), "impetus_rejections_total",
                                      (("protocol", "esmtp"),)) >=
                   self.value(after, "impetus_rejections_total", (("protocol", "esmtp"),)) + 1,
                   timeout=10, what="the esmtp rejections counter to move")

        # `summary reset` restarts summary's counts, not the metrics' counters.
        c = Client(port, ADMIN_KEY)
        st, _, doc = c.req("POST", "/api/v1/commands", body={"command": "summary", "args": ["reset"]})
        c.close()
        self.assertEqual(st, 200, doc)
        reset = parse(self.fetch(port, READ_KEY)[2])
        self.check_monotonic(after, reset)

        # Auth: no key and an inject key are refused; the admin key is let in.
        st, _, text = self.fetch(port)
        self.assertEqual(st, 401, text)
        st, _, text = self.fetch(port, INJECT_KEY)
        self.assertEqual(st, 403, text)
        self.assertEqual(self.fetch(port, ADMIN_KEY)[0], 200)

    def test_outcomes_domains_dns(self):
        """
        Real MX lookups (dnsmasq) and a real sink answering 250 / 450 / 550
        per recipient; Metrics_Domain_Limit = 2 with five domains.
        """
        def rcpt_reply(addr):
            if addr.startswith("tmp"):
                return "450 4.2.0 try later"
            if addr.startswith("perm"):
                return "550 5.1.1 no such user"
            return "250 2.1.5 OK"

        sink = Sink(rcpt_reply=rcpt_reply)
        sink.start()
        self.addCleanup(sink.stop)
        bounce_sink = Sink()
        bounce_sink.start()
        self.addCleanup(bounce_sink.stop)
        doms = ("a.test", "b.test", "c.test", "d.test")
        dns = DnsServer(mx=[(dom, "mx.%s" % dom, 10) for dom in doms],
                        hosts={"mx.%s" % dom: ["127.0.0.1"] for dom in doms},
                        servfail=["sf.test"])
        dns.start()
        self.addCleanup(dns.close)
        port = harness.free_port()
        d = self.new_daemon(
            relay_domains=(), relay_hosts=("127.0.0.0/8",), hold_delivery=False,
            global_text=http_conf(port) + "\n".join([
                'DNS_Servers = ( "%s" )' % dns.servers,
                "Outbound_SMTP_Port = %d" % sink.port,
                "Metrics_Domain_Limit = 2",
                "Retry_Interval = 3600",
                "Idle_Timeout = 1",
                'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                % bounce_sink.port, ""]))
        sender = "s@bounces.test"

        def scrape():
            st, _, text = self.fetch(port, READ_KEY)
            self.assertEqual(st, 200, text)
            promtool_check(self, text)
            return parse(text)

        first = scrape()
        self.assertEqual(self.labelled(first, "impetus_domain_delivered_total", "domain"),
                         {"other": 0})
        dns0 = first

        # Step 1: a.test 3 delivered; b.test 1 delivered, 1 transient, 1 permanent (and
        # its bounce, delivered to bounces.test); c.test and d.test 1 each.
        # No scrape until every outcome of a.test and b.test is in the mainlog (and so
        # counted): a scrape is when the domains are ranked.
        ma = inject(d, sender, ["ok1@a.test", "ok2@a.test", "ok3@a.test"],
                    harness.make_message(marker="m-a"))
        mb = inject(d, sender, ["ok1@b.test", "perm1@b.test"], harness.make_message(marker="m-b"))
        # Alone: a deferred recipient keeps its message (and its bounce) open.
        mb2 = inject(d, sender, ["tmp1@b.test"], harness.make_message(marker="m-b2"))
        mcd = inject(d, sender, ["ok@c.test", "ok@d.test"], harness.make_message(marker="m-cd"))
        wait_records(d, "D", ma, count=3, timeout=15)
        wait_records(d, "D", mb, timeout=15)
        wait_records(d, "P", mb, timeout=15)
        wait_records(d, "T", mb2, timeout=15)
        wait_records(d, "D", mcd, count=2, timeout=15)
        wait_until(lambda: bounce_sink.messages(), 15, "the bounce for perm1@b.test")

        def outcomes(fams, kind):
            return self.total(fams, "impetus_messages_%s_total" % kind)

        wait_until(lambda: outcomes(scrape(), "delivered") >= 7, 15,
                   "6 deliveries and the bounce counted")
        one = scrape()
        self.check_monotonic(first, one)
        self.assertEqual(outcomes(one, "delivered"), 7)
        self.assertEqual(outcomes(one, "transient_failures"), 1)
        self.assertEqual(outcomes(one, "permanent_failures"), 1)
        self.assertEqual(self.labelled(one, "impetus_messages_delivered_total", "binding"),
                         {"default": 7})
        self.assertEqual(self.value(one, "impetus_bounces_total"), 1)
        received = self.labelled(one, "impetus_messages_received_total", "protocol")
        self.assertEqual(received.get("esmtp"), 4, received)
        self.assertEqual(received.get("internal"), 1, received)
        # The scrape ranked a.test (3) and b.test (3) first: their series start now;
        # what came before is "other", so no series ever goes backwards.
        dom = self.labelled(one, "impetus_domain_delivered_total", "domain")
        self.assertEqual(dom, {"a.test": 0, "b.test": 0, "other": 7})
        self.assertEqual(self.labelled(one, "impetus_domain_transient_failures_total",
                                       "domain"), {"a.test": 0, "b.test": 0, "other": 1})
        self.assertEqual(self.labelled(one, "impetus_domain_permanent_failures_total",
                                       "domain"), {"a.test": 0, "b.test": 0, "other": 1})
        self.assertGreaterEqual(self.value(one, "impetus_dns_queries_total"),
                                self.value(dns0, "impetus_dns_queries_total") + 4)
        self.assertGreaterEqual(self.value(one, "impetus_dns_lookups_total"), 4)
        self.assertIn(("MX", "c.test"), dns.queries("c.test"))
        self.assertGreaterEqual(self.check_histogram(one, "impetus_spool_commit_messages"), 1)
        self.assertEqual(self.check_histogram(one, "impetus_smtp_time_to_250_seconds"), 4)

        # Step 2: a.test again once its idle connection closed (its queue is freed, so
        # the MX comes from the DNS cache), c.test (no slot left: "other") and sf.test
        # (SERVFAIL: a temporary DNS failure).
        wait_until(lambda: self.value(scrape(), "impetus_connections_out") == 0, 10,
                   "the idle connections to close")
        inject(d, sender, ["ok4@a.test"], harness.make_message(marker="m-a2"))
        inject(d, sender, ["ok2@c.test"], harness.make_message(marker="m-c2"))
        inject(d, sender, ["x@sf.test"], harness.make_message(marker="m-sf"))
        wait_until(lambda: outcomes(scrape(), "delivered") >= 9 and
                   outcomes(scrape(), "transient_failures") >= 2, 20,
                   "two more deliveries and the SERVFAIL deferral")
        two = scrape()
        self.check_monotonic(one, two)
        self.assertEqual(self.labelled(two, "impetus_domain_delivered_total", "domain"),
                         {"a.test": 1, "b.test": 0, "other": 8})
        self.assertEqual(self.labelled(two, "impetus_domain_transient_failures_total",
                                       "domain"), {"a.test": 0, "b.test": 0, "other": 2})
        for kind in ("delivered", "transient_failures", "permanent_failures"):
            self.assertEqual(self.total(two, "impetus_domain_%s_total" % kind),
                             outcomes(two, kind), kind)
        self.assertGreaterEqual(self.value(two, "impetus_dns_failures_total",
                                           (("kind", "temporary"),)), 1)
        self.assertGreaterEqual(self.value(two, "impetus_dns_cache_hits_total"),
                                self.value(one, "impetus_dns_cache_hits_total") + 1)
        for name in DNS_COUNTERS:
            self.assertEqual(two[name].get("type"), "counter", name)
        self.assertEqual(self.check_histogram(two, "impetus_smtp_time_to_250_seconds"), 7)

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
