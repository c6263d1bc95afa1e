"""
test_http_status.py - the live status page (GET /status) in headless Chromium

Black-box, docs/http-api.md ("Status page") as the contract, with the
real daemon and Debian's chromium (`--headless --dump-dom`: the DOM after
the page's script has polled the admin API a few times in virtual time):

- GET / redirects to /status; /status is text/html with nosniff and a
  Content-Security-Policy whose script and style hashes are those of the
  page's own inline script and style (checked here from the served text),
  so the page runs under its CSP: Chromium logs no console message at all
  and the page counts no script error or CSP violation;
- with mail queued for a domain that never answers (harness Gateway: a
  closed port), the rendered DOM shows what the API answers: received,
  delivered, failed, rejected, queue sizes, connections, the binding, the
  domains with their backlog, the blackhole domain first; the charts
  drew the points of GET /api/v1/rates (Rates_Step = 1 in every daemon
  here, so points come within seconds) and the mail received in them;
- with real mail through a sink (sink.py) that delivers some recipients,
  defers one (4xx) and refuses others (5xx, with "<b>x</b>" in the reply
  text), each chart's hooks (canvas data-points, data-sum-*, data-max-*)
  equal what the API's points add up to: reception, delivery, transient
  and permanent failures, active and delayed queues; the last bounces
  list the refused recipients with their domain, code and reply, the
  reply's markup as text (no element made of it); a domain suspended over
  POST /api/v1/domains/{d}/suspend is listed among the suspended queues;
  the screenshot of that page is kept (<build>/artifacts/status-page.png);
- domain names from mail reach the page as text: address literals with
  "<" and with "&lt;script&gt;" (what SMTP lets through: "<script>"
  itself is refused in a domain) appear verbatim in the cells, and no
  element is made of them; a UTF-8 domain (SMTPUTF8) is shown as sent;
- with API keys configured the page is served without a key and shows
  the key prompt (the API answered 401); the API still wants the key;
- when the daemon stops answering (it is stopped between two polls; a
  small proxy in this file makes "between two polls" exact), the page
  says it is disconnected and keeps the last numbers it had.

Skipped only when chromium is not installed (scripts/install-deps.sh
installs it; CI does).
"""

import base64
import hashlib
import html.parser
import http.client
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_until  # noqa: E402
from sink import Sink  # noqa: E402
from test_http_admin import READ_KEY, Client, http_conf  # noqa: E402

SENDER = "sender@example.org"
BLACKHOLE = "blackhole.example.com"
# Address literals are the only domains SMTP lets through with markup in
# them (a "<" but no ">", and entities); check_domain refuses the rest.
ODD_DOMAINS = ("[x:<img]", "[x:&lt;script&gt;alert(1)&lt;/script&gt;]")
UTF8_DOMAIN = "ünïcödé.example.com"
BUDGET_MS = 5000	# virtual time: rounds of polling at 0, 2 and 4 s
ROUND = 6		# requests in the page's first round: summary, bindings, mailq, suspended, bounces, rates
REFUSED = ("bad1@example.com", "bad2@other.example.com")
HELD = "held.example.com"
COUNTS = ("received", "delivered", "transient", "permanent")	# per step, drawn as rates
GAUGES = ("active", "delayed")					# at each step's end
CHARTS = {"chart-flow": ("received", "delivered"), "chart-fail": ("transient", "permanent"),
          "chart-queue": GAUGES}


