"""
test_console_shell.py - `impetus` with no command: the interactive shell

Driven through a real pseudo-terminal (Python's pty), as an operator
types (docs/console.md, "The interactive shell"):

- the prompt comes; `pid` answers the daemon's pid; `vers<Tab>`
  completes to `version` and runs it; `sig<Tab>` completes a module's
  command (signing_stats, from the daemon's `help --json`); an unknown
  command prints its error and the shell goes on; `help` lists the
  commands and the shell's own quit; `quit` ends it with status 0; the
  history file ($IMPETUS_HISTORY) then holds the commands typed, and a
  second shell reads it (Up, Up brings back the line before quit);
- Ctrl-D ends it; a daemon that stops between two commands is reported
  and the shell goes on, and finds the daemon again once it is back;
- with stdin not a terminal, commands are read line by line, no prompt,
  exit status 1 when one failed.
"""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROMPT = b"impetus> "
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]|\r|\x07")


class Pty:
    """
    Pty - the shell on a pseudo-terminal: send keys, wait for output.
    Keys are typed only once libedit has put the terminal in raw mode
    (the pty pair shares its termios, so the master sees it): typed
    while a command runs, in canonical mode, a Ctrl-D is taken by the
    terminal driver and lost, as it would be for a person.
    """

    def __init__(self, argv, env):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.out = b""

    def expect(self, pattern, timeout=10):
        """expect - read until pattern (bytes regex) matches the output, ANSI codes removed."""
        deadline = time.monotonic() + timeout
        while True:
            clean = ANSI.sub(b"", self.out)
            m = re.search(pattern, clean)
            if m:
                self.out = b""
                return clean
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no %r within %d s; output: %r" % (pattern, timeout, clean))
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:	# EIO: the other end is closed
                    chunk = b""
                if not chunk:
                    raise AssertionError("shell ended waiting for %r; output: %r"
                                         % (pattern, clean))
                self.out += chunk

    def send(self, keys, timeout=10):
        """send - type keys once libedit has the terminal (raw mode: ICANON off)."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.master)[3] & termios.ICANON:
            if time.monotonic() > deadline:
                raise AssertionError("the shell never took the terminal (still canonical)")
            time.sleep(0.01)
        os.write(self.master, keys)

    def wait(self, timeout=10):
        """wait - the shell's exit status, reading its output meanwhile (a full terminal blocks)."""
        deadline = time.monotonic() + timeout
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                r, _, _ = select.select([self.master], [], [], 0.2)
                if r and not os.read(self.master, 4096):
                    break
        except OSError:
            pass
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


class ConsoleShell(harness.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.home = tempfile.mkdtemp(prefix="impetus-shell-")
        self.hist = os.path.join(self.home, "hist")

    def daemon(self):
        d = self.new_daemon(global_text='Control_Listener {\n  Listen "./control" { }\n}\n'
                            'Module_Path = ( "%s" )\nopendkim "o1" { headerlist = ( \"From\" ) }'
                            % harness.modules_dir())
        d.control = os.path.join(d.tmp, "control")
        return d

    def shell(self, d):
        env = dict(os.environ, HOME=self.home, IMPETUS_HISTORY=self.hist, TERM="xterm")
        env.pop("IMPETUS_CONTROL", None)
        p = Pty([harness.impetus_path(), "-s", d.control], env)
        self.addCleanup(p.close)
        return p

    def test_type_complete_error_quit_history(self):
        d = self.daemon()
        sh = self.shell(d)
        sh.expect(PROMPT)
        sh.send(b"pid\n")
        sh.expect(rb"\n%d\n.*%s" % (d.proc.pid, re.escape(PROMPT)))
        sh.send(b"vers\t")
        sh.expect(rb"version ")
        sh.send(b"\n")
        sh.expect(rb"impetusd \d+\.\d+\.\d+ \(module API [\d.]+\)\n.*%s" % re.escape(PROMPT))
        sh.send(b"sig\t\n")
        sh.expect(rb"signing_stats[^\n]*\n(.|\n)*%s" % re.escape(PROMPT))
        sh.send(b"nosuchcommand\n")
        sh.expect(rb"impetus: unknown command[^\n]*nosuchcommand(.|\n)*%s" % re.escape(PROMPT))
        sh.send(b"help\n")
        out = sh.expect(rb"quit, exit +leave the shell(.|\n)*%s" % re.escape(PROMPT))
        self.assertRegex(out, rb"\n  pid +\S")
        sh.send(b"pid\n")	# still answering after the error
        sh.expect(rb"\n%d\n.*%s" % (d.proc.pid, re.escape(PROMPT)))
        sh.send(b"quit\n")
        self.assertEqual(sh.wait(), 0)
        with open(self.hist, "rb") as f:
            hist = f.read()
        for cmd in (b"pid", b"version", b"nosuchcommand", b"help"):
            self.assertIn(cmd, hist)

        # A second shell reads the history: Up, Up brings back the line before quit (pid).
        sh = self.shell(d)
        sh.expect(PROMPT)
        sh.send(b"\x1b[A\x1b[A\n")
        sh.expect(rb"\n%d\n.*%s" % (d.proc.pid, re.escape(PROMPT)))
        sh.send(b"\x04")	# Ctrl-D on an empty line
        self.assertEqual(sh.wait(), 0)

    def test_daemon_goes_away(self):
        d = self.daemon()
        sh = self.shell(d)
        sh.expect(PROMPT)
        d.stop()
        sh.send(b"pid\n")
        sh.expect(rb"cannot connect to %s(.|\n)*no answer from the daemon(.|\n)*%s"
                  % (re.escape(d.control.encode()), re.escape(PROMPT)))
        d.start()
        sh.send(b"pid\n")
        sh.expect(rb"\n%d\n.*%s" % (d.proc.pid, re.escape(PROMPT)))
        sh.send(b"exit\n")
        self.assertEqual(sh.wait(), 0)

    def test_no_daemon_at_start(self):
        env = dict(os.environ, HOME=self.home, TERM="xterm")
        sh = Pty([harness.impetus_path(), "-s", os.path.join(self.home, "nothing")], env)
        self.addCleanup(sh.close)
        sh.expect(rb"cannot connect to")
        self.assertEqual(sh.wait(), 1)

    def test_commands_from_a_pipe(self):
        d = self.daemon()
        p = subprocess.run([harness.impetus_path(), "-s", d.control],
                           input="pid\n\nversion\nnosuchcommand\npid\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 1)
        self.assertNotIn("impetus>", p.stdout)
        self.assertRegex(p.stdout, r"^%d\nimpetusd \S+ \(module API [\d.]+\)\n%d\n$"
                         % (d.proc.pid, d.proc.pid))
        self.assertIn("nosuchcommand", p.stderr)
        p = subprocess.run([harness.impetus_path(), "-s", d.control], input="pid\nquit\npid\n",
                           capture_output=True, text=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (0, "%d\n" % d.proc.pid))


if __name__ == "__main__":
    unittest.main()
