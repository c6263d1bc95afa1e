"""
test_events.py - the event log and webhooks against real peers (docs/events.md)

A real downstream receiver (sink.py) takes the mail; a Python http.server
(plain or https with a self-signed certificate made by `openssl req`)
takes the webhooks:

- every Reception and Delivery event of the messages arrives over https,
  in batches of at most Batch_Size, with the Auth_Header, the schema's
  fields and values; console commands that change state give AdminAction
  events and an audit line; the event log file is JSON lines that
  Python's json parses, with the same events;
- an endpoint that answers 500 gets the same batch again, then 200 ends it;
- kill -9 while the endpoint is down, restart, endpoint up: every event
  arrives at least once (unique ids counted);
- an endpoint that accepts and never answers: all mail is still delivered
  and the backlog shows in the console and in /metrics.
"""

import http.server
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject_many, wait_until  # noqa: E402
from sink import Sink  # noqa: E402
from test_http_admin import ADMIN_KEY, Client, http_conf  # noqa: E402
from test_http_metrics import promtool_check  # noqa: E402

SENDER = "sender@client.test"
DOMAIN = "remote.test"


class Receiver:
    """Receiver - an http.server taking webhook POSTs; fail_next / stuck steer its answers."""

    def __init__(self, port=None, certs=None):
        self.port = port or harness.free_port()
        self.certs = certs
        self.lock = threading.Lock()
        self.requests = []          # (headers dict, parsed body) of every POST, answered or not
        self.accepted = []          # parsed bodies answered 200
        self.fail_next = 0
        self.stuck = threading.Event()      # set: hold requests without answering
        self.release = threading.Event()
        self.server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        rcv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                body = json.loads(raw)
                with rcv.lock:
                    rcv.requests.append((dict(self.headers), body))
                    fail = rcv.fail_next > 0
                    if fail:
                        rcv.fail_next -= 1
                if rcv.stuck.is_set():
                    rcv.release.wait(60)
                    self.close_connection = True
                    return
                code = 500 if fail else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not fail:
                    with rcv.lock:
                        rcv.accepted.append(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.certs:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.certs)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.release.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self):
        with self.lock:
            return [e for b in self.accepted for e in b]