def rcpt_reply(addr):
    """rcpt_reply - the sink's answer: bad* refused for good (markup in the text), later* for now."""
    local = addr.strip("<>").split("@")[0]
    if local.startswith("bad"):
        return "550 5.1.1 <b>x</b> no such user"
    if local.startswith("later"):
        return "451 4.2.0 mailbox busy, try later"
    return "250 2.1.5 OK"


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Dom(html.parser.HTMLParser):
    """
    Dom - what the tests read from a dumped DOM: the text and attributes of
    every element with an id, the rows (cell texts) of each table's tbody,
    and the tags that occur inside each table's tbody.
    """

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.body = {}
        self.text = {}
        self.attrs = {}
        self.rows = {}
        self.tags_in = {}
        self.stack = []		# [tag, id, text parts]
        self.table = None
        self.row = None
        self.cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.attrs[a["id"]] = a
        if tag == "table":
            self.table = a.get("id")
        if self.table and any(t[0] == "tbody" for t in self.stack):
            self.tags_in.setdefault(self.table, set()).add(tag)
        if tag == "tbody" and self.table:
            self.rows[self.table] = []
        if tag == "tr" and self.table in self.rows:
            self.row = []
            self.rows[self.table].append(self.row)
        if tag == "td" and self.row is not None:
            self.cell = []
        if tag not in self.VOID:
            self.stack.append([tag, a.get("id"), []])

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack:
            t, ident, parts = self.stack.pop()
            text = "".join(parts)
            if ident:
                self.text[ident] = text
            if self.stack:
                self.stack[-1][2].append(text)
            if t == tag:
                break
        if tag == "td" and self.cell is not None:
            self.row.append(text)
            self.cell = None
        if tag == "tr":
            self.row = None
        if tag == "table":
            self.table = None

    def handle_data(self, data):
        if self.stack:
            self.stack[-1][2].append(data)


def sums(points):
    """sums - the points' fields added up (what a chart's data-sum-* says)."""
    return {f: sum(p[f] for p in points) for f in COUNTS + GAUGES}


def counts(points):
    """counts - the per-step counts added up (stable once the mail is done)."""
    return {f: sum(p[f] for p in points) for f in COUNTS}


def maxes(points):
    """maxes - the largest value of each field (a chart's data-max-*)."""
    return {f: max([p[f] for p in points] or [0]) for f in COUNTS + GAUGES}


def fmt_int(n):
    """fmt_int - a count as the page shows it (en-US grouping)."""
    return "{:,}".format(n)


def csp_hash(text):
    return "'sha256-%s'" % base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


