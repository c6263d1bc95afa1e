"""
sink.py - a scriptable downstream SMTP server for delivery tests

A real SMTP server (asyncio, standard library only) that impetusd delivers
to. It runs in a background thread on a free loopback port and records
everything: every connection (with the peak of concurrent connections),
every transaction (sender, recipients, MAIL/RCPT parameters, body) and the
time each message arrived, so tests can check batching, connection limits
and throttles from the receiving side.

Behaviour per recipient is scripted by a function rcpt_reply(addr) that
returns the reply line ("250 2.1.5 OK", "450 4.2.0 try later", "550 5.1.1
no such user"); data_reply(txn) does the same for the end of data, and
special recipients can make the server drop the connection:

    rcpt "drop-at-rcpt@..."   closes the connection instead of answering
    rcpt "drop-at-data@..."   closes after reading the body, before the reply

rcpt_reply and data_reply may also return the word "DROP" to close the
connection at that point (so a test can drop only the first attempt).
Both may be replaced while the sink runs (plain attribute assignment).

Options: ehlo_lines (the capabilities offered), banner (e.g. "421 busy"),
delay (seconds before each reply).

Per connection the sink also records the peer address, the EHLO/HELO
argument, open/close times and how many messages it carried
(self.conns, a list of Conn), so tests can check reuse, source
addresses and EHLO names.
"""

import asyncio
import socket
import threading
import time

import ports


def _free_port():
    return ports.free_port()


class Conn:
    """Conn - what the sink saw of one connection."""

    def __init__(self, conn_id, peer):
        self.conn_id = conn_id
        self.peer = peer            # (ip, port) of the client
        self.helo = None            # EHLO/HELO argument (the last one given)
        self.opened = time.monotonic()
        self.closed = None
        self.messages = 0           # transactions answered 2xx after the body

    def __repr__(self):
        return "<conn %d from %r helo=%r %d msgs>" % (self.conn_id, self.peer, self.helo,
                                                     self.messages)


class Transaction:
    def __init__(self, conn_id, peer, helo=None):
        self.conn_id = conn_id
        self.peer = peer
        self.helo = helo            # the connection's EHLO/HELO argument
        self.mail = None            # reverse path
        self.mail_params = ""
        self.rcpts = []             # accepted recipients
        self.rcpt_params = {}
        self.refused = []           # (addr, reply)
        self.body = b""
        self.time = None            # when the body ended (monotonic)
        self.started = None         # when MAIL came (monotonic)
        self.tls = False            # the transaction ran inside TLS

    def __repr__(self):
        return "<txn from=%r to=%r %d bytes>" % (self.mail, self.rcpts, len(self.body))


