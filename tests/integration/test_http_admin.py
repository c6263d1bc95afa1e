"""
test_http_admin.py - HTTP_Listener and the admin API, against the real daemon

Black-box, with real HTTP clients (http.client, urllib, curl) and
docs/http-api.md as the contract:

- every admin route answers the console command's JSON (200), and the
  documented errors: 404 for a domain or message that is not queued, 400
  for bad input (bad JSON, a bad field, a bad path), 405 for a wrong
  method; a command that answers later (dig) comes back, and a client
  that leaves while one is pending does not hurt the daemon;
- authentication: no key -> 401, a wrong key -> 401, the key raw, as
  Bearer or as HTTP Basic's password -> in; a read key cannot POST (403),
  an inject key cannot use the admin API (403); keys never reach the
  logs; without any API_Key only loopback clients are answered, and the
  paniclog says so at start-up;
- TLS on a Listen with TLS_Certificate/TLS_Key (Python's ssl);
- limits: a body past HTTP_Max_Body_Size -> 413, headers past
  HTTP_Max_Header_Size -> 400/431, HTTP_Max_Connections -> 503;
  keep-alive: several requests on one connection, and Connection: close
  with HTTP_Keep_Alive = false;
- start-up: a Listen that cannot be bound is fatal with a message naming
  it; configuration errors come with file:line:col;
- docs/openapi.yaml: every documented operation answers with its
  documented status and top-level keys, and every route of
  src/http/http_admin.c is documented.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from deliverykit import inject, wait_until  # noqa: E402

try:
    import yaml
except ImportError:  # python3-yaml (scripts/install-deps.sh)
    yaml = None

SENDER = "sender@example.org"
ADMIN_KEY = "adm-7f3c9b2e4d5a6f708192a3b4c5d6e7f8"
READ_KEY = "read-0a1b2c3d4e5f"
INJECT_KEY = "inj-99887766"


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def crypt_hash(key):
    """crypt_hash - a SHA-512 crypt(3) hash made by `openssl passwd -6`."""
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=key, capture_output=True,
                       text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl passwd failed: %s" % r.stderr)
    return r.stdout.strip()


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def non_loopback_ip():
    """non_loopback_ip - an address of this host other than loopback, or None."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("10.255.255.255", 9))	# no packet is sent: only picks a route
        ip = s.getsockname()[0]
        s.close()
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


class SlowDns:
    """
    SlowDns - a DNS server on a loopback UDP port that answers every query
    NXDOMAIN after `delay` seconds: commands that ask it (dig) answer later.
    """

    def __init__(self, delay=0.8):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.delay = delay
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                q, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            if len(q) < 12:
                continue
            threading.Timer(self.delay, self.answer, (q, peer)).start()

    def answer(self, q, peer):
        # The question back, QR + RD + RA, RCODE 3 (NXDOMAIN), no records.
        flags = 0x8000 | (q[2] << 8 & 0x0100) | 0x0080 | 3
        resp = q[:2] + flags.to_bytes(2, "big") + q[4:6] + b"\0\0\0\0\0\0" + q[12:]
        try:
            self.sock.sendto(resp, peer)
        except OSError:
            pass

    def close(self):
        self.stop = True
        self.thread.join(timeout=5)
        self.sock.close()


class Client:
    """Client - one keep-alive http.client connection with a key."""

    def __init__(self, port, key=None, tls=False, host="127.0.0.1", basic=False):
        if tls:
            self.conn = http.client.HTTPSConnection(host, port, timeout=20,
                                                    context=harness.client_tls_context())
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=20)
        self.key = key
        self.basic = basic

    def close(self):
        self.conn.close()

    def __del__(self):
        # The one-shot clients of the tests are closed when dropped, not left to the GC.
        self.conn.close()

    def req(self, method, path, body=None, headers=None):
        """req - (status, headers, parsed JSON or raw bytes)."""
        h = dict(headers or {})
        if self.key is not None:
            if self.basic:
                h["Authorization"] = "Basic " + base64.b64encode(
                    ("api:" + self.key).encode()).decode()
            else:
                h["Authorization"] = self.key
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        try:
            doc = json.loads(data)
        except ValueError:
            doc = data
        return r.status, r, doc


