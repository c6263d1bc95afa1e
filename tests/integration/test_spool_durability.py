"""
test_spool_durability.py - accepted mail survives restarts and a full disk

  * SIGTERM and restart: every accepted message is still queued, with the
    same id, sender and recipients, and the daemon says how many it
    recovered;
  * the offline reader (`impetus spool ls`, text and JSON) lists the same
    messages as the daemon had accepted, without the daemon running;
  * a full disk (simulated with RLIMIT_FSIZE, which makes the daemon's
    writes fail with EFBIG exactly as ENOSPC would) answers 452 4.3.1,
    keeps the daemon serving, and loses none of the messages acknowledged
    before; after a restart without the limit everything is there and new
    mail is accepted.
"""

import os
import resource
import subprocess

from harness import (Daemon, DaemonTestCase, accepted_id, impetus_path, main,
                     make_message)


class RestartTest(DaemonTestCase):

    def test_messages_survive_sigterm_and_restart(self):
        d = self.new_daemon()
        sent = {}
        for i in range(20):
            rcpts = ["a%d@example.com" % i, "b%d@example.com" % i]
            mid = d.send_mail(sender="s%d@client.test" % i, rcpts=rcpts,
                              body=make_message(marker="restart-%d" % i))
            sent[mid] = ("s%d@client.test" % i, rcpts)
        self.assertEqual(d.stop(), 0)

        # Offline: the daemon is down, the spool is readable as it is.
        listed = {m["id"].upper(): m for m in d.spool_ls()}
        self.assertEqual(set(listed), set(sent))
        for mid, (sender, rcpts) in sent.items():
            m = listed[mid]
            self.assertEqual(m["sender"], sender)
            self.assertEqual([r["address"] for r in m["recipients"]], rcpts)
            self.assertTrue(all(r["state"] == "queued" for r in m["recipients"]))

        text = subprocess.run([impetus_path(), "spool", "ls", d.spool_dir],
                              capture_output=True, timeout=60, text=True)
        self.assertEqual(text.returncode, 0, text.stderr)
        lines = [l for l in text.stdout.splitlines() if l]
        self.assertEqual(len(lines), len(sent))
        for l in lines:
            fields = l.split("\t")
            self.assertIn(fields[0].upper(), sent)
            sender, rcpts = sent[fields[0].upper()]
            self.assertEqual(fields[3], "<%s>" % sender)
            self.assertEqual(fields[4:], ["queued:<%s>" % r for r in rcpts])

        d.start()
        d.wait_log("paniclog", "recovered_messages=20")
        self.assertEqual({m["id"].upper() for m in d.spool_ls()}, set(sent))
        mid = d.send_mail()
        self.assertIn(mid, {m["id"].upper() for m in d.spool_ls()})
        # Ids stay unique and time-ordered across the restart.
        self.assertGreater(mid, max(sent))

    def test_each_recipient_gets_an_r_line(self):
        d = self.new_daemon()
        mid = d.send_mail(sender="alice@client.test",
                          rcpts=("x@example.com", "y@example.com"))
        lines = d.r_lines(mid, count=2)
        rcpts = sorted((f[5], f[6]) for f in lines)
        self.assertEqual(rcpts, [("x", "example.com"), ("y", "example.com")])
        for f in lines:
            self.assertEqual(f[7:9], ["alice", "client.test"])
            self.assertEqual(f[9], "127.0.0.1")
            self.assertEqual(f[11], "esmtp")
            self.assertTrue(f[0].isdigit())
        # The heartbeat: "time@@@@M", written at start and every minute.
        beats = d.wait_log("mainlog", lambda l: l.endswith("@@@@M"))
        self.assertTrue(beats[0].split("@")[0].isdigit())


class DiskFullTest(DaemonTestCase):

    LIMIT = 400 * 1024

    def start_limited(self, d):
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.LIMIT, hard))
        try:
            d.start()
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    def test_full_disk_answers_452_and_loses_nothing(self):
        d = self.new_daemon(start=False)
        self.start_limited(d)
        acked = []
        refused = 0
        body = make_message(size=60 * 1024)
        with d.raw() as c:
            c.ehlo()
            for i in range(20):
                c.cmd("MAIL FROM:<s@client.test>")
                c.cmd("RCPT TO:<r%d@example.com>" % i)
                self.assertEqual(c.cmd("DATA").code, 354)
                from harness import data_payload
                c.send(data_payload(body))
                r = c.read_reply()
                if r.code == 250:
                    self.assertEqual(refused, 0, "a 250 after a 452 while the disk is full")
                    acked.append(accepted_id(r))
                else:
                    self.assertEqual(r.code, 452, "expected 452 on a full disk, got %s" % (r,))
                    self.assertTrue(r.lines[-1].startswith("4.3.1"), str(r))
                    refused += 1
            self.assertGreater(len(acked), 0)
            self.assertGreater(refused, 0, "the file size limit was never hit")
            # Still serving.
            self.assertEqual(c.cmd("NOOP").code, 250)
        self.assertEqual(d.stop(), 0)

        d.start()
        ids = {m["id"].upper() for m in d.spool_ls()}
        self.assertEqual(ids, set(acked))
        mid = d.send_mail(body=make_message(size=60 * 1024))
        self.assertIn(mid, {m["id"].upper() for m in d.spool_ls()})


if __name__ == "__main__":
    main()
