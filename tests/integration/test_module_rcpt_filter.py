"""
test_module_rcpt_filter.py - modules/rcpt_filter against the real daemon

rcpt_filter looks each RCPT TO up in a list held in memory, and checks
the file on the IO pool, with the session suspended, when the last check
is check_interval old; with check_interval = 0 every lookup is such a
suspension (docs/modules/rcpt_filter.md). The suspension tests set
check_interval = 0 so that every RCPT really suspends. What the tests show:

  * the answers: reject 550 5.1.1, tempfail 451 4.7.1, the entry's own
    text or the instance's, @domain entries, case-insensitive keys, and
    unlisted recipients passed on to relay control;
  * pipelined RCPTs answered in the order they were sent, although each
    one suspends the session;
  * one loop (Event_Loops = 1) serving a second connection's banner and
    EHLO while the first is suspended in a slow lookup (delay_ms), whose
    answer arrives afterwards;
  * a client that disconnects while suspended: the daemon goes on, and
    (under the sanitizer build) exits clean;
  * the file re-read when it changes, a bad version logged and ignored;
  * with the default check_interval (1 s) an edit seen within about a
    second, and RCPTs answered from memory meanwhile, also while a slow
    check is in flight;
  * with a long check_interval no suspension at all (no paniclog line, no
    delay_ms), the edit not seen until the interval ends;
  * a missing or malformed file refusing start-up with file:line.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import wait_until  # noqa: E402

LIST = """\
# test list
bad@example.com        reject
Shouty@Example.COM     reject   we do not shout
full@example.com       tempfail
@blocked.example.com   reject   this domain takes no mail
@slow.example.com      tempfail
"""


class RcptFilter(harness.DaemonTestCase):

    def daemon(self, list_text=LIST, options="", start=True, loops=None):
        d = self.new_daemon(start=False, relay_domains=("example.com", "blocked.example.com",
                                                          "slow.example.com"))
        self.list_path = os.path.join(d.tmp, "rcpt_list.txt")
        if list_text is not None:
            with open(self.list_path, "w") as f:
                f.write(list_text)
        g = 'Module_Path = ( "%s" )\n' % harness.modules_dir()
        if loops is not None:
            g += "Event_Loops = %d\n" % loops
        g += 'rcpt_filter "list" { file = "%s" %s }' % (self.list_path, options)
        d.global_text = g
        d.write_config()
        if start:
            d.start()
        return d

    def rewrite(self, text):
        """rewrite - replace the list file (a new inode: the change is seen at once)."""
        tmp = self.list_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.list_path)

    def open_txn(self, d):
        c = self.raw(d)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>").code, 250)
        return c

    # -- answers ------------------------------------------------------------

    def test_answers(self):
        d = self.daemon()
        c = self.open_txn(d)
        self.assertReply(c.cmd("RCPT TO:<bad@example.com>"), 550, "5.1.1", "recipient rejected")
        self.assertReply(c.cmd("RCPT TO:<BAD@example.com>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<shouty@example.com>"), 550, "5.1.1", "we do not shout")
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 451, "4.7.1",
                         "recipient temporarily unavailable")
        self.assertReply(c.cmd("RCPT TO:<anyone@blocked.example.com>"), 550, "5.1.1",
                         "this domain takes no mail")
        self.assertReply(c.cmd("RCPT TO:<x@slow.example.com>"), 451, "4.7.1")
        # Not listed: the next subscriber decides (relay control accepts it).
        self.assertReply(c.cmd("RCPT TO:<good@example.com>"), 250)
        # Not listed, not a relay domain: relay control still refuses it.
        r = c.cmd("RCPT TO:<x@elsewhere.test>")
        self.assertEqual(r.code // 100, 5, str(r))
        # The transaction goes on with the one good recipient.
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(harness.data_payload(harness.make_message(subject="filtered")))
        harness.accepted_id(c.read_reply())

    def test_texts_from_options(self):
        d = self.daemon(options='reject_text = "go away" tempfail_text = "later please"')
        c = self.open_txn(d)
        self.assertReply(c.cmd("RCPT TO:<bad@example.com>"), 550, "5.1.1", "go away")
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 451, "4.7.1", "later please")
        # An entry's own text wins over the option.
        self.assertReply(c.cmd("RCPT TO:<shouty@example.com>"), 550, "5.1.1", "we do not shout")

    # -- suspend / resume -----------------------------------------------------

    def test_pipelined_rcpts_answered_in_order(self):
        d = self.daemon(options="delay_ms = 150 check_interval = 0")
        c = self.raw(d)
        ehlo = c.ehlo()
        self.assertIn("PIPELINING", ehlo.text)
        rcpts = ["good1@example.com", "bad@example.com", "good2@example.com",
                 "full@example.com", "x@blocked.example.com", "good3@example.com"]
        want = [250, 550, 250, 451, 550, 250]
        c.send("MAIL FROM:<a@client.test>\r\n" +
               "".join("RCPT TO:<%s>\r\n" % r for r in rcpts) + "DATA\r\n")
        self.assertEqual(c.read_reply().code, 250)
        got = [c.read_reply() for _ in rcpts]
        self.assertEqual([r.code for r in got], want, [str(r) for r in got])
        self.assertEqual(c.read_reply().code, 354)
        c.send(harness.data_payload(harness.make_message(subject="pipelined")))
        harness.accepted_id(c.read_reply())

    def test_other_sessions_served_while_suspended(self):
        d = self.daemon(options="delay_ms = 3000 check_interval = 0", loops=1)
        a = self.open_txn(d)
        t0 = time.monotonic()
        a.send("RCPT TO:<bad@example.com>\r\n")
        # While a waits for its lookup, the same (only) loop greets b and
        # answers its EHLO and MAIL.
        b = self.raw(d)
        self.assertEqual(b.banner.code, 220)
        self.assertEqual(b.ehlo().code, 250)
        self.assertEqual(b.cmd("MAIL FROM:<b@client.test>").code, 250)
        # ... while a's answer had not come yet (positive marker above
        # first): b did not wait for a's lookup. Order, not a time bound,
        # says so (ctest holds no timing thresholds).
        self.assertEqual(a.pending(wait=0.1), b"", "a answered before its lookup finished")
        r = a.read_reply()
        self.assertReply(r, 550, "5.1.1")
        self.assertGreaterEqual(time.monotonic() - t0, 2.9, "the lookup did not wait delay_ms")
        # a is usable after the resume.
        self.assertEqual(a.cmd("RSET").code, 250)
        self.assertEqual(a.cmd("NOOP").code, 250)

    def test_client_gone_while_suspended(self):
        n = 5
        d = self.daemon(options="delay_ms = 2500 check_interval = 0 debug_level = 2",
                       loops=1)
        clients = []
        for i in range(n):
            c = self.raw(d)
            c.ehlo()
            c.cmd("MAIL FROM:<a@client.test>")
            # One RCPT suspended, one more behind it in the buffer.
            c.send("RCPT TO:<bad@example.com>\r\nRCPT TO:<good%d@example.com>\r\n" % i)
            clients.append(c)
        # Every session is suspended in its lookup; then the clients vanish.
        d.wait_log("paniclog", "rcpt=bad@example.com suspended for the lookup", count=n)
        for c in clients:
            c.close()
        # The lookups end and resume sessions that are gone.
        d.wait_log("paniclog", "rcpt=bad@example.com entry=bad@example.com action=reject",
                   count=n, timeout=20)
        d.assert_alive()
        # Nothing was resumed twice or into another session: a new one works.
        c = self.open_txn(d)
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 451, "4.7.1")
        self.assertEqual(c.cmd("QUIT").code, 221)
        # A clean stop: no sanitizer report, no crash (checked by stop()).
        d.stop()

    def test_reload_stops_while_suspended(self):
        # The instance's generation ends (SIGHUP) while a lookup is in flight.
        import signal
        d = self.daemon(options="delay_ms = 1000 check_interval = 0", loops=1)
        c = self.open_txn(d)
        c.send("RCPT TO:<bad@example.com>\r\n")
        time.sleep(0.2)
        d.signal(signal.SIGHUP)
        self.assertReply(c.read_reply(), 550, "5.1.1")
        c.close()
        time.sleep(0.5)
        c = self.open_txn(d)
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 451, "4.7.1")
        # Closed first: a session with an open envelope may finish it during
        # the shutdown's 30 s grace, and this one would wait all of it.
        c.close()
        d.stop()

    # -- in memory between checks -------------------------------------------------

    def test_default_interval_sees_edit_within_a_second(self):
        d = self.daemon()
        c = self.open_txn(d)
        self.assertEqual(c.cmd("RCPT TO:<new@example.com>").code, 250)
        self.rewrite(LIST + "new@example.com reject newly listed\n")
        # The check is due at most 1 s after the last one: the first RCPT
        # after that checks, re-reads and answers from the new version.
        time.sleep(1.1)
        self.assertReply(c.cmd("RCPT TO:<new@example.com>"), 550, "5.1.1", "newly listed")
        self.rewrite(LIST)
        time.sleep(1.1)
        self.assertEqual(c.cmd("RCPT TO:<new@example.com>").code, 250)
        self.assertReply(c.cmd("RCPT TO:<bad@example.com>"), 550, "5.1.1")

    def test_answers_from_memory_between_checks(self):
        # A slow check (delay_ms) marks which RCPTs went to the IO pool.
        d = self.daemon(options="delay_ms = 1500 debug_level = 2")
        a = self.open_txn(d)
        b = self.open_txn(d)
        time.sleep(1.1)		# the check read at start-up is now 1 s old: due
        t0 = time.monotonic()
        a.send("RCPT TO:<bad@example.com>\r\n")	# starts the one check
        time.sleep(0.2)
        # While it is in flight, another RCPT is answered from the snapshot in force.
        # (Order proves it, not a time bound: b's answer came while a's
        # check was still out.)
        r = b.cmd("RCPT TO:<full@example.com>")
        self.assertReply(r, 451, "4.7.1")
        self.assertEqual(a.pending(wait=0.05), b"", "a answered before its check finished")
        self.assertReply(a.read_reply(), 550, "5.1.1")
        self.assertGreaterEqual(time.monotonic() - t0, 1.4, "the check did not wait delay_ms")
        # Just checked: the next RCPTs are answered without suspending
        # (the count of suspensions below says so).
        for rcpt, code in (("bad@example.com", 550), ("good@example.com", 250),
                           ("x@blocked.example.com", 550)):
            r = a.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r.code, code, str(r))
        # Positive marker first (the debug 1 hit line of the last RCPT), then:
        # exactly one suspension was logged.
        d.wait_log("paniclog", "rcpt=x@blocked.example.com entry=@blocked.example.com")
        self.assertEqual(len([l for l in d.paniclog() if "suspended for the lookup" in l]), 1)

    def test_long_interval_never_suspends(self):
        d = self.daemon(options="check_interval = 1h delay_ms = 2000 debug_level = 2")
        c = self.open_txn(d)
        for rcpt, code in (("bad@example.com", 550), ("full@example.com", 451),
                           ("good@example.com", 250), ("bad@example.com", 550)):
            r = c.cmd("RCPT TO:<%s>" % rcpt)
            self.assertEqual(r.code, code, str(r))
        # The file is not checked again within the hour: an edit is not seen yet.
        self.rewrite("good@example.com reject\n")
        time.sleep(1.1)
        r = c.cmd("RCPT TO:<good@example.com>")
        self.assertEqual(r.code, 250, str(r))
        # No pool job, ever: no suspension is logged (below).
        d.wait_log("paniclog", "rcpt=full@example.com entry=full@example.com action=tempfail")
        d.wait_log("paniclog", "rcpt=good@example.com not listed", count=2)
        self.assertEqual([l for l in d.paniclog() if "suspended for the lookup" in l], [])
        self.assertEqual([l for l in d.paniclog() if "reloaded" in l], [])

    def test_check_interval_bounds(self):
        for value in ("-1", "2d"):
            with self.subTest(value=value):
                d = self.daemon(options="check_interval = %s" % value, start=False)
                with self.assertRaises(AssertionError) as cm:
                    d.start()
                self.assertIn("check_interval", str(cm.exception))
                d.proc = None


    # -- the file ---------------------------------------------------------------

    def test_file_reread_when_changed(self):
        # check_interval = 0: every lookup checks the file, so each change is seen at once.
        d = self.daemon(options="check_interval = 0 debug_level = 1")
        c = self.open_txn(d)
        self.assertEqual(c.cmd("RCPT TO:<new@example.com>").code, 250)
        self.rewrite(LIST + "new@example.com reject newly listed\n")
        self.assertReply(c.cmd("RCPT TO:<new@example.com>"), 550, "5.1.1", "newly listed")
        d.wait_log("paniclog", "rcpt_filter[list]: reloaded %s: 6 entries" % self.list_path)
        # A bad version: logged once, the list in force stays.
        self.rewrite(LIST + "broken@example.com maybe\n")
        self.assertReply(c.cmd("RCPT TO:<new@example.com>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<bad@example.com>"), 550, "5.1.1")
        lines = d.wait_log("paniclog", "the action must be reject or tempfail")
        self.assertIn("%s:7: " % self.list_path, lines[0])
        self.assertIn("keeping the list read before", lines[0])
        time.sleep(1.2)	# the paniclog is flushed about once a second
        self.assertEqual(len([l for l in d.paniclog()
                              if "the action must be reject or tempfail" in l]), 1)
        # Removed: also logged, the list stays.
        os.unlink(self.list_path)
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 451, "4.7.1")
        d.wait_log("paniclog", "cannot open %s" % self.list_path)
        # Back, without the entry: the new version is in force.
        self.rewrite("full@example.com reject\n")
        self.assertReply(c.cmd("RCPT TO:<full@example.com>"), 550, "5.1.1")
        self.assertEqual(c.cmd("RCPT TO:<bad@example.com>").code, 250)

    def test_bad_file_stops_startup(self):
        cases = [
            (None, "cannot open "),
            ("ok@example.com reject\nnot-an-address reject\n",
             ":2: expected an address or @domain first"),
            ("ok@example.com\n", ":1: missing action (reject or tempfail)"),
            ("a@example.com reject\nA@EXAMPLE.com tempfail\n", "a@example.com is listed twice"),
        ]
        for text, why in cases:
            with self.subTest(text=text):
                d = self.daemon(list_text=text, start=False)
                with self.assertRaises(AssertionError) as cm:
                    d.start()
                self.assertIn('module rcpt_filter "list": init failed: ', str(cm.exception))
                self.assertIn(why, str(cm.exception))
                if text is not None:
                    self.assertIn(self.list_path + ":" if why.startswith(":") else why,
                                  str(cm.exception))
                d.proc = None


if __name__ == "__main__":
    unittest.main()
