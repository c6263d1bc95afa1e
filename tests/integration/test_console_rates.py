"""
test_console_rates.py - the history the status page reads: `rates`, `bounces recent`, `suspended`

Black-box, docs/console.md ("History") and docs/http-api.md as the
contract. One daemon with Rates_Step = 1 (one point a second), a
Gateway to a real SMTP sink (sink.py) that answers 250 for most
recipients, 550 5.1.1 for bad*@ and 451 4.2.0 for later*@:

- over the console (`impetus rates --json`) the points, summed, count
  the messages received, the recipient delivered, the deferral (T), the
  permanent failures (P) and their bouncelog lines (B), and an SMTP
  rejection; the deferred recipient shows in a point's `delayed`;
  points are one step apart, oldest first; `rates 2` gives two;
- `bounces recent` lists the failed recipients newest first with the
  sink's code and text, the message id, sender, domain and binding; a
  recipient that was only deferred is not there;
- the same answers over HTTP (GET /api/v1/rates, /api/v1/bounces/recent)
  with a read key; no key is 401;
- `suspended` (and GET /api/v1/suspended) lists a suspended domain with
  nothing queued and a suspended binding, and forgets them on resume;
- bad arguments are one error line.
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_until  # noqa: E402
from sink import Sink  # noqa: E402
from test_http_admin import READ_KEY, Client, http_conf  # noqa: E402

SENDER = "sender@example.org"


def rcpt_reply(addr):
    """rcpt_reply - the sink's answer: bad* refused for good, later* for now, the rest taken."""
    local = addr.strip("<>").split("@")[0]
    if local.startswith("bad"):
        return "550 5.1.1 no such user here"
    if local.startswith("later"):
        return "451 4.2.0 mailbox busy, try later"
    return "250 2.1.5 OK"


