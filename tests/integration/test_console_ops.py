"""
test_console_ops.py - the console's operations commands (docs/console.md,
"Operations commands")

Black-box, through the real `impetus` tool and the real daemon:

- config show: the value in force and its source (default, global, a
  Domain, ESMTP_Listener), text and JSON; a bad option or scope is an
  error; config reload picks up a changed file (config show shows the new
  value), and a broken file gives the error with file:line:col while the
  old value stays in force;
- reopen logs: after the paniclog is renamed away (rotation), the daemon
  writes a new one;
- trace smtp: off by default; on (for every peer, or for 127.0.0.1) puts
  an inbound session's state changes in the paniclog; on for another IP,
  and off, do not;
- threads, memory, paniclog [N] in text and JSON, and their bad input;
- dig and dns_cache through the daemon's own resolver against dnsmasq
  (tests/integration/dnsfixture.py): MX, A, AAAA, NXDOMAIN; a request
  sent behind a dig on the same connection is answered after it; a client
  that disconnects while its dig waits harms nothing (the sanitizer build
  checks the handle is freed, not used);
- shutdown answers, then the daemon exits 0;
- after every bad input the daemon still answers.
"""

import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from dnsfixture import DnsServer  # noqa: E402
from test_console import read_reply  # noqa: E402

CONTROL = 'Control_Listener {\n  Listen "./control" { File_Mode = 0600 }\n}'


