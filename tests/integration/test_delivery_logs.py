"""
test_delivery_logs.py - remote replies reach the logs escaped, one line each

A downstream server's reply is free text from the outside: raw 8-bit
bytes (UTF-8 or not), control characters, '@' and backslashes. Written
as-is into the mainlog (T and P lines) and the bouncelog (B lines) they
would put non-ASCII bytes and terminal escape sequences in files that
operators grep and page, and an '@' would shift the fields. They are
written as \\xHH (bytes >= 0x80, control bytes, DEL and the backslash
itself), '@' as '_' (issue 11, finding 8).

A scripted sink refuses one recipient for good (550, P and B lines) and
another for now (450, T line) with such replies; the test reads the log
files as bytes and checks every line is 7-bit printable, with the exact
escaped text in the response field.
"""

import os

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, wait_records
from sink import Sink

# The sink sends str.encode(): UTF-8 on the wire.
PERM_REPLY = "550 5.1.1 caf\u00e9 <user@dom> C:\\dir \u2603 unknown"
PERM_LOGGED = "550 5.1.1 caf\\xC3\\xA9 <user_dom> C:\\x5Cdir \\xE2\\x98\\x83 unknown"
TEMP_REPLY = "450 4.2.0 d\u00e9j\u00e0 \x1b[31mbusy\x7f"


def script(addr):
    local = addr.split("@", 1)[0]
    if local.startswith("perm"):
        return PERM_REPLY
    if local.startswith("temp"):
        return TEMP_REPLY
    return "250 2.1.5 OK"


class LogEscapeTest(DaemonTestCase):

    def assertSevenBit(self, d, name):
        with open(os.path.join(d.log_dir, name), "rb") as f:
            data = f.read()
        bad = [(i, b) for i, b in enumerate(data) if b >= 0x7f or (b < 0x20 and b != 0x0a)]
        self.assertEqual(bad[:5], [], "%s holds raw bytes that should be escaped:\n%r"
                         % (name, data[-2000:]))

    def test_reply_bytes_escaped_in_mainlog_and_bouncelog(self):
        with Sink(rcpt_reply=script) as sink, Sink() as bounces:
            d = self.new_daemon(
                relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                global_text="\n".join([
                    "Retry_Interval = 1",
                    "Delayed_Queue_Scan_Interval = 1",
                    'Domain "remote.test" { Routes = ( "smtp://127.0.0.1:%d" ) }' % sink.port,
                    'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                    % bounces.port,
                ]))
            mid = inject(d, "s@bounces.test", ["perm@remote.test", "temp@remote.test"],
                         make_message(marker="escape"))
            p = wait_records(d, "P", mid, what="P line after the 550")[0]
            self.assertEqual(p["response"], PERM_LOGGED, p["raw"])
            self.assertEqual(p["nfields"], 14, "fields shifted: %s" % p["raw"])
            b = wait_records(d, "B", mid, what="bouncelog B line")[0]
            self.assertEqual(b["response"], PERM_LOGGED, b["raw"])
            self.assertEqual(b["nfields"], 16, "fields shifted: %s" % b["raw"])
            t = wait_records(d, "T", mid, what="T line after the 450")[0]
            # 8-bit escaped; the client already shows ESC and DEL as '?'
            self.assertIn("d\\xC3\\xA9j\\xC3\\xA0", t["response"], t["raw"])
            self.assertNotIn("\x1b", t["raw"])
            d.stop()    # everything buffered is written out
            self.assertSevenBit(d, "mainlog")
            self.assertSevenBit(d, "bouncelog")


if __name__ == "__main__":
    main()
