"""
test_delivery_headers.py - the trace and id headers the receiving side sees

A message relayed through impetusd reaches the next hop with:
  * one Received: header on top, naming the client's EHLO, its IP, our
    Hostname, ESMTP and the queue id;
  * a Message-ID added when the client sent none (<queue-id@Hostname>),
    and the client's own Message-ID left alone when it sent one.
"""

import email
import email.policy

from harness import DaemonTestCase, main
from deliverykit import inject, wait_records
from sink import Sink


class HeadersTest(DaemonTestCase):

    def test_received_and_message_id(self):
        with Sink() as sink:
            d = self.new_daemon(
                relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                global_text='Domain "hdr.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                            % sink.port)
            bare = b"From: a@client.test\r\nSubject: no id\r\n\r\nbody\r\n"
            own = (b"From: a@client.test\r\nSubject: own id\r\n"
                   b"Message-ID: <mine@client.test>\r\n\r\nbody\r\n")
            id_bare = inject(d, "a@client.test", ["x@hdr.test"], bare)
            id_own = inject(d, "a@client.test", ["y@hdr.test"], own)
            wait_records(d, "D", id_bare)
            wait_records(d, "D", id_own)
            got = {t.rcpts[0]: email.message_from_bytes(t.body, policy=email.policy.compat32)
                   for t in sink.messages()}

            m = got["x@hdr.test"]
            self.assertEqual(m["Message-ID"], "<%s@mx.test.example>" % id_bare)
            received = m.get_all("Received")
            self.assertEqual(len(received), 1, received)
            r = " ".join(received[0].split())
            for part in ("from client.test", "[127.0.0.1]", "by mx.test.example",
                         "with ESMTP", "id " + id_bare, "for <x@hdr.test>"):
                self.assertIn(part, r)

            m = got["y@hdr.test"]
            self.assertEqual(m.get_all("Message-ID"), ["<mine@client.test>"])


if __name__ == "__main__":
    main()
