"""
test_delivery_dns.py - delivery by MX lookup against a real DNS server (dnsmasq)

dnsfixture.DnsServer serves the zone "test" on a free loopback port:

  dom.test     MX 10 mx1.dom.test            -> 127.0.0.1 (the sink)
  fb.test      MX 10 mx-a.fb.test            -> 127.0.0.3 (nothing listens)
               MX 20 mx-b.fb.test            -> 127.0.0.1 (the sink)
  nullmx.test  MX 0 "."  (RFC 7505 null MX)
  nx.test      no records: NXDOMAIN
  sf.test      SERVFAIL

The daemon must be told which DNS server to ask and which port MX hosts
listen on (the sink cannot use port 25). Both options are looked up by
name in src/config/conf_options.def, so the tests follow whatever they are
called; while either does not exist every test fails with a message
saying which option is needed (never a silent skip).

Bounces go to bounces.test, routed to a second sink by a fixed route.
"""

import time

from harness import DaemonTestCase, FeatureMissing, main, make_message
from deliverykit import (conf_option, inject, option_line, parse_bounce, rcpt_of, records,
                         wait_records, wait_until)
from dnsfixture import DnsServer
from sink import Sink

HOSTNAME = "mx.test.example"

DNS_OPTION_RE = r"^(DNS_?Servers?|Name_?Servers?|Resolvers?|DNS_Resolvers?)$"
PORT_OPTION_RE = r"^(Remote_SMTP_Port|SMTP_Port|Outbound_SMTP_Port|Remote_Port|MX_Port|" \
                 r"Delivery_Port|Outbound_Port|SMTP_Remote_Port)$"


def uniq(tag):
    return "%s%d" % (tag, time.time_ns() % 10**12)


