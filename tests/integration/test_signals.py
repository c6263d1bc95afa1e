"""
test_signals.py - command line checks, SIGTERM shutdown and SIGHUP reload

`impetusd -t`, graceful shutdown (idle sessions get 421 4.3.2, a
transaction in flight may finish and is kept), log reopening and
configuration reload on SIGHUP, all against the real daemon. Every test
starts its own daemon because each one stops or reconfigures it.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import accepted_id, data_payload, make_message  # noqa: E402


def run_check(path):
    exe = harness.impetusd_path()
    if not os.access(exe, os.X_OK):
        harness.missing_feature("daemon binary not built: %s" % exe)
    return subprocess.run([exe, "-t", "-c", path], capture_output=True, timeout=60)


class CheckConfig(harness.DaemonTestCase):

    def test_good_config(self):
        d = self.new_daemon(start=False)
        r = run_check(d.conf_path)
        self.assertEqual(r.returncode, 0, "impetusd -t on a good file: exit %d, stderr:\n%s"
                         % (r.returncode, r.stderr.decode(errors="replace")))
        self.assertEqual(os.listdir(d.spool_dir), [], "-t must not open the spool")

    def test_bad_config(self):
        d = self.new_daemon(start=False)
        d.write_config('Spoolbase = "%s"\nLog_Directory = "%s"\n'
                       'No_Such_Option_Here = 42\n' % (d.spool_dir, d.log_dir))
        r = run_check(d.conf_path)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, "impetusd -t on a bad file: exit %d, stderr:\n%s"
                         % (r.returncode, err))
        self.assertRegex(err, re.escape(d.conf_path) + r":3:\d+: ",
                         "error not reported as file:line:col:")

    def test_bad_value_and_syntax(self):
        d = self.new_daemon(start=False)
        cases = [
            ('Spoolbase = "%s"\nMax_Recipients_Per_Message = lots\n' % d.spool_dir, 2),
            ('Spoolbase = "%s"\n\nESMTP_Listener {\n  Listen "127.0.0.1:1" {\n' % d.spool_dir, 0),
            ('Relay_Domains = ( "a.example" \n', 0),
        ]
        for text, line in cases:
            with self.subTest(text=text):
                d.write_config(text)
                r = run_check(d.conf_path)
                err = r.stderr.decode(errors="replace")
                self.assertEqual(r.returncode, 1, "exit %d for %r: %s" % (r.returncode, text, err))
                pat = re.escape(d.conf_path) + (r":%d:\d+: " % line if line else r":\d+:\d+: ")
                self.assertRegex(err, pat)

    def test_version(self):
        exe = harness.impetusd_path()
        if not os.access(exe, os.X_OK):
            harness.missing_feature("daemon binary not built: %s" % exe)
        r = subprocess.run([exe, "-V"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, "impetusd -V exit status")
        self.assertRegex(r.stdout.decode(errors="replace"), r"impetusd \d+\.\d+",
                         "impetusd -V prints 'impetusd <version>'")

    def test_embedded_default_config_is_valid(self):
        exe = harness.impetusd_path()
        if not os.access(exe, os.X_OK):
            harness.missing_feature("daemon binary not built: %s" % exe)
        r = subprocess.run([exe, "-t"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, "impetusd -t (embedded etc/impetus.conf): %s"
                         % r.stderr.decode(errors="replace"))

    def test_bad_config_fails_startup(self):
        d = self.new_daemon(start=False)
        d.write_config("Bogus_Option = 1\n")
        exe = harness.impetusd_path()
        if not os.access(exe, os.X_OK):
            harness.missing_feature("daemon binary not built: %s" % exe)
        r = subprocess.run([exe, "-c", d.conf_path], capture_output=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, "daemon started with an unknown option")
        self.assertRegex(r.stderr.decode(errors="replace"), re.escape(d.conf_path) + r":1:\d+: ")


class Shutdown(harness.DaemonTestCase):

    def test_sigterm_idle_session(self):
        d = self.new_daemon()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        d.signal(signal.SIGTERM)
        r = c.read_reply(timeout=20)
        self.assertReply(r, 421, "4.3.2", "shutting down", msg="idle session on SIGTERM")
        self.assertIn("mx.test.example", r.text)
        self.assertTrue(c.wait_closed(10), "session not closed after 421 4.3.2")
        rc = d.stop()
        self.assertEqual(rc, 0, "exit status after SIGTERM; stderr:\n%s" % d.stderr()[-3000:])

    def test_sigterm_stops_accepting(self):
        d = self.new_daemon()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        d.signal(signal.SIGTERM)
        time.sleep(1.0)
        try:
            late = harness.RawClient(d.port, timeout=5)
            got = late.banner
            late.close()
        except (OSError, AssertionError):
            got = None
        if got is not None:
            self.assertNotEqual(got.code, 220, "a new connection was greeted during shutdown")
        try:
            c.cmd("RSET")	# 250, or 421 if the server already let go of it
        except (OSError, AssertionError):
            pass
        c.close()
        self.assertEqual(d.stop(), 0)

    def test_sigterm_during_data(self):
        d = self.new_daemon()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<inflight@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<r@example.com>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        body = make_message("in flight", size=20000)
        c.send(body[:5000])
        time.sleep(0.3)
        d.signal(signal.SIGTERM)
        time.sleep(1.0)
        self.assertTrue(d.running(), "daemon exited with a transaction in flight")
        c.send(data_payload(body)[5000:])
        r = c.read_reply(timeout=30)
        mid = accepted_id(r)
        # The 421 may come at once (the session is idle now) or as the
        # answer to the next command; either way it is the next reply.
        try:
            r = c.read_reply(timeout=1.0)
        except harness.ConnectionClosed:
            raise
        except AssertionError:
            try:
                c.send(b"NOOP\r\n")
            except OSError:
                pass
            r = c.read_reply(timeout=30)
        self.assertReply(r, 421, "4.3.2", msg="next reply after the finished transaction")
        self.assertTrue(c.wait_closed(10))
        rc = d.stop()
        self.assertEqual(rc, 0, "exit status; stderr:\n%s" % d.stderr()[-3000:])
        m = d.spool_msg(mid)
        self.assertEqual(m["sender"], "inflight@client.test")
        # And it survives a restart.
        d.start()
        self.assertEqual(d.spool_msg(mid)["sender"], "inflight@client.test")

    def test_sigint_like_sigterm(self):
        d = self.new_daemon()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        d.signal(signal.SIGINT)
        self.assertReply(c.read_reply(timeout=20), 421, "4.3.2")
        d.proc.wait(harness.STOP_TIMEOUT)
        self.assertEqual(d.stop(), 0)

    def test_restart_keeps_messages(self):
        d = self.new_daemon()
        ids = [d.send_mail(rcpts=["r%d@example.com" % i]) for i in range(3)]
        self.assertEqual(d.stop(), 0)
        d.start()
        live = {m["id"].upper() for m in d.spool_ls()}
        for i in ids:
            self.assertIn(i, live)
        new = d.send_mail()
        self.assertGreater(new, max(ids), "ids keep increasing across restarts")


class Reload(harness.DaemonTestCase):

    def test_sighup_reopens_logs(self):
        d = self.new_daemon()
        first = d.send_mail(rcpts=["before@example.com"])
        d.r_lines(first)
        main = os.path.join(d.log_dir, "mainlog")
        os.rename(main, main + ".1")
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not os.path.exists(main) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertTrue(os.path.exists(main), "SIGHUP did not create a new mainlog")
        second = d.send_mail(rcpts=["after@example.com"])
        rl = d.r_lines(second)
        self.assertEqual(rl[0][5], "after")
        with open(main + ".1") as f:
            old = f.read()
        self.assertIn("@%s@" % first, old)
        self.assertNotIn("@%s@" % second, old, "new lines went to the rotated file")
        d.assert_alive()

    def test_sighup_reloads_config(self):
        d = self.new_daemon()
        c = self.raw(d)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@new.example>"), 550, "5.7.1")
        c.cmd("QUIT")
        d.relay_domains.append("new.example")
        d.write_config()
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        r = None
        while time.monotonic() < deadline:
            with harness.RawClient(d.port) as c:
                c.ehlo()
                c.cmd("MAIL FROM:<a@client.test>")
                r = c.cmd("RCPT TO:<x@new.example>")
                if r.code == 250:
                    break
            time.sleep(0.3)
        self.assertReply(r, 250, "2.1.5", msg="domain added to Relay_Domains before SIGHUP")
        mid = d.send_mail(rcpts=["y@new.example"])
        d.spool_msg(mid)

    def test_sighup_open_session_keeps_its_generation(self):
        # DESIGN.md: work in flight finishes on the generation it started
        # with; new sessions get the new one.
        d = self.new_daemon()
        old = self.raw(d)
        self.assertReply(old.ehlo(), 250)
        d.relay_domains.append("later.example")
        d.write_config()
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        r = None
        while time.monotonic() < deadline:
            with harness.RawClient(d.port) as c:
                c.ehlo()
                c.cmd("MAIL FROM:<a@client.test>")
                r = c.cmd("RCPT TO:<x@later.example>")
                if r.code == 250:
                    break
            time.sleep(0.3)
        self.assertReply(r, 250, msg="new session after SIGHUP")
        self.assertReply(old.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertReply(old.cmd("RCPT TO:<x@later.example>"), 550, "5.7.1",
                         msg="a session opened before SIGHUP keeps the old generation")
        self.assertReply(old.cmd("RCPT TO:<x@example.com>"), 250)

    def test_sighup_bad_config_keeps_old(self):
        d = self.new_daemon()
        good = d.config()
        d.write_config(good + "\nThis_Is_Not_An_Option = 1\n")
        d.signal(signal.SIGHUP)
        d.wait_log("paniclog", lambda l: d.conf_path in l, timeout=10)
        time.sleep(0.5)
        d.assert_alive()
        mid = d.send_mail()
        d.spool_msg(mid)
        with harness.RawClient(d.port) as c:
            c.ehlo()
            c.cmd("MAIL FROM:<a@client.test>")
            self.assertReply(c.cmd("RCPT TO:<x@elsewhere.example.org>"), 550,
                             msg="old relay rules still in force")
        d.write_config(good)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    harness.main()
