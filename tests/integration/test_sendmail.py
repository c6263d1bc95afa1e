"""
test_sendmail.py - `impetus sendmail` as the programs that call sendmail call it

With the daemon up, each real invocation (cron, PHP mail(), git
send-email, bsd-mailx, mutt) runs through a link named "sendmail" to the
impetus binary, with exactly the argv those programs use, and the
downstream sink must receive the message with the right envelope and
header. Then -N/-R/-V (DSN), the lone-dot end of input without -i, -bs
(an SMTP dialogue on stdin/stdout relayed to the daemon), -v, usage
errors (EX_USAGE 64), and -f by an ordinary user (run as nobody), which
adds X-Authentication-Warning.

With the daemon down: sendmail exits 0 and leaves the message in
<spool>/pickup; the daemon, started, delivers it exactly once with an R
line of protocol "sendmail"; a malformed pickup file goes to pickup/bad/
with a paniclog line and does not hold the good one back; and a crash
between spooling and unlinking (reproduced by restoring the file after a
kill -9) does not deliver twice.
"""

import os
import pwd
import shutil
import subprocess
import tempfile
import time

from harness import Daemon, DaemonTestCase, impetus_path, main
from deliverykit import wait_until
from sink import Sink

HOST = "mx.test.example"


def sendmail_link(tmp):
    """sendmail_link - a symlink named sendmail to the impetus binary (argv[0] dispatch)."""
    path = os.path.join(tmp, "sendmail")
    if not os.path.exists(path):
        os.symlink(os.path.abspath(impetus_path()), path)
    return path