def http_conf(port, keys=True, listen_extra="", tls_port=None, cert=None, key=None,
              listener_extra=""):
    text = "HTTP_Listener {\n"
    if listener_extra:
        text += "  %s\n" % listener_extra
    text += '  Listen "127.0.0.1:%d" { %s }\n' % (port, listen_extra)
    if tls_port:
        text += '  Listen "127.0.0.1:%d" {\n    TLS_Certificate = "%s"\n    TLS_Key = "%s"\n  }\n' % (
            tls_port, cert, key)
    if keys:
        text += '  API_Key "ops" { Hash = "%s" Role = admin }\n' % sha256_hex(ADMIN_KEY)
        text += '  API_Key "viewer" { Hash = "%s" }\n' % crypt_hash(READ_KEY)
        text += '  API_Key "injector" { Hash = "%s" Role = inject }\n' % sha256_hex(INJECT_KEY).upper()
    return text + "}\n"


class HttpAdmin(harness.DaemonTestCase):
    """One daemon with keys, a plain and a TLS Listen, and mail queued for example.com."""

    @classmethod
    def setUpClass(cls):
        cls.hport = harness.free_port()
        cls.tport = harness.free_port()
        cls.dns = SlowDns()
        d = harness.Daemon(tls=True, start=False, relay_domains=("example.com", "*.example.com"))
        d.global_text = (http_conf(cls.hport, tls_port=cls.tport, cert=d.cert, key=d.key) +
                         'DNS_Servers = ( "127.0.0.1:%d" )\n' % cls.dns.port)
        d.cert_for_http = d.cert
        d.cert = d.key = None	# the SMTP listener without STARTTLS
        d.write_config()
        try:
            d.start()
        except BaseException:
            d.cleanup(check=False)
            raise
        cls.d = d

    def queued(self, domain):
        """queued - inject a message to rcpt@domain and wait until the admin API shows it; its id."""
        mid = inject(self.d, SENDER, ["rcpt@" + domain], harness.make_message(marker=domain))
        wait_until(lambda: self.admin_get("/api/v1/messages/%s" % mid)[0] == 200, timeout=20,
                   what="message %s in the queue" % mid)
        return mid

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.dns.close()

    @classmethod
    def admin_get(cls, path):
        c = Client(cls.hport, ADMIN_KEY)
        try:
            return c.req("GET", path)
        finally:
            c.close()

    def admin(self, basic=False):
        c = Client(self.hport, ADMIN_KEY, basic=basic)
        self.addCleanup(c.close)
        return c

    def assertError(self, res, status, pattern):
        st, _, doc = res
        self.assertEqual(st, status, doc)
        self.assertIsInstance(doc, dict, doc)
        self.assertEqual(list(doc), ["errors"], doc)
        self.assertRegex(doc["errors"][0]["message"], pattern)

    # -- routes ---------------------------------------------------------------

    def test_read_routes(self):
        mid = self.queued("read.example.com")
        c = self.admin()
        st, r, doc = c.req("GET", "/api/v1/summary")
        self.assertEqual(st, 200, doc)
        self.assertEqual(r.getheader("Content-Type"), "application/json")
        self.assertGreaterEqual(doc["received"], 1)
        st, _, doc = c.req("GET", "/api/v1/mailq")
        self.assertEqual(st, 200, doc)
        self.assertIn("read.example.com", [q["domain"] for q in doc["queues"]])
        st, _, doc = c.req("GET", "/api/v1/bindings")
        self.assertEqual(st, 200, doc)
        self.assertIn("default", [b["binding"] for b in doc["bindings"]])
        st, _, doc = c.req("GET", "/api/v1/domains/read.example.com")
        self.assertEqual((st, doc["domain"]), (200, "read.example.com"), doc)
        self.assertEqual(doc["bindings"][0]["active"] + doc["bindings"][0]["delayed"], 1)
        st, _, doc = c.req("GET", "/api/v1/messages/%s" % mid)
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["id"].upper(), mid.upper())
        self.assertEqual(doc["recipients"][0]["recipient"], "rcpt@read.example.com")
        # Trailing slash and percent-encoding name the same resources.
        self.assertEqual(c.req("GET", "/api/v1/summary/")[0], 200)
        self.assertEqual(c.req("GET", "/api/v1/domains/read%2Eexample.com")[0], 200)

    def test_not_found_and_bad_input(self):
        c = self.admin()
        self.assertError(c.req("GET", "/api/v1/domains/nothing-queued.example"), 404,
                         "no queue for domain")
        self.assertError(c.req("GET", "/api/v1/messages/0123456789ABCDEF"), 404, "not queued")
        self.assertError(c.req("GET", "/api/v1/messages/xyz"), 400, "bad message id")
        self.assertError(c.req("POST", "/api/v1/domains/nothing-queued.example/flush"), 404,
                         "no queue")
        self.assertError(c.req("GET", "/api/v1/nosuch"), 404, "no such route")
        self.assertError(c.req("GET", "/index.html"), 404, "no such route")
        st, r, doc = c.req("DELETE", "/api/v1/summary")
        self.assertError((st, r, doc), 405, "not allowed")
        self.assertEqual(r.getheader("Allow"), "GET")
        self.assertError(c.req("GET", "/api/v1/domains/example.com/suspend"), 405, "allowed: POST")
        self.assertError(c.req("GET", "/api/v1/domains/%2e%2e"), 400, r"\.\.")
        self.assertError(c.req("GET", "/api/v1/domains/a%00b"), 400, "bad path")
        self.assertError(c.req("GET", "/api/v1/domains/a%zzb"), 400, "bad path")
        self.assertError(c.req("GET", "/api/v1/domains/" + "a" * 300), 400, "bad path")
        # POST /api/v1/commands: the body.
        self.assertError(c.req("POST", "/api/v1/commands", body="{bad"), 400, "bad JSON at line 1")
        self.assertError(c.req("POST", "/api/v1/commands", body=""), 400, "body is empty")
        self.assertError(c.req("POST", "/api/v1/commands", body="[1]"), 400, "JSON object")
        self.assertError(c.req("POST", "/api/v1/commands", body={"args": []}), 400,
                         "command: missing")
        self.assertError(c.req("POST", "/api/v1/commands", body={"command": "Pid!"}), 400,
                         "command: not a command name")
        self.assertError(c.req("POST", "/api/v1/commands", body={"command": "pid", "args": [1]}),
                         400, r"args\[0\]: not a string")
        self.assertError(c.req("POST", "/api/v1/commands", body={"command": "pid", "x": 1}),
                         400, 'unknown field "x"')
        self.assertError(c.req("POST", "/api/v1/commands",
                               body='{"command":"pid","command":"pid"}'), 400, "bad JSON")
        self.assertError(c.req("POST", "/api/v1/commands", body={"command": "nosuch"}), 400,
                         "unknown command")
        self.assertError(c.req("POST", "/api/v1/commands", body={"command": "pid",
                                                                 "args": ["x"]}),
                         400, "takes no arguments")
        # The connection is still good after all that.
        self.assertEqual(c.req("GET", "/api/v1/summary")[0], 200)

    def test_write_routes(self):
        self.queued("write.example.com")
        c = self.admin()
        wait_until(lambda: c.req("GET", "/api/v1/domains/write.example.com")[2]["bindings"][0]
                   ["delayed"] == 1, timeout=20, what="the message in the delayed queue")
        st, _, doc = c.req("POST", "/api/v1/domains/write.example.com/suspend")
        self.assertEqual((st, doc), (200, {"domain": "write.example.com", "suspended": True,
                                           "changed": True}))
        self.assertTrue(c.req("GET", "/api/v1/domains/write.example.com")[2]["suspended"])
        st, _, doc = c.req("POST", "/api/v1/domains/write.example.com/resume")
        self.assertEqual((st, doc["suspended"], doc["changed"]), (200, False, True))
        st, _, doc = c.req("POST", "/api/v1/domains/write.example.com/flush")
        self.assertEqual((st, doc["action"], doc["domain"], doc["recipients"]),
                         (200, "flush", "write.example.com", 1), doc)
        st, _, doc = c.req("POST", "/api/v1/commands", body={"command": "version"})
        self.assertEqual(st, 200, doc)
        self.assertIn("version", doc)
        st, _, doc = c.req("POST", "/api/v1/commands", body={"command": "help",
                                                             "args": ["pid"]})
        self.assertEqual((st, [x["name"] for x in doc["commands"]]), (200, ["pid"]))
        n = sum(1 for l in self.d.paniclog() if "reload configuration=" in l)
        st, _, doc = c.req("POST", "/api/v1/config/reload")
        self.assertEqual((st, doc["reloaded"]), (200, True), doc)
        self.assertEqual(sum(1 for l in self.d.paniclog() if "reload configuration=" in l), n + 1)
        # Still listening with the same keys after the reload.
        self.assertEqual(Client(self.hport, READ_KEY).req("GET", "/api/v1/summary")[0], 200)

    def test_fail_route(self):
        mid = self.queued("fail.example.com")
        c = self.admin()
        # Not while its delivery attempt (to a closed port) is under way: in the delayed queue.
        wait_until(lambda: c.req("GET", "/api/v1/domains/fail.example.com")[2]["bindings"][0]
                   ["delayed"] == 1, timeout=20, what="the message in the delayed queue")
        st, _, doc = c.req("POST", "/api/v1/domains/fail.example.com/fail")
        self.assertEqual((st, doc["action"], doc["recipients"]), (200, "fail", 1), doc)
        wait_until(lambda: c.req("GET", "/api/v1/messages/%s" % mid)[0] == 404, timeout=20,
                   what="the failed message to leave the queue")

    def test_deferred_command(self):
        """dig asks a DNS server that answers late: the request waits, then answers."""
        c = self.admin()
        t0 = time.monotonic()
        st, _, doc = c.req("POST", "/api/v1/commands", body={"command": "dig",
                                                             "args": ["nowhere.test"]})
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["name"], doc["status"]), ("nowhere.test", "permfail"), doc)
        self.assertGreater(time.monotonic() - t0, 0.6)	# it did wait for the resolver
        # A client that leaves while dig is pending: the daemon carries on.
        s = socket.create_connection(("127.0.0.1", self.hport), timeout=10)
        body = b'{"command":"dig","args":["gone.test"]}'
        s.sendall(b"POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: " +
                  ADMIN_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.3)
        s.close()
        self.assertEqual(c.req("GET", "/api/v1/summary")[0], 200)
        self.d.assert_alive()

    # -- authentication -------------------------------------------------------

    def test_wrong_key_flood(self):
        """
        Wrong keys are checked against the crypt(3) hash on the CPU pool: a
        flood of them gets 401 (or 503 past the concurrent checks), and
        meanwhile the admin API keeps answering a SHA-256 key.
        """
        statuses = []
        lock = threading.Lock()

        def wrong(i):
            for k in range(4):
                st = Client(self.hport, "wrong-%d-%d" % (i, k)).req("GET", "/api/v1/summary")[0]
                with lock:
                    statuses.append(st)
        threads = [threading.Thread(target=wrong, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        served = 0
        while any(t.is_alive() for t in threads):
            st, _, doc = self.admin().req("GET", "/api/v1/summary")
            self.assertEqual(st, 200, doc)
            served += 1
        for t in threads:
            t.join()
        self.assertEqual(len(statuses), 48)
        self.assertTrue(set(statuses) <= {401, 503}, statuses)
        self.assertIn(401, statuses)
        self.assertGreater(served, 0)
        # The crypt key still opens, then from the cache.
        for _ in range(2):
            st, _, doc = Client(self.hport, READ_KEY).req("GET", "/api/v1/summary")
            self.assertEqual(st, 200, doc)

    def test_auth(self):
        st, r, doc = Client(self.hport).req("GET", "/api/v1/summary")
        self.assertError((st, r, doc), 401, "API key is required")
        self.assertIn("Basic", r.getheader("WWW-Authenticate"))
        self.assertError(Client(self.hport, "wrong").req("GET", "/api/v1/summary"), 401,
                         "not valid")
        self.assertError(Client(self.hport, ADMIN_KEY + "x").req("GET", "/api/v1/summary"), 401,
                         "not valid")
        for bad in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic",
                    "Bearer", " ", "Basic " + base64.b64encode(b"u:" + ADMIN_KEY.encode()).decode()[:-2]):
            self.assertError(Client(self.hport).req("GET", "/api/v1/summary",
                                                    headers={"Authorization": bad}), 401, ".", )
        for key, basic in ((ADMIN_KEY, False), (ADMIN_KEY, True), (READ_KEY, False),
                           (READ_KEY, True)):
            self.assertEqual(Client(self.hport, key, basic=basic).req("GET", "/api/v1/summary")[0],
                             200, (key, basic))
        st, _, _ = Client(self.hport).req("GET", "/api/v1/summary",
                                          headers={"Authorization": "Bearer " + ADMIN_KEY})
        self.assertEqual(st, 200)
        # Roles: read may only GET; inject may not use the admin API at all.
        self.assertError(Client(self.hport, READ_KEY).req(
            "POST", "/api/v1/domains/example.com/suspend"), 403, 'key "viewer" \\(role read\\)')
        self.assertError(Client(self.hport, READ_KEY).req(
            "POST", "/api/v1/commands", body={"command": "pid"}), 403, "may not use")
        self.assertError(Client(self.hport, INJECT_KEY).req("GET", "/api/v1/summary"), 403,
                         "role inject")
        # No key, its hash or a wrong key in any log.
        time.sleep(0.2)
        logs = "".join(read_text(os.path.join(self.d.log_dir, f))
                       for f in os.listdir(self.d.log_dir)) + self.d.stderr()
        for secret in (ADMIN_KEY, READ_KEY, INJECT_KEY, sha256_hex(ADMIN_KEY)):
            self.assertNotIn(secret, logs)
        self.assertIn("http api_keys=3", logs)

    def test_curl(self):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        base = "http://127.0.0.1:%d" % self.hport
        out = subprocess.run(["curl", "-sS", "-u", "me:" + READ_KEY, base + "/api/v1/summary"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("received", json.loads(out.stdout))
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                              "-H", "Authorization: " + READ_KEY, base + "/api/v1/config/reload"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout, "403")
        out = subprocess.run(["curl", "-sS", "-k", "-H", "Authorization: " + ADMIN_KEY,
                              "-X", "POST", "-d", '{"command":"pid"}',
                              "https://127.0.0.1:%d/api/v1/commands" % self.tport],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(json.loads(out.stdout), {"pid": self.d.proc.pid}, out.stderr)

    # -- TLS, keep-alive --------------------------------------------------------

    def test_tls(self):
        c = Client(self.tport, ADMIN_KEY, tls=True)
        self.addCleanup(c.close)
        for _ in range(3):
            st, _, doc = c.req("GET", "/api/v1/summary")
            self.assertEqual(st, 200, doc)
        self.assertIn(c.conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        # urllib over TLS too.
        req = urllib.request.Request("https://127.0.0.1:%d/api/v1/mailq" % self.tport,
                                     headers={"Authorization": READ_KEY})
        with urllib.request.urlopen(req, context=harness.client_tls_context(), timeout=20) as r:
            self.assertIn("queues", json.loads(r.read()))
        # Plain HTTP to the TLS port gets no HTTP answer.
        with socket.create_connection(("127.0.0.1", self.tport), timeout=10) as s:
            s.sendall(b"GET /api/v1/summary HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except OSError:
                data = b""
            self.assertFalse(data.startswith(b"HTTP/"), data)

    def test_keep_alive(self):
        c = self.admin()
        c.req("GET", "/api/v1/summary")
        sock = c.conn.sock
        local = sock.getsockname()
        for path in ("/api/v1/mailq", "/api/v1/bindings", "/api/v1/nosuch", "/api/v1/summary"):
            st, r, _ = c.req("GET", path)
            self.assertIsNot(r.getheader("Connection"), "close")
        self.assertIs(c.conn.sock, sock)	# http.client reconnects silently: it never had to
        self.assertEqual(c.conn.sock.getsockname(), local)
        # Errors keep the connection too.
        c.req("POST", "/api/v1/commands", body="{")
        self.assertIs(c.conn.sock, sock)

    def test_garbage_requests(self):
        for junk in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET /x HTTP/9.9\r\n\r\n",
                     b"\x00\x01\x02\xff\r\n\r\n", b"POST /api/v1/commands HTTP/1.1\r\n"
                     b"Content-Length: -5\r\n\r\n", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.hport), timeout=10) as s:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                if data:
                    self.assertRegex(data, rb"^HTTP/1\.[01] (400|401|404|413|431|505)", junk)
        self.d.assert_alive()
        self.assertEqual(self.admin().req("GET", "/api/v1/summary")[0], 200)

    # -- docs/openapi.yaml ------------------------------------------------------

    def test_openapi(self):
        if yaml is None:
            self.skipTest("python3-yaml not installed")
        with open(os.path.join(harness.SOURCE_DIR, "docs", "openapi.yaml")) as f:
            spec = yaml.safe_load(f)
        self.assertTrue(spec["openapi"].startswith("3."))

        def resolve(node):
            while isinstance(node, dict) and "$ref" in node:
                cur = spec
                for part in node["$ref"].lstrip("#/").split("/"):
                    cur = cur[part]
                node = cur
            return node

        mid = self.queued("openapi.example.com")
        values = {"domain": "openapi.example.com", "id": mid}
        ops = [(p, m, op) for p, item in spec["paths"].items() for m, op in item.items()]
        # Failing the domain's mail last, so the routes before it find it queued.
        ops.sort(key=lambda o: o[0].endswith("/fail"))
        c = self.admin()
        for path, method, op in ops:
            url = re.sub(r"\{(\w+)\}", lambda mo: values[mo.group(1)], path)
            body = None
            if "requestBody" in op:
                body = op["requestBody"]["content"]["application/json"]["example"]
            # Injection routes take an inject key; everything else the admin key.
            inject = op.get("x-key") == "inject"
            st, r, doc = (Client(self.hport, INJECT_KEY) if inject else c).req(
                method.upper(), url, body=body)
            ok = [s for s in op["responses"] if s.startswith("2")]
            self.assertEqual(str(st), ok[0], (method, url, doc))
            self.assertEqual(r.getheader("Content-Type"), "application/json")
            schema = resolve(resolve(op["responses"][ok[0]])["content"]["application/json"]["schema"])
            for k in schema.get("required", []):
                self.assertIn(k, doc, (method, url))
            # Each documented error answers as documented.
            for s in op["responses"]:
                if s == "404" and "{" in path:
                    bad = re.sub(r"\{(\w+)\}", lambda mo: {"domain": "none.example",
                                                           "id": "0000000000000001"}[mo.group(1)],
                                 path)
                    self.assertError(c.req(method.upper(), bad), 404, ".")
                if s == "401":
                    self.assertError(Client(self.hport).req(method.upper(), url), 401, "API key")
                if s == "403":
                    self.assertError(Client(self.hport, ADMIN_KEY if inject else READ_KEY).req(
                                         method.upper(), url, body=body)
                                     if method == "post" else
                                     Client(self.hport, INJECT_KEY).req(method.upper(), url),
                                     403, "may not use")
        # Every route the daemon has is documented.
        src = read_text(os.path.join(harness.SOURCE_DIR, "src", "http", "http_admin.c"))
        routes = set(re.findall(r'\{ HTTP_M_(GET|POST), "(/api/[^"]+)"', src))
        documented = set()
        for path, item in spec["paths"].items():
            for m in item:
                documented.add((m.upper(), re.sub(r"\{\w+\}", "{}", path)))
        self.assertTrue(routes)
        self.assertEqual(routes, documented)


class HttpLimits(harness.DaemonTestCase):
    """Small limits on one Listen (no keys: loopback only)."""

    @classmethod
    def setUpClass(cls):
        cls.hport = harness.free_port()
        cls.d = harness.Daemon(global_text=http_conf(
            cls.hport, keys=False,
            listen_extra="HTTP_Max_Body_Size = 1K HTTP_Max_Header_Size = 2K "
                         "HTTP_Max_Connections = 3"))

    def test_loopback_only_said_at_start(self):
        wait_until(lambda: any("no API_Key is configured" in l and "loopback clients only" in l
                               for l in self.d.paniclog()), timeout=10,
                   what="the paniclog line on loopback clients")
        st, _, doc = Client(self.hport).req("GET", "/api/v1/summary")
        self.assertEqual(st, 200, doc)
        # Everything is allowed to a loopback client when no key exists.
        self.assertEqual(Client(self.hport).req("POST", "/api/v1/commands",
                                                body={"command": "pid"})[0], 200)

    def test_body_too_large(self):
        c = Client(self.hport)
        st, _, _ = c.req("POST", "/api/v1/commands",
                         body='{"command":"pid","args":["%s"]}' % ("x" * 4000))
        self.assertEqual(st, 413)
        st, _, doc = Client(self.hport).req("POST", "/api/v1/commands",
                                            body='{"command":"pid","args":["%s"]}' % ("x" * 900))
        self.assertEqual(st, 400, doc)	# under the limit: the command's own error
        self.assertError_(doc, "takes no arguments")

    def assertError_(self, doc, pattern):
        self.assertRegex(doc["errors"][0]["message"], pattern)

    def test_headers_too_large(self):
        c = Client(self.hport)
        try:
            st, _, _ = c.req("GET", "/api/v1/summary", headers={"X-Big": "a" * 4000})
        except (ConnectionError, http.client.HTTPException):
            st = None
        self.assertIn(st, (400, 431))
        self.assertEqual(Client(self.hport).req("GET", "/api/v1/summary",
                                                headers={"X-Small": "a" * 500})[0], 200)

    def test_max_connections(self):
        held = [Client(self.hport) for _ in range(3)]
        try:
            for c in held:
                self.assertEqual(c.req("GET", "/api/v1/summary")[0], 200)
            st, r, doc = Client(self.hport).req("GET", "/api/v1/summary")
            self.assertEqual(st, 503, doc)
            self.assertIn("HTTP_Max_Connections 3", doc["errors"][0]["message"])
            self.assertEqual(r.getheader("Connection"), "close")
        finally:
            for c in held:
                c.close()
        wait_until(lambda: Client(self.hport).req("GET", "/api/v1/summary")[0] == 200,
                   timeout=10, what="a free connection slot")

    def test_remote_client_refused_without_keys(self):
        ip = non_loopback_ip()
        if ip is None:
            self.skipTest("no non-loopback address on this host")
        port = harness.free_port()
        d = self.new_daemon(global_text='HTTP_Listener { Listen "0.0.0.0:%d" { } }' % port)
        st, _, doc = Client(port, host=ip).req("GET", "/api/v1/summary")
        self.assertEqual(st, 403, doc)
        self.assertIn("loopback clients only", doc["errors"][0]["message"])
        self.assertEqual(Client(port).req("GET", "/api/v1/summary")[0], 200)
        d.assert_alive()


class HttpReload(harness.DaemonTestCase):

    def test_reload_listeners_keys_keep_alive(self):
        a, b = harness.free_port(), harness.free_port()
        d = self.new_daemon(global_text='HTTP_Listener { Listen "127.0.0.1:%d" { } }' % a)
        ca = Client(a)
        self.assertEqual(ca.req("GET", "/api/v1/summary")[0], 200)
        d.global_text = ('HTTP_Listener {\n  HTTP_Keep_Alive = false\n'
                         '  Listen "127.0.0.1:%d" { }\n'
                         '  API_Key "ops" { Hash = "%s" Role = admin }\n}\n'
                         % (b, sha256_hex(ADMIN_KEY)))
        d.write_config()
        n = sum(1 for l in d.paniclog() if "reload configuration=" in l)
        d.signal(signal.SIGHUP)
        wait_until(lambda: sum(1 for l in d.paniclog() if "reload configuration=" in l) > n,
                   timeout=15, what="the reload")
        self.assertTrue(any("http listen address=127.0.0.1:%d removed" % a in l
                            for l in d.paniclog()))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", a), timeout=5).close()
        self.assertEqual(Client(b).req("GET", "/api/v1/summary")[0], 401)	# keys now
        c = Client(b, ADMIN_KEY)
        st, r, _ = c.req("GET", "/api/v1/summary")
        self.assertEqual((st, r.getheader("Connection")), (200, "close"))
        # The server closes after the answer: the socket reads EOF.
        wait_until(lambda: c.conn.sock is None or c.conn.sock.recv(1) == b"", timeout=10,
                   what="the server to close the connection")
        d.assert_alive()


class HttpStartup(harness.DaemonTestCase):

    def run_daemon(self, text):
        d = harness.Daemon(start=False)
        self.addCleanup(d.cleanup, check=False)
        d.global_text = text
        d.write_config()
        return subprocess.run([harness.impetusd_path(), "-c", d.conf_path], capture_output=True,
                              text=True, timeout=30, cwd=d.tmp)

    def check(self, text):
        d = harness.Daemon(start=False)
        self.addCleanup(d.cleanup, check=False)
        d.global_text = text
        d.write_config()
        r = subprocess.run([harness.impetusd_path(), "-t", "-c", d.conf_path],
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr, d.conf_path

    def test_bind_error_is_fatal(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            r = self.run_daemon('HTTP_Listener { Listen "127.0.0.1:%d" { } }' % port)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("HTTP_Listener Listen 127.0.0.1:%d: cannot listen: Address already in use"
                      % port, r.stderr)

    def test_bad_tls_file_is_fatal(self):
        r = self.run_daemon('HTTP_Listener { Listen "127.0.0.1:%d" { TLS_Certificate = '
                            '"/nonexistent.pem" TLS_Key = "/nonexistent.key" } }'
                            % harness.free_port())
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("/nonexistent.pem", r.stderr)

    def test_config_errors(self):
        cases = [
            ('HTTP_Listener { Listen "nonsense" { } }', "is not an address with a port"),
            ('HTTP_Listener { Listen "127.0.0.1:0" { } }', "is not an address with a port"),
            ('HTTP_Listener { Listen "127.0.0.1:2081" { } Listen "127.0.0.1:2081" { } }',
             "duplicate Listen"),
            ('HTTP_Listener { API_Key "k" { Role = admin } }', 'API_Key "k" has no Hash'),
            ('HTTP_Listener { API_Key "k" { Hash = "my-plain-secret" } }',
             "neither a crypt\\(3\\) hash"),
            ('HTTP_Listener { API_Key "k" { Hash = "%s" Role = root } }' % ("a" * 64), "root"),
            ('HTTP_Listener { API_Key "k" { Hash = "%s" } API_Key "k" { Hash = "%s" } }'
             % ("a" * 64, "b" * 64), 'duplicate API_Key "k"'),
            ('API_Key "k" { Hash = "%s" }' % ("a" * 64), "API_Key is not allowed in global"),
            ('HTTP_Listener { HTTP_Max_Body_Size = lots }', "HTTP_Max_Body_Size"),
            ('HTTP_Listener { Idle_Time = 5 }', "not allowed in HTTP_Listener"),
            ('HTTP_Listener { } HTTP_Listener { }', "duplicate HTTP_Listener"),
        ]
        for text, pattern in cases:
            rc, err, path = self.check(text)
            self.assertNotEqual(rc, 0, text)
            self.assertRegex(err, re.escape(path) + r":\d+:\d+: .*" + pattern, text)
            self.assertNotIn("my-plain-secret", err)


if __name__ == "__main__":
    unittest.main()