class ConsoleRates(harness.DaemonTestCase):

    def tool(self, *args):
        """tool - `impetus -s SOCK args...`: (exit code, stdout, stderr)."""
        p = subprocess.run([harness.impetus_path(), "-s", self.d.control] + list(args),
                           capture_output=True, timeout=30)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def js(self, *args):
        rc, out, err = self.tool(*args, "--json")
        self.assertEqual(rc, 0, "impetus %s: %s" % (" ".join(args), err))
        return json.loads(out)

    def get(self, path, key=READ_KEY):
        c = Client(self.hport, key)
        try:
            return c.req("GET", path)
        finally:
            c.close()

    @staticmethod
    def sums(points):
        keys = ("received", "delivered", "transient", "permanent", "bounced", "rejected")
        return {k: sum(p[k] for p in points) for k in keys}

    def setUp(self):
        super().setUp()
        self.sink = Sink(rcpt_reply=rcpt_reply)
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.hport = harness.free_port()
        self.d = self.new_daemon(
            relay_domains=("example.com",), hold_delivery=False,
            global_text=http_conf(self.hport) + "Rates_Step = 1\n" +
            'Control_Listener {\n  Listen "./control" { File_Mode = 0600 }\n}\n' +
            "Retry_Interval = 3600\n" +
            'Binding "b1" { }\n' +
            'Gateway = "127.0.0.1:%d"\n' % self.sink.port)
        self.d.control = os.path.join(self.d.tmp, "control")

    def test_counts_and_bounces(self):
        start = time.time()
        # Right after start: the shape, and nothing counted yet.
        doc = self.js("rates")
        self.assertEqual(doc["step"], 1)
        self.assertEqual(doc["capacity"], 360)
        self.assertEqual(self.sums(doc["points"])["received"], 0)
        self.assertEqual(self.js("bounces", "recent")["bounces"], [])

        mid = inject(self.d, SENDER, ["ok@example.com", "bad1@example.com", "later@example.com"],
                     harness.make_message(marker="rates-1"))
        mid2 = inject(self.d, SENDER, ["bad2@example.com"], harness.make_message(marker="rates-2"))
        # A rejection: a recipient the daemon does not relay for.
        s = self.d.smtp()
        s.ehlo("client.test")
        s.mail(SENDER)
        code, _ = s.rcpt("nobody@not-relayed.test")
        self.assertGreaterEqual(code, 500)
        s.quit()

        # Two refused recipients -> two P, two B; the busy one -> a T and a delayed entry.
        def counted():
            pts = self.js("rates")["points"]
            t = self.sums(pts)
            return (t["permanent"] >= 2 and t["transient"] >= 1 and t["delivered"] >= 1
                    and t["rejected"] >= 1 and t["received"] >= 2) and pts
        pts = wait_until(counted, timeout=15, what="the rates points to count the mail")
        t = self.sums(pts)
        # Two messages injected, plus the bounces the daemon wrote for the refused recipients.
        self.assertGreaterEqual(t["received"], 2)
        self.assertLessEqual(t["received"], 4)
        # ok@ and the bounce(s) to the sender went to the sink.
        self.assertGreaterEqual(t["delivered"], 1)
        self.assertEqual(t["permanent"], 2)
        self.assertEqual(t["bounced"], t["permanent"])
        self.assertEqual(t["rejected"], 1)
        self.assertGreaterEqual(t["transient"], 1)
        self.assertTrue(any(p["delayed"] >= 1 for p in pts), pts)
        ts = [p["t"] for p in pts]
        self.assertEqual(ts, sorted(ts))
        self.assertTrue(all(start - 2 <= x <= time.time() + 1 for x in ts), ts)
        # Steps are Rates_Step apart (a loaded machine may slip a second).
        self.assertTrue(all(1 <= b - a <= 3 for a, b in zip(ts, ts[1:])), ts)
        # A step's counts never show twice: the totals stay put once the mail is done.
        time.sleep(1.5)
        t2 = self.sums(self.js("rates")["points"])
        self.assertEqual(t2["permanent"], 2)
        self.assertEqual(t2["rejected"], 1)
        two = self.js("rates", "2")["points"]
        self.assertEqual(len(two), 2)
        self.assertLess(two[0]["t"], two[1]["t"])

        # The recent bounces: newest first, with the sink's answer.
        b = self.js("bounces", "recent")
        self.assertEqual(b["count"], 2)
        self.assertEqual(b["total"], 2)
        by = {x["recipient"]: x for x in b["bounces"]}
        self.assertEqual(set(by), {"bad1@example.com", "bad2@example.com"})
        self.assertGreaterEqual(b["bounces"][0]["time"], b["bounces"][1]["time"])
        for x in by.values():
            self.assertEqual(x["code"], 550)
            self.assertIn("5.1.1 no such user here", x["reply"])
            self.assertEqual(x["sender"], SENDER)
            self.assertEqual(x["domain"], "example.com")
            self.assertEqual(x["type"], "P")
            self.assertEqual(x["binding"], "default")
            self.assertEqual(x["peer"], "127.0.0.1")
            self.assertGreater(x["bounce_class"], 0)
        self.assertEqual(by["bad1@example.com"]["message_id"].upper(), mid.upper())
        self.assertEqual(by["bad2@example.com"]["message_id"].upper(), mid2.upper())
        self.assertEqual(len(self.js("bounces", "recent", "1")["bounces"]), 1)
        rc, out, _ = self.tool("bounces", "recent")
        self.assertEqual(rc, 0)
        self.assertIn("bad2@example.com 550 5.1.1 no such user here", out)
        self.assertNotIn("later@example.com", out)
        rc, out, _ = self.tool("rates", "2")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^Counts per 1 s step, last 2 of 360")
        self.assertEqual(len(out.strip().splitlines()), 4)

        # Over HTTP: the same answers.
        st, r, doc = self.get("/api/v1/rates")
        self.assertEqual(st, 200, doc)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertEqual(doc["step"], 1)
        self.assertEqual(self.sums(doc["points"])["permanent"], 2)
        self.assertEqual(self.sums(doc["points"])["rejected"], 1)
        st, _, doc = self.get("/api/v1/bounces/recent")
        self.assertEqual(st, 200, doc)
        self.assertEqual({x["recipient"] for x in doc["bounces"]},
                         {"bad1@example.com", "bad2@example.com"})
        self.assertTrue(all(x["code"] == 550 for x in doc["bounces"]))
        self.assertEqual(self.get("/api/v1/rates", key=None)[0], 401)

        # Bad input: one error line, exit 1.
        for args in (("rates", "0"), ("rates", "361"), ("rates", "x"), ("bounces",),
                     ("bounces", "recent", "101"), ("suspended", "x")):
            rc, out, err = self.tool(*args)
            self.assertEqual((rc, out), (1, ""), args)
            self.assertIn("usage:", err, args)

    def test_suspended(self):
        doc = self.js("suspended")
        self.assertEqual(doc, {"domains": [], "bindings": [], "configured": [], "count": 0})
        self.js("suspend", "domain", "held.example.com")
        self.js("suspend", "binding", "b1")
        # Mail held for a suspended domain shows with its size.
        self.js("suspend", "domain", "example.com")
        inject(self.d, SENDER, ["one@example.com"], harness.make_message(marker="held"))
        wait_until(lambda: self.js("suspended")["domains"][0]["active"] +
                   self.js("suspended")["domains"][0]["delayed"] >= 1, timeout=10,
                   what="the held mail to show")
        doc = self.js("suspended")
        self.assertEqual([x["domain"] for x in doc["domains"]],
                         ["example.com", "held.example.com"])
        self.assertEqual([x["binding"] for x in doc["bindings"]], ["b1"])
        self.assertEqual(doc["count"], 3)
        st, _, hdoc = self.get("/api/v1/suspended")
        self.assertEqual(st, 200, hdoc)
        self.assertEqual(hdoc["count"], 3)
        rc, out, _ = self.tool("suspended")
        self.assertIn("domain held.example.com: 0 active, 0 delayed", out)
        self.assertIn("binding b1:", out)
        self.js("resume", "domain", "held.example.com")
        self.js("resume", "domain", "example.com")
        self.js("resume", "binding", "b1")
        self.assertEqual(self.js("suspended")["count"], 0)
        self.sink.wait_for(1, timeout=10)


if __name__ == "__main__":
    unittest.main()