def make_cert(directory):
    """make_cert - a self-signed certificate for 127.0.0.1 with `openssl req`: (cert, key)."""
    cert, key = os.path.join(directory, "hook.crt"), os.path.join(directory, "hook.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    return cert, key


def config(sink, webhooks, extra=""):
    return "\n".join([
        'Control_Listener {\n  Listen "./control" { File_Mode = 0600 }\n}',
        'Event_Log = "events.jsonl"',
        "Retry_Interval = 1",
        'Domain "%s" { Routes = ( "smtp://127.0.0.1:%d" ) }' % (DOMAIN, sink.port),
        webhooks, extra])


def webhook(name, target, events=None, extra=""):
    ev = ' Events = ( %s )' % " ".join('"%s"' % e for e in events) if events else ""
    return 'Webhook "%s" {\n  Target = "%s"%s\n  %s\n}' % (name, target, ev, extra)


def send(d, nmsg, nrcpt, tag):
    msgs = []
    for i in range(nmsg):
        rcpts = ["%s%d-%d@%s" % (tag, i, k, DOMAIN) for k in range(nrcpt)]
        msgs.append((SENDER, rcpts, harness.make_message(marker="%s-%d" % (tag, i))))
    return inject_many(d, msgs)


def tool(d, *args):
    p = subprocess.run([harness.impetus_path(), "-s", os.path.join(d.tmp, "control")] + list(args),
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def backlog(d, name):
    rc, out, err = tool(d, "--json", "webhooks")
    if rc != 0:
        raise AssertionError("webhooks failed: %s" % err)
    for w in json.loads(out)["webhooks"]:
        if w["name"] == name:
            return w
    raise AssertionError("no webhook %s in %s" % (name, out))


def key(e):
    return (e["type"], e.get("id"), e.get("recipient"))


class Events(harness.DaemonTestCase):

    def daemon(self, sink, hooks, extra=""):
        return self.new_daemon(relay_hosts=("127.0.0.0/8",), relay_domains=(DOMAIN,),
                               hold_delivery=False, global_text=config(sink, hooks, extra))

    def test_rejection_event(self):
        """A refused recipient is a Rejection event with the client and the reply."""
        d = self.new_daemon(relay_domains=("example.com",), global_text='Event_Log = "ev.jsonl"\n')
        with harness.RawClient(d.port) as c:
            c.ehlo()
            self.assertEqual(c.cmd("MAIL FROM:<s@example.org>").code, 250)
            rep = c.cmd("RCPT TO:<someone@elsewhere.test>")
            self.assertGreaterEqual(rep.code, 500)
        path = os.path.join(d.log_dir, "ev.jsonl")

        def rejections():
            if not os.path.exists(path):
                return []
            with open(path) as f:
                return [e for e in map(json.loads, filter(str.strip, f)) if e["type"] == "Rejection"]
        wait_until(lambda: rejections(), timeout=15, what="a Rejection event")
        e = rejections()[0]
        self.assertEqual(e["peer_address"], "127.0.0.1")
        self.assertEqual(e["response"]["code"], rep.code)
        self.assertEqual(e["phase"], "rcptto")
        self.assertIn("Relaying denied", e["response"]["content"])

    def test_https_webhook_schema_admin_and_event_log(self):
        tmp = self.enterContext_tmp()
        cert, keyf = make_cert(tmp)
        with Sink() as sink, Receiver(certs=(cert, keyf)) as rcv:
            d = self.daemon(sink, webhook(
                "hook", "https://127.0.0.1:%d/in?src=impetus" % rcv.port,
                ("Reception", "Delivery", "AdminAction"),
                'Batch_Size = 7\n  Batch_Timeout = 1\n  TLS_CA_File = "%s"\n'
                '  Auth_Header = "Bearer s3cr3t-token"' % cert))
            ids = send(d, 6, 2, "a")
            wait_until(lambda: len(sink.recipients()) == 12, what="12 deliveries")
            for args in (("suspend", "domain", DOMAIN), ("resume", "domain", DOMAIN)):
                rc, out, err = tool(d, *args)
                self.assertEqual(rc, 0, err)
            wait_until(lambda: len(rcv.events()) >= 26, timeout=20, what="26 webhook events")
            time.sleep(0.5)
            evs = rcv.events()
            self.assertEqual(len(evs), 26, [key(e) for e in evs])
            self.assertEqual(len({e["event_id"] for e in evs}), 26)
            with rcv.lock:
                reqs = list(rcv.requests)
            for h, body in reqs:
                self.assertEqual(h.get("Authorization"), "Bearer s3cr3t-token")
                self.assertEqual(h.get("Content-Type"), "application/json")
                self.assertIsInstance(body, list)
                self.assertTrue(1 <= len(body) <= 7, len(body))
            byid = {}
            for e in evs:
                byid.setdefault(e["type"], []).append(e)
            self.assertEqual(len(byid["Reception"]), 12)
            self.assertEqual(len(byid["Delivery"]), 12)
            self.assertEqual(len(byid["AdminAction"]), 2)
            rcpts = {"a%d-%d@%s" % (i, k, DOMAIN) for i in range(6) for k in range(2)}
            for t in ("Reception", "Delivery"):
                self.assertEqual({e["recipient"] for e in byid[t]}, rcpts)
                self.assertEqual({e["id"] for e in byid[t]}, set(ids))
            now = time.time()
            for e in byid["Reception"] + byid["Delivery"]:
                self.assertEqual(e["sender"], SENDER)
                self.assertEqual(e["queue"], DOMAIN)
                self.assertGreater(e["size"], 100)
                self.assertTrue(abs(e["timestamp"] - now) < 60, e)
                self.assertTrue(abs(e["created"] - now) < 60, e)
                self.assertEqual(e["metadata"], {})
                self.assertEqual(e["tags"], [])
                self.assertIsNone(e["transmission_id"])
                self.assertIsNone(e["bounce_classification"])
                self.assertRegex(e["event_id"], r"^[0-9A-F]{16}$")
            for e in byid["Reception"]:
                self.assertEqual(e["protocol"], "esmtp")
                self.assertIsNone(e["response"])
                self.assertEqual(e["num_attempts"], 0)
                self.assertEqual(e["peer_address"], "127.0.0.1")
            for e in byid["Delivery"]:
                self.assertEqual(e["response"]["code"], 250, e)
                self.assertRegex(e["response"]["enhanced_code"], r"^2\.\d\.\d$")
                self.assertIn("queued", e["response"]["content"])
                self.assertEqual(e["peer_address"], "127.0.0.1")
                self.assertEqual(e["num_attempts"], 1)
                self.assertGreaterEqual(e["timestamp"], e["created"])
            adm = sorted(byid["AdminAction"], key=lambda e: e["event_id"])
            self.assertEqual([(a["command"], a["arguments"], a["transport"], a["api_key"],
                               a["result"]) for a in adm],
                             [("suspend", ["domain", DOMAIN], "console", None, "ok"),
                              ("resume", ["domain", DOMAIN], "console", None, "ok")])
            # A read-only command is no admin action.
            tool(d, "summary")
            self.assertEqual(backlog(d, "hook")["backlog_events"], 0)
            d.stop()
            # The event log: JSON lines, every event above among them, and the
            # TransientFailure-free run has no other types.
            with open(os.path.join(d.log_dir, "events.jsonl"), encoding="utf-8") as f:
                lines = [json.loads(line) for line in f]
            self.assertEqual({e["event_id"] for e in evs} - {e["event_id"] for e in lines}, set())
            self.assertEqual(sorted({e["type"] for e in lines}),
                             ["AdminAction", "Delivery", "Reception"])
            panic = "\n".join(d.paniclog())
            self.assertIn('admin transport=console key=- command="suspend domain %s" result=ok'
                          % DOMAIN, panic)
            self.assertNotIn("s3cr3t", panic)
            with open(os.path.join(d.log_dir, "events.jsonl"), encoding="utf-8") as f:
                self.assertNotIn("s3cr3t", f.read())

    def enterContext_tmp(self):
        import tempfile
        tmp = tempfile.mkdtemp(prefix="impetus-hook-")
        self.addCleanup(shutil.rmtree, tmp, True)
        return tmp

    def test_500_then_200_resends_the_batch(self):
        def rcpt_reply(addr):
            if addr.startswith("perm"):
                return "550 5.1.1 no such user"
            if addr.startswith("temp"):
                return "450 4.2.1 mailbox busy"
            return "250 2.1.5 OK"

        with Sink(rcpt_reply=rcpt_reply) as sink, Receiver() as rcv:
            rcv.fail_next = 1
            d = self.daemon(sink, webhook("retry", "http://127.0.0.1:%d/" % rcv.port,
                                          ("Delivery", "Bounce", "TransientFailure", "Expiration"),
                                          "Batch_Timeout = 0"),
                            "Delayed_Queue_Scan_Interval = 1\n"
                            'Domain "expire.test" { Routes = ( "smtp://127.0.0.1:%d" ) '
                            "Message_Expiration = 2 }" % sink.port)
            send(d, 1, 3, "r")
            wait_until(lambda: len(rcv.accepted) >= 1, timeout=15, what="the batch accepted")
            with rcv.lock:
                reqs = [b for h, b in rcv.requests]
            self.assertGreaterEqual(len(reqs), 2)
            first_ids = [e["event_id"] for e in reqs[0]]
            self.assertEqual([e["event_id"] for e in reqs[1]][:len(first_ids)], first_ids,
                             "the failed batch is sent again first")
            wait_until(lambda: len({e["event_id"] for e in rcv.events()
                                    if e["type"] == "Delivery"}) == 3, timeout=15,
                       what="3 Delivery events")
            # A permanent failure is a Bounce with its class.
            bid = inject_many(d, [("", ["perm@%s" % DOMAIN], harness.make_message())])[0]
            wait_until(lambda: any(e["type"] == "Bounce" for e in rcv.events()), timeout=15,
                       what="the Bounce event")
            b = [e for e in rcv.events() if e["type"] == "Bounce"][0]
            self.assertEqual((b["id"], b["recipient"], b["sender"]), (bid, "perm@" + DOMAIN, None))
            self.assertEqual(b["response"]["code"], 550)
            self.assertEqual(b["response"]["enhanced_code"], "5.1.1")
            self.assertIn("no such user", b["response"]["content"])
            self.assertIsNotNone(b["bounce_classification"])
            self.assertGreater(b["bounce_class"], 0)
            # 450 until Message_Expiration: TransientFailure events, then one Expiration.
            xid = inject_many(d, [("", ["temp@expire.test"], harness.make_message())])[0]
            wait_until(lambda: any(e["type"] == "Expiration" for e in rcv.events()), timeout=15,
                       what="the Expiration event")
            evs = [e for e in rcv.events() if e["id"] == xid]
            kinds = [e["type"] for e in evs]
            self.assertIn("TransientFailure", kinds)
            self.assertEqual(kinds.count("Expiration"), 1, kinds)
            self.assertNotIn("Bounce", kinds)
            t = [e for e in evs if e["type"] == "TransientFailure"][0]
            self.assertEqual((t["response"]["code"], t["response"]["enhanced_code"]),
                             (450, "4.2.1"))
            x = [e for e in evs if e["type"] == "Expiration"][0]
            self.assertIn("expired", x["response"]["content"])
            self.assertEqual(x["response"]["enhanced_code"][0], "5")
            self.assertIn("webhook=retry post failed: status=500", "\n".join(d.paniclog()))
            self.assertIn("webhook=retry recovered after failures=1", "\n".join(d.paniclog()))

    def test_kill9_while_endpoint_down_loses_nothing(self):
        port = harness.free_port()
        with Sink() as sink:
            d = self.daemon(sink, webhook(
                "dur", "http://127.0.0.1:%d/" % port, ("Reception", "Delivery"),
                "Batch_Size = 4\n  Webhook_Retry_Interval = 1\n  Webhook_Max_Retry_Interval = 2"))
            ids = send(d, 5, 2, "k")
            wait_until(lambda: len(sink.recipients()) == 10, what="10 deliveries")
            wait_until(lambda: backlog(d, "dur")["backlog_events"] == 20, timeout=10,
                       what="20 events in the backlog")
            # Between two refused connections (a POST may be starting right now).
            self.assertIn(backlog(d, "dur")["state"], ("backoff", "posting"))
            # The back-off doubles per failure, up to Webhook_Max_Retry_Interval.
            wait_until(lambda: "failures=3 " in "\n".join(d.paniclog()), timeout=10,
                       what="three failed posts")
            panic = "\n".join(d.paniclog())
            for n, ms in ((1, 1000), (2, 2000), (3, 2000)):
                self.assertIn("failures=%d retry_in=%dms" % (n, ms), panic)
            d.kill9()
            d.start()
            with Receiver(port=port) as rcv:
                wait_until(lambda: len({key(e) for e in rcv.events()}) >= 20, timeout=20,
                           what="every event after the restart")
                got = {key(e) for e in rcv.events()}
                first = {}
                for pos, e in enumerate(rcv.events()):
                    first.setdefault(key(e), pos)
            want = {(t, i, "k%d-%d@%s" % (n, k, DOMAIN))
                    for t in ("Reception", "Delivery") for n, i in enumerate(ids)
                    for k in range(2)}
            self.assertEqual(got, want)
            # In order per message: each recipient's Reception before its Delivery.
            for n, i in enumerate(ids):
                for k in range(2):
                    rcpt = "k%d-%d@%s" % (n, k, DOMAIN)
                    self.assertLess(first[("Reception", i, rcpt)], first[("Delivery", i, rcpt)],
                                    rcpt)
            wait_until(lambda: backlog(d, "dur")["backlog_events"] == 0, timeout=10,
                       what="an empty backlog")

    def test_reload_adds_changes_and_removes_webhooks(self):
        with Sink() as sink, Receiver() as one, Receiver() as two:
            d = self.daemon(sink, webhook("one", "http://127.0.0.1:%d/" % one.port,
                                          ("Delivery",), "Batch_Timeout = 0"))
            send(d, 1, 1, "x")
            wait_until(lambda: len(one.events()) == 1, timeout=10, what="one's first event")
            # one moves to two's port and gets Reception too; three is new (two's port too).
            d.global_text = config(sink, "\n".join([
                webhook("one", "http://127.0.0.1:%d/one" % two.port, ("Delivery", "Reception"),
                        "Batch_Timeout = 0"),
                webhook("three", "http://127.0.0.1:%d/three" % two.port, ("Delivery",),
                        "Batch_Timeout = 0")]))
            d.write_config()
            rc, out, err = tool(d, "config", "reload")
            self.assertEqual(rc, 0, err)
            send(d, 1, 1, "y")
            wait_until(lambda: len(two.events()) == 3, timeout=10,
                       what="R and D for one, D for three at the new target")
            self.assertEqual(sorted(e["type"] for e in two.events()),
                             ["Delivery", "Delivery", "Reception"])
            self.assertEqual(len(one.events()), 1)
            names = sorted(w["name"] for w in json.loads(tool(d, "--json", "webhooks")[1])
                           ["webhooks"])
            self.assertEqual(names, ["one", "three"])
            # Removed: stops, its backlog directory stays.
            d.global_text = config(sink, "")
            d.write_config()
            self.assertEqual(tool(d, "config", "reload")[0], 0)
            self.assertEqual(json.loads(tool(d, "--json", "webhooks")[1])["webhooks"], [])
            self.assertTrue(os.path.isdir(os.path.join(d.spool_dir, "webhooks", "three")))
            self.assertIn("webhook=three removed", "\n".join(d.paniclog()))

    def test_stuck_endpoint_never_slows_mail(self):
        hport = harness.free_port()
        with Sink() as sink, Receiver() as rcv:
            rcv.stuck.set()
            http_listener = http_conf(hport)
            d = self.daemon(sink, webhook("stuck", "http://127.0.0.1:%d/" % rcv.port,
                                          ("Delivery",), "Batch_Size = 5\n  Batch_Timeout = 0"),
                            http_listener)
            t0 = time.monotonic()
            send(d, 20, 2, "s")
            wait_until(lambda: len(sink.recipients()) == 40, timeout=15, what="40 deliveries")
            self.assertLess(time.monotonic() - t0, 15)
            wait_until(lambda: backlog(d, "stuck")["backlog_events"] == 40, timeout=10,
                       what="the backlog of 40")
            w = backlog(d, "stuck")
            self.assertEqual(w["state"], "posting")
            st, _, text = Client(hport, ADMIN_KEY).req("GET", "/metrics")
            self.assertEqual(st, 200)
            text = text.decode() if isinstance(text, bytes) else text
            m = re.search(r'^impetus_webhook_backlog_events\{webhook="stuck"\} (\d+)$', text,
                          re.M)
            self.assertIsNotNone(m, text)
            self.assertEqual(int(m.group(1)), 40)
            self.assertIn("# TYPE impetus_webhook_backlog_events gauge", text)
            promtool_check(self, text)
            self.assertEqual(len(rcv.requests), 1, "one POST in flight at a time")
            # An admin route: the AdminAction names the transport and the key, never the key.
            st, _, doc = Client(hport, ADMIN_KEY).req("POST", "/api/v1/domains/%s/suspend" % DOMAIN)
            self.assertEqual(st, 200, doc)
            panic = "\n".join(d.paniclog())
            self.assertIn('admin transport=http key=ops command="suspend domain %s" result=ok'
                          % DOMAIN, panic)
            self.assertNotIn(ADMIN_KEY, panic)
            wait_until(lambda: any('"AdminAction"' in line for line in d.log("events.jsonl")),
                       timeout=10, what="the AdminAction in the event log")
            adm = [json.loads(line) for line in d.log("events.jsonl") if '"AdminAction"' in line]
            self.assertEqual([(a["command"], a["arguments"], a["transport"], a["api_key"])
                              for a in adm], [("suspend", ["domain", DOMAIN], "http", "ops")])
            # Stop with the POST still in flight: a clean shutdown (sanitizers check it).
            d.stop()


if __name__ == "__main__":
    harness.main()
