"""
test_inject.py - `impetus inject`: files, directories and mboxes through the daemon

Against the real daemon, delivering to a sink: a file with -f and -r; a
directory with -t (each message's own To/Cc/Bcc); an mbox (split on
"From " lines, ">From " unquoted, the sender from the From line); a run
with a refused message (a recipient the daemon refuses, an empty file, a
missing file) exits 1 and names each refused file with the reason while
the good ones are still delivered; usage errors exit 2; and with no
daemon listening every message is refused, exit 1.
"""

import os
import shutil
import subprocess
import tempfile
import time

from harness import DaemonTestCase, impetus_path, main
from deliverykit import wait_until
from sink import Sink

HOST = "mx.test.example"


class InjectTest(DaemonTestCase):

    def setUp(self):
        self.sink = Sink()
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.d = self.new_daemon(
            hostname=HOST, relay_domains=("example.com",), relay_hosts=(),
            hold_delivery=False,
            global_text='Gateway = "127.0.0.1:%d"' % self.sink.port)
        self.tmp = tempfile.mkdtemp(prefix="impetus-inject-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def inject(self, *args, conf=None):
        cmd = [impetus_path(), "-c", conf or self.d.conf_path, "inject"] + list(args)
        return subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)

    def received(self, marker, count=1):
        def find():
            t = [t for t in self.sink.transactions if marker.encode() in t.body]
            return t if len(t) >= count else None
        txns = wait_until(find, what="%d message(s) with %s" % (count, marker))
        time.sleep(0.2)
        txns = [t for t in self.sink.transactions if marker.encode() in t.body]
        self.assertEqual(len(txns), count)
        return txns

    def test_file(self):
        """one file, -f and -r: delivered with that envelope; an ok line with the id"""
        p = self.write("one.eml", b"From: a@example.org\nSubject: inj-file\n\ninj-file\n")
        r = self.inject("-f", "sender@example.org", "-r", "x@example.com", p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"^ok %s <[0-9A-F]{16}>\n$" % p)
        self.assertIn(b"1 of 1 message injected", r.stderr)
        t = self.received("inj-file")[0]
        self.assertEqual((t.mail, t.rcpts), ("sender@example.org", ["x@example.com"]))

    def test_directory_with_t(self):
        """a directory, -t: each message to its own To/Cc/Bcc, in name order"""
        for i in range(5):
            self.write("dir/m%d.eml" % i, ("To: r%d@example.com\nCc: cc@example.com\n"
                                           "Subject: inj-dir-%d\n\ninj-dir-%d\n" % (i, i, i)).encode())
        self.write("dir/.hidden", b"not a message")
        r = self.inject("-t", "-f", "s@example.org", os.path.join(self.tmp, "dir"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 5, r.stdout)
        for i in range(5):
            t = self.received("inj-dir-%d" % i)[0]
            self.assertEqual(sorted(t.rcpts), sorted(["r%d@example.com" % i, "cc@example.com"]))
        self.assertIn(b"5 of 5 messages injected", r.stderr)

    def test_mbox(self):
        """an mbox: split on From lines, >From unquoted, sender from the From line"""
        box = (b"From alice@example.org Mon Jan  1 00:00:00 2024\n"
               b"Subject: inj-mbox-1\n\ninj-mbox-1\n>From the start\n\n"
               b"From bob@example.org Mon Jan  1 00:00:01 2024\n"
               b"Subject: inj-mbox-2\n\ninj-mbox-2\n\n"
               b"From MAILER-DAEMON Mon Jan  1 00:00:02 2024\n"
               b"Subject: inj-mbox-3\n\ninj-mbox-3\n")
        p = self.write("box.mbox", box)
        r = self.inject("-r", "m@example.com", p)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"3 of 3 messages injected", r.stderr)
        t1 = self.received("inj-mbox-1")[0]
        self.assertEqual(t1.mail, "alice@example.org")
        self.assertIn(b"\r\nFrom the start\r\n", t1.body)
        self.assertNotIn(b"inj-mbox-2", t1.body)
        self.assertEqual(self.received("inj-mbox-2")[0].mail, "bob@example.org")
        self.assertEqual(self.received("inj-mbox-3")[0].mail, "")

    def test_refused_files_named(self):
        """a refused recipient, an empty file, a missing file: exit 1, each named with why"""
        good = self.write("good.eml", b"Subject: inj-good\n\ninj-good\n")
        relay = self.write("relay.eml", b"To: x@elsewhere.test\nSubject: inj-relay\n\nx\n")
        empty = self.write("empty.eml", b"")
        missing = os.path.join(self.tmp, "missing.eml")
        r = self.inject("-t", "-r", "ok@example.com", good, relay, empty, missing)
        self.assertEqual(r.returncode, 1, r.stderr)
        err = r.stderr.decode()
        self.assertIn("3 refused", err)
        self.assertRegex(err, r"refused %s: accepted <[0-9A-F]{16}> for 1 of 2 recipients; "
                              r"refused <x@elsewhere.test>: 5\d\d" % relay)
        self.assertIn("refused %s: empty message" % empty, err)
        self.assertIn("refused %s: cannot read: No such file or directory" % missing, err)
        self.received("inj-good")

    def test_progress_on_terminal(self):
        """stderr a terminal: a progress bar with the rate, no per-message lines"""
        import pty
        for i in range(3):
            self.write("tty/m%d.eml" % i, ("Subject: inj-tty-%d\n\ninj-tty-%d\n" % (i, i)).encode())
        master, slave = pty.openpty()
        try:
            r = subprocess.run([impetus_path(), "-c", self.d.conf_path, "inject", "-r",
                                "t@example.com", os.path.join(self.tmp, "tty")],
                               stdout=subprocess.PIPE, stderr=slave, timeout=60)
            os.close(slave)
            slave = None
            out = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(r.returncode, 0, out)
        self.assertEqual(r.stdout, b"")
        self.assertRegex(out.decode(), r"\r\[#{30}\] 3/3  [0-9.]+ msg/s  0 refused")
        self.assertIn(b"3 of 3 messages injected", out)
        for i in range(3):
            self.received("inj-tty-%d" % i)

    def test_usage(self):
        """no recipient option, no path, an unknown option: exit 2"""
        p = self.write("u.eml", b"Subject: u\n\nu\n")
        for args in ((p,), ("-r", "a@example.com"), ("--bogus", p)):
            r = self.inject(*args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))

    def test_daemon_down(self):
        """no daemon: each message is refused with the connect error, exit 1"""
        p = self.write("d.eml", b"Subject: d\n\nd\n")
        r = subprocess.run([impetus_path(), "-c", self.d.conf_path, "inject", "--server",
                            "127.0.0.1:%d" % self.d.dead_port, "-r", "a@example.com", p],
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"refused %s: cannot connect" % p.encode(), r.stderr)


if __name__ == "__main__":
    main()