class DeliveryDnsTest(DaemonTestCase):

    setup_error = None

    @classmethod
    def setUpClass(cls):
        cls.sink = Sink()
        cls.bounce_sink = Sink()
        cls.dns = None
        try:
            dns_opt = conf_option(DNS_OPTION_RE, "needs an option to set the DNS server(s) the "
                                  "resolver asks (e.g. DNS_Servers) in conf_options.def")
            port_opt = conf_option(PORT_OPTION_RE, "needs an option to set the outbound SMTP "
                                   "port used for MX hosts (e.g. Remote_SMTP_Port) in "
                                   "conf_options.def: the test sink cannot listen on port 25")
        except FeatureMissing as e:
            cls.setup_error = e
            return
        cls.sink.start()
        cls.bounce_sink.start()
        cls.dns = DnsServer(
            mx=[("dom.test", "mx1.dom.test", 10),
                ("fb.test", "mx-a.fb.test", 10), ("fb.test", "mx-b.fb.test", 20),
                ("nullmx.test", ".", 0)],
            hosts={"mx1.dom.test": ["127.0.0.1"], "mx-a.fb.test": ["127.0.0.3"],
                   "mx-b.fb.test": ["127.0.0.1"]},
            servfail=["sf.test"])
        cls.dns.start()
        cls.shared = dict(
            hostname=HOSTNAME, relay_domains=(), relay_hosts=("127.0.0.0/8",),
            hold_delivery=False,
            global_text="\n".join([
                option_line(dns_opt[0], dns_opt[1], cls.dns.servers),
                option_line(port_opt[0], port_opt[1], cls.sink.port),
                "Retry_Interval = 1",
                "Max_Retry_Interval = 2",
                "Delayed_Queue_Scan_Interval = 1",
                'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                % cls.bounce_sink.port,
            ]))
        try:
            super().setUpClass()
        except BaseException:
            cls.cleanup_peers()
            raise

    @classmethod
    def cleanup_peers(cls):
        cls.sink.stop()
        cls.bounce_sink.stop()
        if cls.dns is not None:
            cls.dns.close()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.cleanup_peers()

    def setUp(self):
        if self.setup_error is not None:
            raise self.setup_error
        super().setUp()

    def bounces_to(self, addr):
        return [t for t in self.bounce_sink.messages() if addr in t.rcpts]

    def test_mx_resolution(self):
        """MX mx1.dom.test -> 127.0.0.1: delivered to the sink, D line names 127.0.0.1"""
        m = uniq("mx")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["r-%s@dom.test" % m],
                     make_message(marker=m))
        wait_until(lambda: self.sink.with_marker(m), 25, "the message at the MX sink")
        d = wait_records(self.d, "D", mid)[0]
        self.assertEqual(d["domain"], "dom.test", d["raw"])
        self.assertTrue(d["remote"].startswith("127.0.0.1"), d["raw"])
        self.assertIn(("MX", "dom.test"), self.dns.queries("dom.test"),
                      "the daemon never asked the DNS server for dom.test's MX")

    def test_mx_fallback_to_next_preference(self):
        """MX 10 on a dead address, MX 20 on the sink -> delivered via the pref 20 host"""
        m = uniq("fb")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["r-%s@fb.test" % m],
                     make_message(marker=m))
        wait_until(lambda: self.sink.with_marker(m), 25, "the message via mx-b.fb.test")
        d = wait_records(self.d, "D", mid)[0]
        self.assertTrue(d["remote"].startswith("127.0.0.1"), "delivered via %s" % d["raw"])
        self.assertEqual(records(self.d, "P", mid), [])
        self.assertIn(("A", "mx-a.fb.test"), self.dns.queries("mx-a.fb.test"),
                      "the preference 10 host was never even looked up")

    def test_null_mx_fails_at_once(self):
        """null MX -> P line without retries, B class 21, a bounce"""
        m = uniq("null")
        sender = "s-%s@bounces.test" % m
        rcpt = "r-%s@nullmx.test" % m
        t0 = time.monotonic()
        mid = inject(self.d, sender, [rcpt], make_message(marker=m))
        p = wait_records(self.d, "P", mid, timeout=15, what="P line for a null MX")[0]
        self.assertLess(time.monotonic() - t0, 15)
        self.assertEqual(records(self.d, "T", mid), [], "a null MX is not worth a retry")
        b = wait_records(self.d, "B", mid)[0]
        self.assertEqual(b["cls"], "21", "a null MX is a DNS Failure (21): %s" % b["raw"])
        wait_until(lambda: self.bounces_to(sender), 20, "the bounce for the null MX")
        msg, pm, pr, third = parse_bounce(self.bounces_to(sender)[0].body)
        r = rcpt_of(pr, rcpt)
        self.assertEqual(r.get("action", "").lower(), "failed", r)
        self.assertTrue(r.get("status", "").startswith("5."), "Status for a null MX: %r" % r)

    def test_nxdomain_fails_permanently(self):
        """NXDOMAIN -> P line, no retry"""
        m = uniq("nx")
        mid = inject(self.d, "s-%s@bounces.test" % m, ["r-%s@nx.test" % m],
                     make_message(marker=m))
        p = wait_records(self.d, "P", mid, timeout=15, what="P line for NXDOMAIN")[0]
        self.assertEqual(p["domain"], "nx.test", p["raw"])
        self.assertEqual(records(self.d, "T", mid), [], "NXDOMAIN is not worth a retry")

    def test_servfail_is_transient(self):
        """SERVFAIL -> T line (retry), never P"""
        m = uniq("sf")
        sender = "s-%s@bounces.test" % m
        mid = inject(self.d, sender, ["r-%s@sf.test" % m], make_message(marker=m))
        t = wait_records(self.d, "T", mid, timeout=25, what="T line for SERVFAIL")[0]
        self.assertEqual(t["domain"], "sf.test", t["raw"])
        time.sleep(3.0)
        self.assertEqual(records(self.d, "P", mid), [], "SERVFAIL must not fail permanently")
        self.assertEqual(self.bounces_to(sender), [], "no bounce for a transient failure")
        entry = self.d.spool_msg(mid)
        self.assertEqual([r.get("state") for r in entry.get("recipients", [])], ["queued"],
                         entry)


if __name__ == "__main__":
    main()