class Sink:
    """Sink - the server; use as a context manager."""

    DEFAULT_EHLO = ["PIPELINING", "SIZE 100000000", "8BITMIME", "ENHANCEDSTATUSCODES",
                    "DSN", "SMTPUTF8"]

    def __init__(self, rcpt_reply=None, data_reply=None, ehlo_lines=None,
                 banner="220 sink.test ESMTP", delay=0.0, host="127.0.0.1", port=None,
                 tls_cert=None, max_rcpts=0):
        self.host = host
        # max_rcpts: accepted recipients per transaction; more get "452 4.5.3" (0: no limit).
        self.max_rcpts = max_rcpts
        # tls_cert: (certfile, keyfile) -> STARTTLS is offered and works.
        self.tls_ctx = None
        if tls_cert:
            import ssl
            self.tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_ctx.load_cert_chain(*tls_cert)
        self.port = port or _free_port()
        self.rcpt_reply = rcpt_reply or (lambda addr: "250 2.1.5 OK")
        self.data_reply = data_reply or (lambda txn: "250 2.0.0 queued")
        self.ehlo_lines = self.DEFAULT_EHLO if ehlo_lines is None else ehlo_lines
        self.banner = banner
        self.delay = delay
        self.lock = threading.Lock()
        self.transactions = []      # completed (250 after data)
        self.all_transactions = []  # every DATA, whatever the answer
        self.connections = 0
        self.concurrent = 0
        self.peak = 0
        self.peers = []
        self.conns = []             # Conn, in order of arrival
        self._loop = None
        self._server = None
        self._thread = None
        self._ready = threading.Event()

    # -- life cycle -------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("sink did not start")

    def _run(self):
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def main():
            self._server = await asyncio.start_server(self._session, self.host, self.port)
            self._ready.set()
            async with self._server:
                try:
                    await self._server.serve_forever()
                except asyncio.CancelledError:
                    pass

        try:
            self._loop.run_until_complete(main())
        except Exception:
            self._ready.set()
        finally:
            # Let cancelled sessions finish, then release the loop's resources.
            try:
                pending = asyncio.all_tasks(self._loop)
                if pending:
                    self._loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
            except Exception:
                pass
            self._loop.close()

    def stop(self):
        if self._loop and self._server:
            def close():
                self._server.close()
                for t in asyncio.all_tasks(self._loop):
                    t.cancel()
            try:
                self._loop.call_soon_threadsafe(close)
            except RuntimeError:
                pass	# the loop already ended
        if self._thread:
            self._thread.join(10)

    # -- queries ------------------------------------------------------------

    def messages(self):
        with self.lock:
            return list(self.transactions)

    def recipients(self):
        """recipients - every recipient of every accepted message, in order."""
        with self.lock:
            return [r for t in self.transactions for r in t.rcpts]

    def connections_seen(self):
        """connections_seen - a copy of the per-connection records."""
        with self.lock:
            return list(self.conns)

    def helo_names(self):
        """helo_names - the EHLO/HELO argument of every connection that gave one."""
        with self.lock:
            return [c.helo for c in self.conns if c.helo is not None]

    def with_marker(self, marker, all_attempts=False):
        """with_marker - accepted (or all) transactions whose body contains marker."""
        if isinstance(marker, str):
            marker = marker.encode()
        with self.lock:
            src = self.all_transactions if all_attempts else self.transactions
            return [t for t in src if marker in t.body]

    def wait_for(self, count, timeout=30.0, what="recipients"):
        """wait_for - block until `count` recipients (or messages) were accepted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = len(self.recipients()) if what == "recipients" else len(self.messages())
            if n >= count:
                return
            time.sleep(0.05)
        raise AssertionError("sink: expected %d %s within %.0f s, got %d (%r)"
                             % (count, what, timeout,
                                len(self.recipients()) if what == "recipients"
                                else len(self.messages()), self.messages()[-5:]))

    # -- the protocol ---------------------------------------------------------

    async def _session(self, reader, writer):
        peer = writer.get_extra_info("peername")
        with self.lock:
            self.connections += 1
            conn_id = self.connections
            self.concurrent += 1
            self.peak = max(self.peak, self.concurrent)
            self.peers.append(peer)
            conn = Conn(conn_id, peer)
            self.conns.append(conn)
        try:
            await self._converse(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with self.lock:
                self.concurrent -= 1
                conn.closed = time.monotonic()
            try:
                writer.close()
            except Exception:
                pass

    async def _reply(self, writer, line):
        if self.delay:
            await asyncio.sleep(self.delay)
        # surrogateescape: a test can send bytes that are not UTF-8 ("\udcff" -> 0xff).
        writer.write(line.encode("utf-8", "surrogateescape") + b"\r\n")
        await writer.drain()

    async def _converse(self, conn, reader, writer):
        conn_id, peer = conn.conn_id, conn.peer
        await self._reply(writer, self.banner)
        if not self.banner.startswith("220"):
            return
        txn = None
        conn_tls = False
        while True:
            line = await reader.readline()
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "STARTTLS" and self.tls_ctx and not conn_tls:
                await self._reply(writer, "220 2.0.0 go ahead")
                await writer.start_tls(self.tls_ctx)
                conn_tls = True
                txn = None
                continue
            if verb in ("EHLO", "HELO"):
                with self.lock:
                    conn.helo = cmd[5:].strip()
            if verb == "EHLO":
                if not self.ehlo_lines:
                    await self._reply(writer, "500 5.5.1 EHLO not supported")
                    continue
                lines = ["sink.test"] + self.ehlo_lines
                if self.tls_ctx and not conn_tls:
                    lines.append("STARTTLS")
                out = "\r\n".join(("250-" if i < len(lines) - 1 else "250 ") + l
                                  for i, l in enumerate(lines))
                await self._reply(writer, out)
            elif verb == "HELO":
                await self._reply(writer, "250 sink.test")
            elif verb == "MAIL":
                txn = Transaction(conn_id, peer, conn.helo)
                txn.started = time.monotonic()
                txn.tls = conn_tls
                rest = cmd[10:] if cmd[:10].upper() == "MAIL FROM:" else cmd
                path, _, params = rest.partition(">")
                txn.mail = path.lstrip(" <")
                txn.mail_params = params.strip()
                await self._reply(writer, "250 2.1.0 OK")
            elif verb == "RCPT":
                rest = cmd[8:] if cmd[:8].upper() == "RCPT TO:" else cmd
                path, _, params = rest.partition(">")
                addr = path.lstrip(" <")
                if txn is None:
                    await self._reply(writer, "503 5.5.1 need MAIL")
                    continue
                if addr.startswith("drop-at-rcpt@"):
                    return
                r = self.rcpt_reply(addr)
                if self.max_rcpts and len(txn.rcpts) >= self.max_rcpts:
                    r = "452 4.5.3 Error: too many recipients"
                if r == "DROP":
                    return
                if r.startswith("2"):
                    txn.rcpts.append(addr)
                    txn.rcpt_params[addr] = params.strip()
                else:
                    txn.refused.append((addr, r))
                await self._reply(writer, r)
            elif verb == "DATA":
                if txn is None or not txn.rcpts:
                    await self._reply(writer, "554 5.5.1 no valid recipients")
                    continue
                await self._reply(writer, "354 go ahead")
                body = b""
                while True:
                    l = await reader.readline()
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    if l.startswith(b"."):
                        l = l[1:]
                    body += l
                txn.body = body
                txn.time = time.monotonic()
                with self.lock:
                    self.all_transactions.append(txn)
                if any(r.startswith("drop-at-data@") for r in txn.rcpts):
                    return
                r = self.data_reply(txn)
                if r == "DROP":
                    return
                if r.startswith("2"):
                    with self.lock:
                        self.transactions.append(txn)
                        conn.messages += 1
                await self._reply(writer, r)
                txn = None
            elif verb == "RSET":
                txn = None
                await self._reply(writer, "250 2.0.0 OK")
            elif verb == "NOOP":
                await self._reply(writer, "250 2.0.0 OK")
            elif verb == "QUIT":
                await self._reply(writer, "221 2.0.0 bye")
                return
            else:
                await self._reply(writer, "502 5.5.1 not implemented")
