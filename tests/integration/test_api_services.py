"""
test_api_services.py - the module services against the real daemon

The module is tests/modules/test_services.c, built by CMake against
include/impetus/ only. It injects messages from a periodic timer
(imp_inject) and runs queue commands it reads from a control file on the
IO pool (imp_queue_requeue / fail / rebind), writing what the services
answered to its journal. The tests look at what a real receiver (sink.py)
gets and at the mainlog/bouncelog lines.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import records, wait_records, wait_until  # noqa: E402
from harness import make_message  # noqa: E402
from sink import Sink  # noqa: E402


def journal_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_journal(path, pattern, timeout=20.0):
    rx = re.compile(pattern)
    return wait_until(lambda: [l for l in journal_lines(path) if rx.search(l)], timeout=timeout,
                      what="journal line /%s/ in %s (have %r)" % (pattern, path,
                                                                  journal_lines(path)))


class Inject(harness.DaemonTestCase):

    def test_timer_injects_with_and_without_trace(self):
        with Sink() as sink:
            d = self.new_daemon(start=False, hold_delivery=False)
            j1 = os.path.join(d.tmp, "journal-traced")
            j2 = os.path.join(d.tmp, "journal-quiet")
            d.global_text = "\n".join([
                'Module_Path = ( "%s" )' % harness.modules_dir(),
                'Domain "sink.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % sink.port,
                'test_services "traced" { journal = "%s" inject_to = "a@sink.test" '
                'inject_count = 2 inject_every = 50 inject_flags = ( "log" ) }' % j1,
                'test_services "quiet" { journal = "%s" inject_to = "b@sink.test" '
                'inject_count = 1 inject_flags = ( "no_trace" "new_id" ) }' % j2,
            ])
            d.write_config()
            d.start()
            sink.wait_for(3)
            traced = [t for t in sink.messages() if t.rcpts == ["a@sink.test"]]
            quiet = [t for t in sink.messages() if t.rcpts == ["b@sink.test"]]
            self.assertEqual(len(traced), 2)
            self.assertEqual(len(quiet), 1)

            ids = [l.split()[1] for l in wait_journal(j1, r"^injected \S+ err=0 on_scheduler=1$")]
            wait_until(lambda: len([l for l in journal_lines(j1) if " err=0 " in l]) == 2,
                       what="two injections journaled")
            ids = [l.split()[1] for l in journal_lines(j1) if l.startswith("injected")]
            for t in traced:
                self.assertEqual(t.mail, "module@services.test")
                body = t.body
                # Our Received: on top, naming the protocol and the message's id.
                self.assertTrue(body.startswith(b"Received: by mx.test.example (impetus) with "
                                                b"internal id "), body[:200])
                rid = re.search(rb"with internal id ([0-9A-F]{16})", body).group(1).decode()
                self.assertIn(rid, ids)
                # LF made CRLF, and the module's own Message-ID kept.
                self.assertNotIn(b"\n", body.replace(b"\r\n", b""))
                self.assertIn(b"Message-ID: <fixed-", body)
                self.assertEqual(body.count(b"Message-ID:"), 1)
            # IMP_INJECT_LOG: R lines with protocol "internal".
            for mid in ids:
                r = wait_records(d, "R", mid)[0]
                self.assertEqual(r["protocol"], "internal")
                self.assertEqual(r["client_ip"], "")

            q = quiet[0].body
            self.assertFalse(q.startswith(b"Received:"), q[:200])
            self.assertNotIn(b"Received: by mx.test.example", q)
            # NEW_ID: the module's Message-ID is replaced by one of ours.
            self.assertNotIn(b"fixed-1@module.test", q)
            self.assertEqual(len(re.findall(rb"(?im)^Message-ID: <[0-9A-F]{16}@mx\.test\.example>",
                                            q)), 1)
            qid = wait_journal(j2, r"^injected \S+ err=0")[0].split()[1]
            # Delivered (a later event of the same message), yet no R line: no LOG flag.
            wait_records(d, "D", qid)
            self.assertEqual(records(d, "R", qid), [])
            d.stop()


class Sign(harness.DaemonTestCase):

    def test_sign_flag_runs_the_sign_hook(self):
        """IMP_INJECT_SIGN: the sign subscribers see the message before it is spooled; without it they do not."""
        with Sink() as sink:
            d = self.new_daemon(start=False, hold_delivery=False)
            j = os.path.join(d.tmp, "journal")
            d.global_text = "\n".join([
                'Module_Path = ( "%s" )' % harness.modules_dir(),
                'Domain "sink.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % sink.port,
                'test_services "signed" { journal = "%s" inject_to = "s@sink.test" '
                'inject_flags = ( "sign" "no_trace" ) sign_header = "X-Test-Signature: v=1" }' % j,
                'test_services "plain" { journal = "%s" inject_to = "p@sink.test" }' % j,
            ])
            d.write_config()
            d.start()
            sink.wait_for(2)
            by_rcpt = {t.rcpts[0]: t.body for t in sink.messages()}
            # Prepended: the first field of the signed message, the bytes the 250 covered.
            self.assertTrue(by_rcpt["s@sink.test"].startswith(b"X-Test-Signature: v=1\r\n"),
                            by_rcpt["s@sink.test"][:200])
            self.assertNotIn(b"X-Test-Signature", by_rcpt["p@sink.test"])
            d.stop()


class Retention(harness.DaemonTestCase):
    """
    imp_inject's retention and message context: stored with the message,
    so the queue expires it on time after a restart too (Message_Expiration
    is a day; held mail is retried every second and never delivered).
    """

    def config(self, d, inject):
        self.journal = os.path.join(d.tmp, "journal")
        stanza = 'test_services "ret" { journal = "%s" }' % self.journal
        if inject:
            stanza = ('test_services "ret" { journal = "%s" inject_to = "a@example.com" '
                      'inject_count = 1 inject_retention = 4 inject_flags = ( "log" ) '
                      'inject_vctx = ( "campaign" "c-77" ) }' % self.journal)
        d.global_text = "\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(),
            "Retry_Interval = 1", "Max_Retry_Interval = 1", stanza])
        d.write_config()

    def injected_id(self):
        return wait_journal(self.journal, r"^injected \S+ err=0")[0].split()[1]

    def test_retention_and_context_survive_restart(self):
        d = self.new_daemon(start=False)
        self.config(d, inject=True)
        d.start()
        mid = self.injected_id()
        t0 = time.monotonic()
        d.stop()
        # Stored with the message: the context the module gave, and the retention.
        msg = d.spool_msg(mid)
        self.assertEqual(msg.get("vctx", {}).get("campaign"), "c-77", msg)
        self.assertEqual(msg.get("vctx", {}).get("impetus.retention"), "4", msg)
        # Restarted without the injecting stanza: the stored retention still applies.
        self.config(d, inject=False)
        d.start()
        p = wait_records(d, "P", mid, timeout=30)[0]
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 25, "expired %.1f s after injection, retention was 4 s" % elapsed)
        self.assertGreater(elapsed, 3, "expired too early: %.1f s" % elapsed)
        self.assertTrue(records(d, "T", mid), "it was retried (held) before it expired")
        d.stop()


class QueueOps(harness.DaemonTestCase):

    def start(self, sink):
        d = self.new_daemon(start=False, relay_hosts=("127.0.0.0/8",))
        self.control = os.path.join(d.tmp, "control")
        self.journal = os.path.join(d.tmp, "journal")
        open(self.control, "w").close()
        d.global_text = "\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(),
            "Retry_Interval = 3600",
            'Binding "out2" { Gateway = "127.0.0.1:%d" }' % sink.port,
            'Binding "held2" { Gateway = "127.0.0.1:%d" Retry_Interval = 1 }' % d.dead_port,
            'test_services "ops" { journal = "%s" control = "%s" }' % (self.journal, self.control),
        ])
        d.write_config()
        d.start()
        return d

    def command(self, line):
        with open(self.control, "a") as f:
            f.write(line + "\n")

    def held(self, d, marker):
        mid = d.send_mail(sender="sender@client.test", rcpts=("rcpt@example.com",),
                          body=make_message(marker=marker))
        wait_records(d, "T", mid)	# the first attempt failed: it waits
        return mid

    def test_requeue_fail_rebind(self):
        with Sink() as sink:
            d = self.start(sink)
            m_requeue = self.held(d, "m-requeue")
            m_fail = self.held(d, "m-fail")
            m_quiet = self.held(d, "m-quiet")
            m_rebind = self.held(d, "m-rebind")

            # requeue: due now, a second attempt long before Retry_Interval.
            self.command("requeue %s" % m_requeue)
            wait_journal(self.journal, r"^requeue %s err=0$" % m_requeue)
            wait_records(d, "T", m_requeue, count=2, timeout=10)
            self.command("requeue 0000000000000001")
            wait_journal(self.journal, r"^requeue 0000000000000001 err=-2$")

            # fail quietly, then loudly: P lines with our reply; one bounce only.
            self.command("fail_quiet %s" % m_quiet)
            wait_journal(self.journal, r"^fail_quiet %s err=0$" % m_quiet)
            p = wait_records(d, "P", m_quiet)[0]
            self.assertIn("554 5.7.1 removed quietly", p["response"])
            self.assertEqual(p["stage"], "21")
            self.command("fail %s" % m_fail)
            wait_journal(self.journal, r"^fail %s err=0$" % m_fail)
            p = wait_records(d, "P", m_fail)[0]
            self.assertIn("554 5.7.1 removed by test_services", p["response"])
            bounces = wait_records(d, "R", pred=lambda r: r["protocol"] == "internal",
                                   what="the bounce of the failed message")
            time.sleep(1.5)  # a second bounce (the quiet one) would be logged by now
            bounces = records(d, "R")
            bounces = [r for r in bounces if r["protocol"] == "internal"]
            self.assertEqual(len(bounces), 1, bounces)
            self.assertEqual(bounces[0]["rcpt_local"] + "@" + bounces[0]["rcpt_domain"],
                             "sender@client.test")
            self.assertEqual(bounces[0]["sender_local"], "")
            wait_records(d, "B", m_fail)
            self.command("fail %s" % m_fail)	# gone now
            wait_journal(self.journal, r"^fail %s err=-2$" % m_fail)

            # rebind: to a binding whose Gateway is the sink; delivered there.
            self.command("rebind %s nosuchbinding" % m_rebind)
            wait_journal(self.journal, r"^rebind %s err=-2$" % m_rebind)
            self.command("rebind %s out2" % m_rebind)
            wait_journal(self.journal, r"^rebind %s err=0$" % m_rebind)
            sink.wait_for(1)
            self.assertEqual(len(sink.with_marker("m-rebind")), 1)
            dl = wait_records(d, "D", m_rebind)[0]
            self.assertEqual(dl["binding"], "out2")
            d.stop()

    def test_rebind_survives_restart(self):
        with Sink() as sink:
            d = self.start(sink)
            mid = self.held(d, "m-restart")
            self.command("rebind %s held2" % mid)
            wait_journal(self.journal, r"^rebind %s err=0$" % mid)
            wait_records(d, "T", mid, pred=lambda r: r["binding"] == "held2")
            d.stop()
            before = len(records(d, "T", mid))
            open(self.control, "w").close()
            d.start()
            # Recovered with the BINDING record applied: retried from held2 again.
            wait_records(d, "T", mid, count=before + 1, timeout=20)
            last = records(d, "T", mid)[-1]
            self.assertEqual(last["binding"], "held2")
            d.stop()


if __name__ == "__main__":
    unittest.main()