class Proxy:
    """
    Proxy - a loopback HTTP server that forwards GETs to the daemon's HTTP
    port, answering the first round of API requests (ROUND of them) and
    holding the next until the test has stopped the daemon:
    then it forwards that (refused) and closes the connection without an
    answer, as a daemon that is gone would. So the page sees one good
    round, then the daemon disappear, whatever the timing of its polls.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.lock = threading.Lock()
        self.api_requests = 0
        self.second_round = threading.Event()
        self.daemon_stopped = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/api/"):
                    with proxy.lock:
                        proxy.api_requests += 1
                        n = proxy.api_requests
                    if n > ROUND:
                        proxy.second_round.set()
                        proxy.daemon_stopped.wait(30)
                try:
                    c = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=10)
                    c.request("GET", self.path, headers={k: v for k, v in self.headers.items()
                                                         if k.lower() != "host"})
                    r = c.getresponse()
                    data = r.read()
                    c.close()
                except OSError:
                    self.close_connection = True
                    return	# no answer at all: fetch() fails, as with the daemon gone
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "date", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.daemon_stopped.set()
        self.server.shutdown()
        self.server.server_close()


class StatusPage(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.chromium = chromium_path()
        if self.chromium is None:
            self.skipTest("chromium not installed (scripts/install-deps.sh installs Debian's "
                          "chromium)")

    def daemon(self, keys, gateway=None):
        """daemon - one with an HTTP listener, a point of rates a second, delivery to gateway if given."""
        hport = harness.free_port()
        text = http_conf(hport, keys=keys) + "Rates_Step = 1\n"
        if gateway is not None:
            text += "Retry_Interval = 3600\nGateway = \"127.0.0.1:%d\"\n" % gateway
        d = self.new_daemon(start=False, relay_domains=("example.com", "*.example.com", "*"),
                            global_text=text, hold_delivery=gateway is None)
        d.hport = hport
        d.start()
        return d

    def chrome(self, args, url, budget=BUDGET_MS):
        """chrome - run headless chromium on url with args after `budget` ms of virtual time."""
        profile = tempfile.mkdtemp(prefix="impetus-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        r = subprocess.run([self.chromium, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-background-networking", "--no-first-run",
                            "--user-data-dir=" + profile, "--enable-logging=stderr", "--v=0",
                            "--virtual-time-budget=%d" % budget] + args + [url],
                           capture_output=True, text=True, timeout=90)
        self.assertEqual(r.returncode, 0, "chromium failed: %s" % r.stderr[-3000:])
        return r

    def render(self, url, budget=BUDGET_MS, extra=()):
        """render - (Dom, console lines) of url after `budget` ms of virtual time."""
        r = self.chrome(list(extra) + ["--dump-dom"], url, budget)
        self.assertIn("<body", r.stdout, "no DOM from chromium: %s" % r.stderr[-3000:])
        console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l]
        return Dom(r.stdout), console

    def api(self, d, path, key=None):
        st, _, doc = Client(d.hport, key).req("GET", path)
        self.assertEqual(st, 200, (path, doc))
        return doc

    def queue_mail(self, d):
        """queue_mail - 3 messages to the blackhole domain, 1 to the odd ones; wait until all are delayed."""
        for i in range(3):
            inject(d, SENDER, ["rcpt%d@%s" % (i, BLACKHOLE)], harness.make_message(marker=str(i)))
        inject(d, SENDER, ["a@" + dom for dom in ODD_DOMAINS], harness.make_message())
        inject(d, SENDER, ["u@" + UTF8_DOMAIN], harness.make_message(), mail_opts=["SMTPUTF8"])
        want = {BLACKHOLE: 3, UTF8_DOMAIN: 1}
        want.update({dom: 1 for dom in ODD_DOMAINS})

        def settled():
            # Every recipient past its first attempt (refused: the Gateway is a
            # closed port) and in the delayed queue, where it stays for minutes.
            q = self.api(d, "/api/v1/mailq")
            got = {e["domain"]: e["delayed"] for e in q["queues"] if e["delayed"]}
            return got == want and q["active"] == 0 and \
                self.api(d, "/api/v1/summary")["outbound_concurrency"] == 0
        wait_until(settled, timeout=20, what="all the mail in the delayed queue")

        def drawn():
            # The steps that counted the 5 messages have closed, and one ended with all 6 delayed.
            pts = self.api(d, "/api/v1/rates")["points"]
            return sums(pts)["received"] == 5 and maxes(pts)["delayed"] == 6 and pts
        return wait_until(drawn, timeout=20, what="the rates points to show the mail")

    def check_charts(self, dom, before, after):
        """check_charts - each canvas drew the API's points: between before and after, same sums and peaks."""
        for cid, series in CHARTS.items():
            a = dom.attrs[cid]
            self.assertEqual(a["data-step"], "1", cid)
            n = int(a["data-points"])
            self.assertGreaterEqual(n, len(before), cid)
            self.assertLessEqual(n, len(after), cid)
            for f in series:
                got = int(a["data-sum-" + f])
                if f in COUNTS:
                    # The mail is done: later points count nothing, so the sums are exact.
                    self.assertEqual(got, sums(after)[f], (cid, f))
                else:
                    # A queue size is in every point: the page's points lie between the two answers.
                    self.assertGreaterEqual(got, sums(before)[f], (cid, f))
                    self.assertLessEqual(got, sums(after)[f], (cid, f))
                self.assertEqual(int(a["data-max-" + f]), maxes(after)[f], (cid, f))

    def test_page_shows_the_api(self):
        d = self.daemon(keys=False)
        points = self.queue_mail(d)
        base = "http://127.0.0.1:%d" % d.hport

        # GET /: a redirect; GET /status: the page with its headers.
        c = http.client.HTTPConnection("127.0.0.1", d.hport, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        self.assertEqual((r.status, r.getheader("Location")), (302, "/status"))
        c.request("GET", "/status")
        r = c.getresponse()
        page = r.read().decode()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/html; charset=utf-8")
        self.assertEqual(r.getheader("X-Content-Type-Options"), "nosniff")
        csp = r.getheader("Content-Security-Policy")
        script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
        style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
        self.assertIn("script-src %s;" % csp_hash(script), csp)
        self.assertIn("style-src %s;" % csp_hash(style), csp)
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotRegex(page, r"(src|href)=\"(https?:)?//", "an external resource")

        # A screenshot too, kept as the test's artefact (<build>/artifacts/status-page.png).
        out = os.path.join(os.environ.get("IMPETUS_BUILD_DIR", d.tmp), "artifacts")
        os.makedirs(out, exist_ok=True)
        png = os.path.join(out, "status-page-queued.png")
        if os.path.exists(png):
            os.unlink(png)
        before = self.api(d, "/api/v1/summary")
        dom, console = self.render(base + "/", extra=["--window-size=1280,1100",
                                                      "--screenshot=" + png])
        after = self.api(d, "/api/v1/summary")
        mailq = self.api(d, "/api/v1/mailq")
        bindings = self.api(d, "/api/v1/bindings")

        self.assertEqual(console, [], "console messages")
        self.assertEqual(self.body_attr(dom, "data-state"), "live", dom.text.get("banner"))
        self.assertEqual(self.body_attr(dom, "data-errors"), "0")
        self.assertEqual(dom.text["conn"], "live")
        self.assertIn("hidden", dom.attrs["banner"])
        self.assertIn("hidden", dom.attrs["keyprompt"])

        # The counters, as the API answers them (stable: nothing moves meanwhile).
        for f in ("received", "delivered", "failed", "rejected", "active_queue", "delayed_queue",
                  "total_queue", "queued_messages", "inbound_concurrency",
                  "outbound_concurrency", "suspended"):
            self.assertEqual(before[f], after[f], f)
            self.assertEqual(dom.text["v-" + f], fmt_int(after[f]), f)
        self.assertEqual(after["received"], 5)
        self.assertEqual(after["delayed_queue"], 6)
        for f in ("reception_rate_10s", "delivery_rate_60s"):
            self.assertRegex(dom.text["v-" + f], r"^\d+\.\d\d$", f)
        self.assertRegex(dom.text["v-uptime"], r"^\d+s$|^\d+m \d+s$")
        # The charts: the points the API had (nothing moves but the count of points).
        rates = self.api(d, "/api/v1/rates")
        self.assertEqual(counts(rates["points"]), counts(points))
        self.check_charts(dom, points, rates["points"])
        self.assertEqual(dom.attrs["chart-flow"]["data-sum-received"], "5")
        self.assertRegex(dom.text["lg-received"], r"^\d+\.\d\d/s$")
        self.assertEqual(dom.text["lg-delayed"], "6")
        self.assertRegex(dom.text["chart-note"], r"^Each point is 1 s \(Rates_Step\)")
        # Nothing suspended, nothing bounced: one row saying so.
        self.assertEqual(dom.rows["suspended"], [["nothing is suspended"]])
        self.assertEqual(dom.rows["bounces"], [["no permanent failure since the daemon started"]])

        # The binding, and the domains with their backlog, the largest first.
        rows = dom.rows["bindings"]
        self.assertEqual(len(rows), len(bindings["bindings"]))
        b = bindings["bindings"][0]
        self.assertEqual(rows[0][:6], [b["binding"], b["group"], fmt_int(b["domains"]),
                                       fmt_int(b["active"]), fmt_int(b["delayed"]),
                                       fmt_int(b["connections"])])
        rows = dom.rows["domains"]
        shown = {r[0]: int(r[1].replace(",", "")) for r in rows}
        expect = {q["domain"]: q["active"] + q["delayed"] for q in mailq["queues"]}
        self.assertEqual(shown, expect)
        self.assertEqual(rows[0][:4], [BLACKHOLE, "3", "0", "3"])
        # Markup from mail is text: verbatim in its cell, no element made of it.
        for dom_name in ODD_DOMAINS + (UTF8_DOMAIN,):
            self.assertIn(dom_name, shown)
        self.assertEqual(dom.tags_in["domains"], {"tr", "td"})
        self.assertEqual(dom.tags_in["bindings"], {"tr", "td"})
        # The screenshot of the same run, kept as the test's artefact.
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_history(self):
        sink = Sink(rcpt_reply=rcpt_reply)
        sink.start()
        self.addCleanup(sink.stop)
        d = self.daemon(keys=False, gateway=sink.port)
        base = "http://127.0.0.1:%d" % d.hport
        # A domain suspended over the admin API (no API_Key: loopback is admin), nothing queued.
        st, _, doc = Client(d.hport).req("POST", "/api/v1/domains/%s/suspend" % HELD)
        self.assertEqual((st, doc.get("suspended")), (200, True), doc)
        inject(d, SENDER, ["ok1@example.com", REFUSED[0], "later@example.com"],
               harness.make_message(marker="history-1"))
        inject(d, SENDER, [REFUSED[1], "ok2@other.example.com"],
               harness.make_message(marker="history-2"))

        def done():
            # Every recipient tried (later@ waits an hour), the bounces to the
            # sender delivered, and the step that counted the last of it closed.
            pts = self.api(d, "/api/v1/rates")["points"]
            t = counts(pts)
            q = self.api(d, "/api/v1/mailq")
            s = self.api(d, "/api/v1/summary")
            return (t["permanent"] == 2 and t["transient"] >= 1 and t["delivered"] >= 2 and
                    t["received"] >= 2 and q["active"] == 0 and q["delayed"] == 1 and
                    s["outbound_concurrency"] == 0 and s["received"] == t["received"] and
                    maxes(pts)["delayed"] == 1 and
                    self.api(d, "/api/v1/bounces/recent")["count"] == 2) and pts
        first = wait_until(done, timeout=25,
                           what="the mail delivered, deferred and refused, in the rates")

        def later_step():
            # Two more steps with nothing new: no count is still in a step being closed.
            pts = self.api(d, "/api/v1/rates")["points"]
            return len(pts) >= len(first) + 2 and pts
        before = wait_until(later_step, timeout=10, what="two more points of rates")
        self.assertEqual(counts(before), counts(first))

        out = os.path.join(os.environ.get("IMPETUS_BUILD_DIR", d.tmp), "artifacts")
        os.makedirs(out, exist_ok=True)
        png = os.path.join(out, "status-page.png")
        if os.path.exists(png):
            os.unlink(png)
        dom, console = self.render(base + "/status", extra=["--window-size=1280,1500",
                                                            "--screenshot=" + png])
        after = self.api(d, "/api/v1/rates")["points"]
        bounces = self.api(d, "/api/v1/bounces/recent")

        self.assertEqual(console, [], "console messages")
        self.assertEqual(self.body_attr(dom, "data-state"), "live", dom.text.get("banner"))
        self.assertEqual(self.body_attr(dom, "data-errors"), "0")

        # The charts have data, and it is the API's.
        self.assertEqual(counts(after), counts(before))
        self.check_charts(dom, before, after)
        hooks = {f: int(dom.attrs[cid]["data-sum-" + f]) for cid, fs in CHARTS.items() for f in fs}
        self.assertGreaterEqual(hooks["received"], 2)
        self.assertGreaterEqual(hooks["delivered"], 2)
        self.assertGreaterEqual(hooks["transient"], 1)
        self.assertEqual(hooks["permanent"], 2)
        self.assertEqual(dom.attrs["chart-queue"]["data-max-delayed"], "1")

        # The last bounces: the refused recipients, newest first, with code and
        # reply; the reply's markup is text in its cell, no element made of it.
        rows = dom.rows["bounces"]
        self.assertEqual([r[1] for r in rows], [b["recipient"] for b in bounces["bounces"]])
        self.assertEqual(sorted(r[1] for r in rows), sorted(REFUSED))
        for r in rows:
            self.assertRegex(r[0], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
            self.assertEqual(r[2], r[1].split("@")[1])
            self.assertEqual(r[3], "550")
            self.assertEqual(r[4], "5.1.1 <b>x</b> no such user")
            self.assertEqual(r[6], "default")
        self.assertEqual(dom.tags_in["bounces"], {"tr", "td"})
        self.assertRegex(dom.text["bounces-note"], r"^\(the last 2 of 2 since the daemon started\)$")

        # The suspended domain, with nothing queued.
        self.assertEqual(dom.rows["suspended"], [["domain", HELD, "all", "0", "0"]])
        self.assertEqual(dom.text["v-suspended"], "1")
        self.assertEqual(dom.tags_in["suspended"], {"tr", "td"})
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    @staticmethod
    def body_attr(dom, name):
        return dom.body.get(name)

    def test_key_prompt(self):
        d = self.daemon(keys=True)
        base = "http://127.0.0.1:%d" % d.hport
        # The page needs no key (a wrong one is ignored); the API does.
        for key in (None, "wrong"):
            st, r, doc = Client(d.hport, key).req("GET", "/status")
            self.assertEqual(st, 200)
            self.assertIn(b"<title>impetus status</title>", doc)
        self.assertEqual(Client(d.hport).req("GET", "/")[0], 302)
        self.assertEqual(Client(d.hport).req("GET", "/api/v1/summary")[0], 401)
        self.assertEqual(Client(d.hport, READ_KEY).req("GET", "/api/v1/summary")[0], 200)
        dom, console = self.render(base + "/status", budget=3000)
        self.assertEqual(self.body_attr(dom, "data-state"), "key")
        self.assertEqual(self.body_attr(dom, "data-errors"), "0")
        self.assertNotIn("hidden", dom.attrs["keyprompt"])
        self.assertIn("needs an API key", dom.text["keymsg"])
        self.assertEqual(dom.attrs["key"].get("type"), "password")
        self.assertEqual(dom.text["v-received"], "–")	# nothing shown without a key
        # The only console lines are the API's 401s that made the page ask.
        for line in console:
            self.assertIn("401", line)

    def test_disconnected(self):
        d = self.daemon(keys=False)
        inject(d, SENDER, ["rcpt@" + BLACKHOLE], harness.make_message())
        received = self.api(d, "/api/v1/summary")["received"]
        proxy = Proxy(d.hport)
        self.addCleanup(proxy.close)
        result = {}

        def run():
            result["dom"] = self.render("http://127.0.0.1:%d/status" % proxy.port)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.assertTrue(proxy.second_round.wait(60), "the page never polled a second time")
        d.stop()
        proxy.daemon_stopped.set()
        t.join(90)
        self.assertIn("dom", result, "chromium did not finish")
        dom, console = result["dom"]
        self.assertEqual(self.body_attr(dom, "data-state"), "disconnected")
        self.assertEqual(dom.text["conn"], "disconnected")
        self.assertNotIn("hidden", dom.attrs["banner"])
        self.assertIn("impetusd is not answering since", dom.text["banner"])
        self.assertRegex(dom.text["updated"], r"^last answer \d+ s ago$")
        # The numbers of the last good round stay on the page.
        self.assertEqual(dom.text["v-received"], fmt_int(received))
        self.assertEqual(dom.rows["domains"][0][:2], [BLACKHOLE, "1"])
        self.assertEqual(self.body_attr(dom, "data-errors"), "0")


if __name__ == "__main__":
    harness.main()
