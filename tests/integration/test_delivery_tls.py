"""
test_delivery_tls.py - outbound STARTTLS as the TLS option says

One daemon, three destinations, each its own sink:

  tls.test      sink offers STARTTLS; TLS = ifavailable (the default)
                -> the message travels inside TLS
  plain.test    sink offers STARTTLS; TLS = no
                -> the message travels in clear text
  must.test     sink does NOT offer STARTTLS; TLS = required
                -> nothing is sent; a T line says TLS was required
"""

import time

from harness import DaemonTestCase, main, make_cert, make_message
from deliverykit import inject, wait_records
from sink import Sink


class DeliveryTlsTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.certdir = tempfile.mkdtemp(prefix="impetus-tls-")
        cert = make_cert(cls.certdir, "sink.test")
        cls.sinks = {
            "tls": Sink(tls_cert=cert),
            "plain": Sink(tls_cert=cert),
            "must": Sink(),
        }
        for s in cls.sinks.values():
            s.start()
        route = lambda n: 'Routes = ( "smtp://127.0.0.1:%d" )' % cls.sinks[n].port
        cls.shared = dict(
            relay_hosts=("127.0.0.0/8",), hold_delivery=False,
            global_text="\n".join([
                "Retry_Interval = 60",
                'Domain "tls.test" { %s }' % route("tls"),
                'Domain "plain.test" { %s TLS = no }' % route("plain"),
                'Domain "must.test" { %s TLS = required }' % route("must"),
            ]))
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        for s in cls.sinks.values():
            s.stop()
        import shutil
        shutil.rmtree(cls.certdir, ignore_errors=True)

    def deliver(self, name):
        rcpt = "r%d@%s.test" % (time.time_ns() % 10**9, name)
        mid = inject(self.d, "s@client.test", [rcpt], make_message(marker=name))
        return mid, rcpt

    def test_ifavailable_uses_tls(self):
        mid, rcpt = self.deliver("tls")
        wait_records(self.d, "D", mid)
        txns = [t for t in self.sinks["tls"].messages() if rcpt in t.rcpts]
        self.assertEqual(len(txns), 1)
        self.assertTrue(txns[0].tls, "delivered in clear text although STARTTLS was offered")

    def test_no_means_clear_text(self):
        mid, rcpt = self.deliver("plain")
        wait_records(self.d, "D", mid)
        txns = [t for t in self.sinks["plain"].messages() if rcpt in t.rcpts]
        self.assertEqual(len(txns), 1)
        self.assertFalse(txns[0].tls, "TLS = no, yet the message went inside TLS")

    def test_required_without_starttls_defers(self):
        mid, rcpt = self.deliver("must")
        t = wait_records(self.d, "T", mid)[0]
        self.assertIn("tls", t["raw"].lower())
        self.assertEqual([x for x in self.sinks["must"].messages() if rcpt in x.rcpts], [])


if __name__ == "__main__":
    main()