def header(body, name):
    """header - the (unfolded) values of a header field in raw message bytes."""
    head = body.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    out = []
    for line in head.split("\r\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        elif line.lower().startswith(name.lower() + ":"):
            out.append(line.split(":", 1)[1].strip())
    return out


class Base(DaemonTestCase):

    def setUp(self):
        self.sink = Sink()
        self.sink.start()
        self.addCleanup(self.sink.stop)
        self.tmp = tempfile.mkdtemp(prefix="impetus-sendmail-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sendmail = sendmail_link(self.tmp)

    def daemon(self, start=True, hold=False):
        gateway = self.sink.port
        d = self.new_daemon(hostname=HOST, relay_domains=(), relay_hosts=("127.0.0.0/8",),
                            hold_delivery=False, start=start,
                            global_text="\n".join([
                                "Retry_Interval = 1",
                                "Max_Retry_Interval = 1",
                                'Gateway = "127.0.0.1:%d"' % (d_dead_port() if hold else gateway),
                            ]))
        return d

    def run_sendmail(self, argv, data, d, env=None, user=None, timeout=30):
        e = dict(os.environ)
        e["IMPETUS_CONFIG"] = d.conf_path
        e.pop("NAME", None)
        if env:
            e.update(env)
        cmd = [self.sendmail] + list(argv)
        if user:
            cmd = ["setpriv", "--reuid=%s" % user, "--regid=%d" % pwd.getpwnam(user).pw_gid, "--clear-groups"] + cmd
        return subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, env=e)

    def one(self, marker, timeout=15.0):
        """one - the one sink transaction whose body holds marker."""
        def find():
            return [t for t in self.sink.transactions if marker.encode() in t.body]
        txns = wait_until(find, timeout, "the sink to receive %s" % marker)
        self.assertEqual(len(txns), 1, "received %d times" % len(txns))
        return txns[0]


_DEAD = []


def d_dead_port():
    from harness import free_port
    if not _DEAD:
        _DEAD.append(free_port())
    return _DEAD[0]


class SendmailUpTest(Base):
    """The daemon runs: each program's invocation reaches the sink."""

    def setUp(self):
        super().setUp()
        self.d = self.daemon()

    def test_cron(self):
        """cron: sendmail -FCronDaemon -i -B8BITMIME -oem root"""
        msg = (b"From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> echo cron-1\n"
               b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
               b"Content-Transfer-Encoding: 8bit\n\ncron-1 \xc3\xa9t\xc3\xa9\n.\nafter dot\n")
        r = self.run_sendmail(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("cron-1")
        self.assertEqual(t.mail, "root@" + HOST)
        self.assertEqual(t.rcpts, ["root@" + HOST])
        self.assertIn("BODY=8BITMIME", t.mail_params.upper())
        self.assertIn(b"after dot", t.body)	# -i: a lone dot is data
        self.assertEqual(header(t.body, "From"), ["root (Cron Daemon)"])
        self.assertEqual(len(header(t.body, "Date")), 1)
        self.assertEqual(len(header(t.body, "Message-ID")), 1)
        self.assertFalse(header(t.body, "X-Authentication-Warning"))

    def test_php_mail(self):
        """PHP mail(): sendmail -t -i, recipients from To/Cc/Bcc, Bcc removed, From added"""
        msg = (b"To: Alice <alice@example.com>, \"Bob, Jr\" <bob@example.com>\n"
               b"Cc: carol@example.com (Carol)\nBcc: dave@example.com\n"
               b"Subject: php-1\n\nphp-1 body\n")
        r = self.run_sendmail(["-t", "-i"], msg, self.d, env={"NAME": "Web Server"})
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("php-1")
        self.assertEqual(sorted(t.rcpts), ["alice@example.com", "bob@example.com",
                                           "carol@example.com", "dave@example.com"])
        self.assertFalse(header(t.body, "Bcc"))
        self.assertEqual(header(t.body, "From"), ["Web Server <root@%s>" % HOST])
        self.assertEqual(len(header(t.body, "Message-ID")), 1)
        self.assertEqual(len(header(t.body, "Date")), 1)

    def test_git_send_email(self):
        """git send-email: sendmail -i -f FROM RCPTS... (root may set any sender)"""
        msg = (b"From: Dev <dev@example.org>\nTo: list@example.com\nCc: maint@example.com\n"
               b"Subject: [PATCH] git-1\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
               b"Message-ID: <git-1@example.org>\n\n---\n.\n diff\n")
        r = self.run_sendmail(["-i", "-f", "dev@example.org", "list@example.com",
                               "maint@example.com"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("git-1")
        self.assertEqual(t.mail, "dev@example.org")
        self.assertEqual(sorted(t.rcpts), ["list@example.com", "maint@example.com"])
        self.assertEqual(header(t.body, "Message-ID"), ["<git-1@example.org>"])
        self.assertEqual(header(t.body, "Date"), ["Mon, 1 Jan 2024 00:00:00 +0000"])
        self.assertFalse(header(t.body, "X-Authentication-Warning"))

    def test_git_send_email_t(self):
        """git send-email with sendmailcmd 'sendmail -t': sendmail -i -t -f FROM"""
        msg = b"From: dev@example.org\nTo: list@example.com\nSubject: git-2\n\ngit-2\n"
        r = self.run_sendmail(["-i", "-t", "-f", "dev@example.org"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("git-2")
        self.assertEqual((t.mail, t.rcpts), ("dev@example.org", ["list@example.com"]))

    def test_mailx(self):
        """bsd-mailx: sendmail -i -- RCPT and sendmail -oi -- RCPT, bare user qualified"""
        for argv, marker in ((["-i", "--", "mx1@example.com"], "mailx-1"),
                             (["-oi", "--", "localuser"], "mailx-2")):
            msg = ("To: x\nSubject: %s\n\n%s\n" % (marker, marker)).encode()
            r = self.run_sendmail(argv, msg, self.d)
            self.assertEqual(r.returncode, 0, r.stderr)
            t = self.one(marker)
            self.assertEqual(t.rcpts, [argv[-1] if "@" in argv[-1] else "localuser@" + HOST])

    def test_mutt(self):
        """mutt: sendmail -oem -oi -- RCPTS"""
        msg = b"From: me@example.org\nTo: a@example.com\nSubject: mutt-1\n\nmutt-1\n"
        r = self.run_sendmail(["-oem", "-oi", "--", "a@example.com", "b@example.com"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("mutt-1")
        self.assertEqual(sorted(t.rcpts), ["a@example.com", "b@example.com"])

    def test_subcommand_form(self):
        """`impetus -c FILE sendmail ...` is the same command"""
        r = subprocess.run([impetus_path(), "-c", self.d.conf_path, "sendmail", "-oi", "--",
                            "sub@example.com"], input=b"Subject: sub-1\n\nsub-1\n",
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.one("sub-1").rcpts, ["sub@example.com"])

    def test_dsn_options(self):
        """-N, -R, -V reach the daemon as NOTIFY, RET, ENVID (and go downstream)"""
        msg = b"Subject: dsn-1\n\ndsn-1\n"
        r = self.run_sendmail(["-i", "-N", "success,failure", "-R", "hdrs", "-V", "env42",
                               "x@example.com"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("dsn-1")
        self.assertIn("RET=HDRS", t.mail_params.upper())
        self.assertIn("ENVID=ENV42", t.mail_params.upper())
        self.assertIn("NOTIFY=SUCCESS,FAILURE", str(t.rcpt_params).upper())

    def test_dot_ends_input_without_i(self):
        """without -i a lone '.' line ends the message, as sendmail reads stdin"""
        msg = b"Subject: dot-1\n\ndot-1 kept\n.\nnot-sent\n"
        r = self.run_sendmail(["y@example.com"], msg, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("dot-1")
        self.assertNotIn(b"not-sent", t.body)

    def test_no_header_input(self):
        """`echo text | sendmail user`: a header is made, the text is the body"""
        r = self.run_sendmail(["z@example.com"], b"bare-1 line\n", self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("bare-1")
        gecos = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0]
        want = "%s <root@%s>" % (gecos, HOST) if gecos else "root@" + HOST
        self.assertEqual(header(t.body, "From"), [want])
        self.assertIn(b"\r\n\r\nbare-1 line\r\n", t.body)

    def test_bs_dialogue(self):
        """-bs: an SMTP dialogue on stdin/stdout, relayed to the daemon"""
        dialogue = (b"EHLO client.test\r\nMAIL FROM:<bs@example.org>\r\n"
                    b"RCPT TO:<bs-rcpt@example.com>\r\nDATA\r\n"
                    b"Subject: bs-1\r\n\r\nbs-1\r\n.\r\nQUIT\r\n")
        r = self.run_sendmail(["-bs"], dialogue, self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for code in ("220 ", "250 ", "354 ", "221 "):
            self.assertIn("\n" + code if code != "220 " else code, out)
        t = self.one("bs-1")
        self.assertEqual((t.mail, t.rcpts), ("bs@example.org", ["bs-rcpt@example.com"]))

    def test_verbose(self):
        """-v prints the dialogue"""
        r = self.run_sendmail(["-v", "-i", "v@example.com"], b"Subject: v-1\n\nv-1\n", self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b">>> MAIL FROM:<root@" + HOST.encode() + b">", r.stderr)
        self.assertIn(b"<<< 250", r.stderr)
        self.one("v-1")

    def test_usage_errors(self):
        """unknown option, missing argument, no recipient: EX_USAGE (64), nothing sent"""
        for argv in (["-Q"], ["-f"], ["-i"], ["-B", "9BIT", "a@example.com"],
                     ["-N", "sometimes", "a@example.com"]):
            r = self.run_sendmail(argv, b"Subject: usage-1\n\nusage-1\n", self.d)
            self.assertEqual(r.returncode, 64, (argv, r.stderr))
            self.assertTrue(r.stderr.startswith(b"sendmail: "), r.stderr)
        time.sleep(0.5)
        self.assertFalse([t for t in self.sink.transactions if b"usage-1" in t.body])

    def test_refused_recipient(self):
        """a recipient the daemon refuses with 5xx: EX_NOUSER (67), named on stderr, nothing sent"""
        r = self.run_sendmail(["-i", "ok@example.com", "bad@@example.com"],
                              b"Subject: refused-1\n\nrefused-1\n", self.d)
        self.assertEqual(r.returncode, 67, r.stderr)
        self.assertRegex(r.stderr.decode(), r"^sendmail: recipient <bad@@example.com>: 5\d\d ")
        time.sleep(0.5)
        self.assertFalse([t for t in self.sink.transactions if b"refused-1" in t.body])
        self.assertFalse(os.listdir(os.path.join(self.d.spool_dir, "pickup")) != ["bad"])

    def test_f_by_ordinary_user(self):
        """-f by nobody: X-Authentication-Warning, as sendmail adds it"""
        if shutil.which("setpriv") is None or os.geteuid() != 0:
            self.skipTest("needs root and setpriv to run as nobody")
        os.chmod(self.d.tmp, 0o755)
        os.chmod(self.d.conf_path, 0o644)
        os.chmod(self.tmp, 0o755)
        r = self.run_sendmail(["-i", "-f", "forged@example.org", "w@example.com"],
                              b"Subject: warn-1\n\nwarn-1\n", self.d, user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("warn-1")
        self.assertEqual(t.mail, "forged@example.org")
        self.assertEqual(header(t.body, "X-Authentication-Warning"),
                         ["%s: nobody set sender to forged@example.org using -f" % HOST])
        # Its own address needs no warning.
        r = self.run_sendmail(["-i", "-f", "nobody", "w@example.com"],
                              b"Subject: warn-2\n\nwarn-2\n", self.d, user="nobody")
        self.assertEqual(r.returncode, 0, r.stderr)
        t = self.one("warn-2")
        self.assertEqual(t.mail, "nobody@" + HOST)
        self.assertFalse(header(t.body, "X-Authentication-Warning"))


class SendmailDownTest(Base):
    """The daemon is down: the pickup directory keeps the message."""

    def pickup_files(self, d):
        p = os.path.join(d.spool_dir, "pickup")
        return sorted(f for f in os.listdir(p)
                      if not f.startswith(".") and os.path.isfile(os.path.join(p, f)))

    def test_down_then_up_exactly_once(self):
        """exit 0, file in pickup, daemon starts, the sink gets it once, R line protocol sendmail"""
        d = self.daemon()
        d.stop()
        msg = b"Subject: down-1\n\ndown-1\n"
        r = self.run_sendmail(["-i", "-N", "never", "down@example.com"], msg, d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout + r.stderr, b"")
        files = self.pickup_files(d)
        self.assertEqual(len(files), 1, files)
        with open(os.path.join(d.spool_dir, "pickup", files[0]), "rb") as f:
            text = f.read()
        self.assertTrue(text.startswith(b"IMPETUS-PICKUP 1\nuid: 0\nsender: root@" + HOST.encode()))
        self.assertIn(b"\nrcpt: down@example.com\nnotify: never\n\n", text)
        d.start()
        t = self.one("down-1")
        self.assertEqual((t.mail, t.rcpts), ("root@" + HOST, ["down@example.com"]))
        self.assertIn("NOTIFY=NEVER", str(t.rcpt_params).upper())
        lines = d.wait_log("mainlog", lambda l: l.split("@")[4:5] == ["R"]
                           and "down" in l.split("@")[5:6])
        self.assertEqual(lines[0].split("@")[11], "sendmail", lines[0])
        wait_until(lambda: not self.pickup_files(d), what="the pickup file to go")
        # A restart finds nothing more to import.
        d.stop()
        d.start()
        time.sleep(1.5)
        self.assertEqual(len([t for t in self.sink.transactions if b"down-1" in t.body]), 1)

    def test_tempfail_goes_to_pickup(self):
        """a 4xx from the listener: the message waits in pickup (exit 0), then is delivered"""
        d = self.daemon(start=False)
        fake = Sink(rcpt_reply=lambda addr: "451 4.3.0 try later")
        fake.start()
        self.addCleanup(fake.stop)
        conf = os.path.join(self.tmp, "fake.conf")
        with open(conf, "w") as f:
            f.write('Spoolbase = "%s"\nHostname = "%s"\nESMTP_Listener {\n'
                    '  Listen "127.0.0.1:%d" {\n  }\n}\n' % (d.spool_dir, HOST, fake.port))
        r = self.run_sendmail(["-i", "-C", conf, "temp@example.com"],
                              b"Subject: temp-1\n\ntemp-1\n", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.pickup_files(d)), 1)
        self.assertFalse(fake.transactions)
        d.start()
        self.assertEqual(self.one("temp-1").rcpts, ["temp@example.com"])

    def test_bs_without_daemon(self):
        """-bs with no daemon: 421 on stdout, EX_TEMPFAIL (75)"""
        d = self.daemon(start=False)
        r = self.run_sendmail(["-bs"], b"EHLO x\r\nQUIT\r\n", d)
        self.assertEqual(r.returncode, 75, r.stderr)
        self.assertTrue(r.stdout.startswith(b"421 4.3.2 " + HOST.encode()), r.stdout)

    def test_never_started(self):
        """no daemon ever ran: sendmail makes the pickup directory; the first start imports"""
        d = self.daemon(start=False)
        r = self.run_sendmail(["-t", "-i"], b"To: first@example.com\nSubject: first-1\n\nfirst-1\n", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.pickup_files(d)), 1)
        d.start()
        t = self.one("first-1")
        self.assertEqual(t.rcpts, ["first@example.com"])

    def test_bad_file_moved_aside(self):
        """a malformed pickup file goes to bad/ with a paniclog line; the good one is delivered"""
        d = self.daemon()
        d.stop()
        r = self.run_sendmail(["-i", "good@example.com"], b"Subject: good-1\n\ngood-1\n", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        bad = os.path.join(d.spool_dir, "pickup", "0000-garbage")
        with open(bad, "wb") as f:
            f.write(b"IMPETUS-PICKUP 1\nsender: a@b\nrcpt: <evil>\n\nSubject: x\n\nx\n")
        d.start()
        self.one("good-1")
        wait_until(lambda: os.path.exists(os.path.join(d.spool_dir, "pickup", "bad",
                                                     "0000-garbage")), what="bad/0000-garbage")
        self.assertFalse(os.path.exists(bad))
        d.wait_log("paniclog", lambda l: "pickup file=0000-garbage moved to bad/" in l
                   and "bad recipient" in l)
        # And while running: a new bad file is found by the periodic scan.
        with open(os.path.join(d.spool_dir, "pickup", "later"), "wb") as f:
            f.write(b"not a pickup file\n")
        d.wait_log("paniclog", lambda l: "pickup file=later moved to bad/" in l)
        d.assert_alive()

    def test_crash_between_spool_and_unlink(self):
        """the file back after a kill -9 (as if the unlink never happened): delivered once"""
        d = self.daemon(hold=True)	# delivery fails: the message stays live
        d.stop()
        r = self.run_sendmail(["-i", "crash@example.com"], b"Subject: crash-1\n\ncrash-1\n", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        name = self.pickup_files(d)[0]
        path = os.path.join(d.spool_dir, "pickup", name)
        with open(path, "rb") as f:
            saved = f.read()
        d.start()
        d.wait_log("mainlog", lambda l: l.split("@")[4:5] == ["R"])
        wait_until(lambda: not os.path.exists(path), what="the pickup file to go")
        d.kill9()
        with open(path, "wb") as f:
            f.write(saved)
        d.global_text = d.global_text.replace("127.0.0.1:%d" % d_dead_port(),
                                              "127.0.0.1:%d" % self.sink.port)
        d.write_config()
        d.start()
        self.one("crash-1")
        d.wait_log("paniclog", lambda l: "pickup file=%s already spooled" % name in l)
        wait_until(lambda: not os.path.exists(path), what="the restored file to go")
        time.sleep(1.5)
        self.assertEqual(len([t for t in self.sink.transactions if b"crash-1" in t.body]), 1)


if __name__ == "__main__":
    main()