class ConsoleOps(harness.DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = None
        try:
            cls.dns = DnsServer(
                mx=[("dom.test", "mx1.dom.test", 10), ("two.test", "mx1.dom.test", 10)],
                hosts={"mx1.dom.test": ["127.0.0.1", "::1"], "v4.test": ["192.0.2.7"]},
                timeout=["slow.test"])
            cls.dns.start()
        except Exception as e:  # dnsmasq missing: the dig tests say so
            cls.dns_error = e
            cls.dns = None

    @classmethod
    def tearDownClass(cls):
        if cls.dns:
            cls.dns.close()
        super().tearDownClass()

    # -- helpers ---------------------------------------------------------------

    def daemon(self, extra="", dns=False, **kw):
        parts = [CONTROL, "Retry_Interval = 600",
                 'Domain "slow.example" { Retry_Interval = 900 }']
        if dns:
            parts.append('DNS_Servers = ( "%s" )' % self.dns.servers)
        if extra:
            parts.append(extra)
        d = self.new_daemon(global_text="\n".join(parts), relay_hosts=("127.0.0.0/8",), **kw)
        d.control = os.path.join(d.tmp, "control")
        return d

    def tool(self, d, *args):
        """tool - `impetus -s SOCK args...`: (exit code, stdout, stderr)."""
        import subprocess
        env = dict(os.environ)
        env.pop("IMPETUS_CONTROL", None)
        p = subprocess.run([harness.impetus_path(), "-s", d.control] + list(args),
                           capture_output=True, env=env, timeout=60, cwd=d.tmp)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def ok(self, d, *args):
        rc, out, err = self.tool(d, *args)
        self.assertEqual(rc, 0, "impetus %s failed: %s" % (" ".join(args), err))
        self.assertEqual(err, "")
        return out

    def js(self, d, *args):
        return json.loads(self.ok(d, *(list(args) + ["--json"])))

    def bad(self, d, *args, want=None):
        """bad - the command fails with an error on stderr (matching want), and the daemon serves on."""
        rc, out, err = self.tool(d, *args)
        self.assertNotEqual(rc, 0, "impetus %s should fail; said %r" % (" ".join(args), out))
        self.assertEqual(out, "")
        self.assertTrue(err.strip(), "no error message for %r" % (args,))
        if want:
            self.assertRegex(err, want)
        d.assert_alive()
        self.assertIn("impetusd", self.ok(d, "version"))
        return err

    def session(self, d):
        """session - one inbound SMTP session from 127.0.0.1: EHLO, QUIT."""
        s = d.smtp()
        try:
            s.ehlo("client.test")
            s.quit()
        finally:
            s.close()

    # -- config -----------------------------------------------------------------

    def test_config_show_and_reload(self):
        d = self.daemon(extra="\n".join([
            'Module_Path = ( "%s" )' % harness.modules_dir(), "opendkim_sign = true",
            'Domain "nosign.test" { opendkim_sign = false }',
            'opendkim "opendkim1" {\n  headerlist = ( "From" )\n'
            '  key = "/nonexistent/%{d}/%{s}.key"\n'
            '  dkim_domain "a.test" { selector = "s1" }\n}']))
        out = self.ok(d, "config", "show", "retry_interval")
        self.assertRegex(out, r"^Retry_Interval = 600    # global, %s:\d+\n$" % re.escape(d.conf_path))
        out = self.ok(d, "config", "show", "Retry_Interval", "domain", "slow.example")
        self.assertRegex(out, r'^Retry_Interval = 900    # Domain "slow.example", .*:\d+\n$')
        # A domain with no stanza of its own falls back to global.
        self.assertIn("# global", self.ok(d, "config", "show", "Retry_Interval", "domain", "x.test"))
        self.assertEqual(self.ok(d, "config", "show", "Max_DNS_TTL"),
                         "Max_DNS_TTL = 86400    # default\n")
        listen = self.ok(d, "config", "show", "Relay_Hosts", "listener", "127.0.0.1:%d" % d.port)
        self.assertRegex(listen, r'^Relay_Hosts = .*127\.0\.0\.0/8.*# ESMTP_Listener Listen "127\.0\.0\.1:%d"'
                         % d.port)
        j = self.js(d, "config", "show", "Retry_Interval", "domain", "slow.example")
        self.assertEqual((j["option"], j["value"], j["source"], j["file"], j["domain"]),
                         ("Retry_Interval", "900", 'Domain "slow.example"', d.conf_path,
                          "slow.example"))
        self.assertGreater(j["line"], 0)
        j = self.js(d, "config", "show", "Max_DNS_TTL")
        self.assertEqual((j["source"], j["file"]), ("default", None))

        # A module's scoped option: as written, where written.
        out = self.ok(d, "config", "show", "opendkim_sign", "domain", "nosign.test")
        self.assertRegex(out, r"^opendkim_sign = false    # Domain, %s:\d+ \(a module's option\)\n$"
                         % re.escape(d.conf_path))
        self.assertIn("opendkim_sign = true    # global",
                      self.ok(d, "config", "show", "opendkim_sign"))
        j = self.js(d, "config", "show", "opendkim_sign", "domain", "nosign.test")
        self.assertEqual((j["option"], j["value"], j["source"], j["module_option"]),
                         ("opendkim_sign", "false", "Domain", True))
        self.bad(d, "config", "show", "Retry_Intervall", want=r'unknown option "Retry_Intervall" '
                 r'\(did you mean "Retry_Interval"\?\)')
        self.bad(d, "config", "show", want=r"usage: config show OPTION")
        self.bad(d, "config", "show", "Retry_Interval", "domain", want=r'unexpected "domain"')
        self.bad(d, "config", "show", "Retry_Interval", "binding", "nosuch",
                 want=r'no Binding "nosuch"')
        self.bad(d, "config", "show", "Spoolbase", "domain", "x.test", want=r"not a binding or domain")
        self.bad(d, "config", "show", "Relay_Hosts", "listener", "10.9.9.9:25",
                 want=r'no ESMTP_Listener Listen "10.9.9.9:25"')
        self.bad(d, "config", want=r"usage: config reload \| config show")
        self.bad(d, "config", "reload", "now", want=r"usage: config reload")

        # A changed file: config reload applies it.
        d.global_text = d.global_text.replace("Retry_Interval = 600", "Retry_Interval = 1234")
        d.write_config()
        self.assertEqual(self.ok(d, "config", "reload"),
                         "Configuration reloaded from %s\n" % d.conf_path)
        self.assertIn("Retry_Interval = 1234 ", self.ok(d, "config", "show", "Retry_Interval"))
        d.wait_log("paniclog", "reload configuration=")
        # JSON form of a reload.
        self.assertEqual(self.js(d, "config", "reload"),
                         {"reloaded": True, "configuration": d.conf_path})

        # A broken file: the error with file:line:col, the old value stays.
        good = d.config()
        d.write_config(good + "\nRetry_Interval_Typo = 5\n")
        err = self.bad(d, "config", "reload",
                       want=r"config reload failed, the running configuration is kept: .*%s:\d+:\d+: "
                       % re.escape(d.conf_path))
        self.assertIn("Retry_Interval_Typo", err)
        self.assertIn("Retry_Interval = 1234 ", self.ok(d, "config", "show", "Retry_Interval"))
        d.write_config(good)

    # -- logs ---------------------------------------------------------------------

    def test_reopen_logs(self):
        d = self.daemon()
        panic = os.path.join(d.log_dir, "paniclog")
        os.rename(panic, panic + ".1")
        out = self.ok(d, "reopen", "logs")
        self.assertRegex(out, r"(?m)^  paniclog +%s$" % re.escape(panic))
        self.assertTrue(os.path.exists(panic), "no new paniclog after reopen logs")
        d.wait_log("paniclog", "reopen logs console=1")
        j = self.js(d, "reopen", "logs")
        self.assertEqual([r["log"] for r in j["reopened"]],
                         ["mainlog", "bouncelog", "rejectlog", "paniclog"])
        self.assertEqual(j["reopened"][3]["path"], panic)
        self.bad(d, "reopen", want=r"usage: reopen logs")
        self.bad(d, "reopen", "everything", want=r"usage: reopen logs")

    def test_paniclog(self):
        d = self.daemon()
        for i in range(30):
            self.ok(d, "trace", "smtp", "off")	# each writes one paniclog line
        lines = d.paniclog()
        out = self.ok(d, "paniclog")
        got = out.splitlines()
        self.assertEqual(len(got), 20)
        self.assertEqual(got[-1], d.paniclog()[-1])
        got = self.ok(d, "paniclog", "3").splitlines()
        self.assertEqual(got, d.paniclog()[-3:])
        self.assertTrue(all("trace smtp off" in l for l in got), got)
        # More than there are: all of them.
        self.assertEqual(self.ok(d, "paniclog", "10000").splitlines(), d.paniclog())
        j = self.js(d, "paniclog", "2")
        self.assertEqual(j["path"], os.path.join(d.log_dir, "paniclog"))
        self.assertEqual(j["lines"], d.paniclog()[-2:])
        self.assertGreater(len(lines), 30)
        for arg in ("abc", "0", "-5", "10001", "3x", "99999999999999999999"):
            self.bad(d, "paniclog", arg, want=r"paniclog: N must be a number from 1 to 10000")
        self.bad(d, "paniclog", "1", "2", want=r"usage: paniclog \[N\]")

    # -- trace smtp --------------------------------------------------------------

    def traced(self, d):
        return [l for l in d.paniclog() if " smtp state " in l]

    def test_trace_smtp(self):
        d = self.daemon()
        self.assertEqual(self.ok(d, "trace", "smtp"), "SMTP tracing is off\n")
        self.session(d)
        self.assertEqual(self.traced(d), [])

        out = self.ok(d, "trace", "smtp", "on", "127.0.0.1")
        self.assertIn("SMTP tracing is on (inbound and outbound) for peer 127.0.0.1", out)
        self.assertEqual(self.js(d, "trace", "smtp"),
                         {"trace": "smtp", "inbound": True, "outbound": True, "ip": "127.0.0.1"})
        self.session(d)
        first = d.wait_log("paniclog", " smtp state ")
        self.assertTrue(any("-> " in l for l in first), first)
        n = len(self.traced(d))

        # A filter on another peer: this session is not traced.
        self.ok(d, "trace", "smtp", "on", "192.0.2.55")
        self.session(d)
        time.sleep(0.3)
        self.assertEqual(len(self.traced(d)), n)

        # On for every peer, then off.
        self.assertIn("for every peer", self.ok(d, "trace", "smtp", "on"))
        self.session(d)
        d.wait_log("paniclog", " smtp state ", count=n + 1)
        n = len(self.traced(d))
        self.assertEqual(self.js(d, "trace", "smtp", "off"),
                         {"trace": "smtp", "inbound": False, "outbound": False, "ip": None})
        self.session(d)
        time.sleep(0.3)
        self.assertEqual(len(self.traced(d)), n)

        self.bad(d, "trace", "smtp", "on", "not-an-ip", want=r'"not-an-ip" is not an IP address')
        self.bad(d, "trace", "smtp", "on", "999.1.1.1", want=r"is not an IP address")
        self.bad(d, "trace", "smtp", "off", "127.0.0.1", want=r"takes no IP")
        self.bad(d, "trace", "smtp", "maybe", want=r"usage: trace smtp")
        self.bad(d, "trace", "dns", want=r"usage: trace smtp")
        self.bad(d, "trace", want=r"usage: trace smtp")
        # IPv6 filters are accepted and shown in canonical form.
        self.assertEqual(self.js(d, "trace", "smtp", "on", "2001:DB8::0:1")["ip"], "2001:db8::1")

    # -- threads, memory -----------------------------------------------------------

    def test_threads_and_memory(self):
        d = self.daemon()
        self.session(d)	# work for the loops to have handled
        out = self.ok(d, "threads")
        self.assertRegex(out, r"^Name +Type +Threads +Queued +Running +Handled +Busy\(s\) +CPU\(s\)\n")
        for name, kind in (("scheduler", "loop"), ("io0", "loop"), ("spool", "loop"),
                           ("CPU", "pool"), ("IO", "pool")):
            self.assertRegex(out, r"(?m)^%s +%s +\d+ +\d+ " % (name, kind))
        j = self.js(d, "threads")["threads"]
        by = {t["name"]: t for t in j}
        self.assertTrue(by["scheduler"]["running"])
        self.assertGreaterEqual(by["scheduler"]["cpu_ms"], 0)
        self.assertGreater(sum(t["handled"] for t in j if t["type"] == "loop"), 0)
        self.assertEqual(by["CPU"]["type"], "pool")
        self.assertGreaterEqual(by["IO"]["threads"], 1)
        self.bad(d, "threads", "now", want=r"threads takes no arguments")

        out = self.ok(d, "memory")
        m = re.search(r"Resident \(RSS\): +(\d+) kB", out)
        self.assertTrue(m and int(m.group(1)) > 0, out)
        self.assertIn("In use:", out)
        j = self.js(d, "memory")
        self.assertGreater(j["rss_kb"], 1000)
        self.assertGreaterEqual(j["peak_rss_kb"], j["rss_kb"])
        # A sanitizer build's allocator is not glibc's: mallinfo2 reads zeros there.
        if j["heap_arena_bytes"] or not os.environ.get("ASAN_OPTIONS"):
            self.assertGreater(j["heap_in_use_bytes"], 0)
            self.assertGreater(j["heap_arena_bytes"], 0)
        self.assertEqual(j["queued_messages"], 0)
        self.bad(d, "memory", "all", want=r"memory takes no arguments")

    # -- dig, dns_cache ---------------------------------------------------------------

    def need_dns(self):
        if self.dns is None:
            self.skipTest("dnsmasq fixture unavailable: %s" % getattr(self, "dns_error", "?"))

    def test_dig_and_dns_cache(self):
        self.need_dns()
        d = self.daemon(dns=True)
        out = self.ok(d, "dig", "dom.test")
        self.assertRegex(out, r"^dom\.test MX: ttl \d+\n +10 mx1\.dom\.test 127\.0\.0\.1 ::1\n$")
        # Asked again: from the cache.
        self.assertIn("(from the cache)", self.ok(d, "dig", "dom.test"))
        self.assertEqual(self.ok(d, "dig", "mx1.dom.test", "A").splitlines()[1].split(),
                         ["mx1.dom.test", "127.0.0.1"])
        self.assertEqual(self.ok(d, "dig", "mx1.dom.test", "aaaa").splitlines()[1].split(),
                         ["mx1.dom.test", "::1"])
        out = self.ok(d, "dig", "nosuch.test")
        self.assertRegex(out, r"^nosuch\.test MX: permfail \(")
        j = self.js(d, "dig", "v4.test", "A")
        self.assertEqual((j["name"], j["type"], j["status"]), ("v4.test", "A", "ok"))
        self.assertEqual(j["hosts"][0]["addresses"], ["192.0.2.7"])
        j = self.js(d, "dig", "dom.test")
        self.assertTrue(j["cached"])
        self.assertEqual(j["hosts"][0]["host"], "mx1.dom.test")

        out = self.ok(d, "dns_cache")
        self.assertRegex(out, r"^DNS cache: \d+ entries; \d+ requests")
        self.assertRegex(out, r"(?m)^MX dom\.test ttl=\d+ ok$")
        self.assertRegex(out, r"(?m)^MX nosuch\.test ttl=\d+ permfail: ")
        j = self.js(d, "dns_cache")
        names = {(e["type"], e["name"]) for e in j["cache"]}
        self.assertIn(("MX", "dom.test"), names)
        self.assertIn(("host", "v4.test"), names)
        self.assertEqual(j["entries"], len(j["cache"]))
        self.assertGreater(j["queries"], 0)

        self.bad(d, "dig", want=r"usage: dig DOMAIN")
        self.bad(d, "dig", "a..b", want=r'"a\.\.b" is not a domain name')
        self.bad(d, "dig", "dom.test", "TXT", want=r'unknown type "TXT"')
        self.bad(d, "dns_cache", "flush", want=r"dns_cache takes no arguments")

        # Pipelined behind a lookup that has to go to the server: answers in order.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control)
        s.sendall(b"dig two.test\nversion\npid --json\n")
        st, body = read_reply(s)
        self.assertEqual(st, "OK")
        self.assertTrue(body.startswith(b"two.test MX: ttl"), body)
        st, body = read_reply(s)
        self.assertTrue(body.startswith(b"impetusd "), body)
        st, body = read_reply(s)
        self.assertEqual(json.loads(body)["pid"], d.proc.pid)
        s.close()

        # Half-closed after its requests (printf 'dig x\nversion\n' | nc -N): the
        # lookup that goes to the server is still answered, then the rest, then EOF.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.control)
        s.sendall(b"dig v4.test\nversion\n")
        s.shutdown(socket.SHUT_WR)
        reply = read_reply(s)
        self.assertIsNotNone(reply, "no answer to a dig sent before a half-close")
        self.assertEqual(reply[0], "OK")
        self.assertTrue(reply[1].startswith(b"v4.test MX: ttl"), reply[1])
        st, body = read_reply(s)
        self.assertTrue(body.startswith(b"impetusd "), body)
        self.assertIsNone(read_reply(s))
        s.close()

        # A client that leaves while its dig waits (the server never answers).
        for _ in range(3):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.control)
            s.sendall(b"dig a.slow.test\nversion\n")
            time.sleep(0.05)
            s.close()
        self.assertIn("impetusd", self.ok(d, "version"))
        d.assert_alive()
        # The daemon stops with those lookups still in flight: cancelled, freed, exit 0.
        self.assertEqual(d.stop(), 0)

    # -- shutdown -------------------------------------------------------------------

    def test_shutdown(self):
        d = self.daemon()
        self.bad(d, "shutdown", "now", want=r"shutdown takes no arguments")
        out = self.ok(d, "shutdown")
        self.assertRegex(out, r"^Shutting down \(pid %d\)" % d.proc.pid)
        self.assertEqual(d.proc.wait(30), 0)
        d.returncode = 0
        d.proc = None
        d.check_sanitizers()
        self.assertTrue(any("shutdown console=shutdown" in l for l in d.paniclog()))
        self.assertTrue(any("shutdown complete" in l for l in d.paniclog()))

    def test_shutdown_json(self):
        d = self.daemon()
        pid = d.proc.pid
        self.assertEqual(self.js(d, "shutdown"), {"shutdown": True, "pid": pid})
        self.assertEqual(d.proc.wait(30), 0)
        d.proc = None
        d.check_sanitizers()


if __name__ == "__main__":
    harness.main()
