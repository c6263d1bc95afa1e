"""
test_delivery_held.py - mail held by Suspend_Delivery still expires

A suspended domain keeps accepting and queueing but opens no connection.
Its mail must not wait forever: once Message_Expiration passes, the
maintainer fails it (P line, stage 21 "out of band", bouncelog B line),
and the sender gets a bounce.
"""

from harness import DaemonTestCase, main, make_message
from deliverykit import inject, parse_bounce, wait_records
from sink import Sink


class HeldExpiryTest(DaemonTestCase):

    def test_suspended_mail_expires_and_bounces(self):
        with Sink() as held, Sink() as bounces:
            d = self.new_daemon(
                relay_hosts=("127.0.0.0/8",), hold_delivery=False,
                global_text="\n".join([
                    "Message_Expiration = 2",
                    "Delayed_Queue_Scan_Interval = 1",
                    'Domain "held.test" { Suspend_Delivery = true '
                    'Routes = ( "smtp://127.0.0.1:%d" ) }' % held.port,
                    'Domain "bounces.test" { Routes = ( "smtp://127.0.0.1:%d" ) }'
                    % bounces.port,
                ]))
            mid = inject(d, "s@bounces.test", ["r@held.test"], make_message(marker="held"))
            p = wait_records(d, "P", mid, timeout=20)[0]
            self.assertEqual(p["stage"], "21", p["raw"])
            self.assertIn("expired", p["raw"])
            wait_records(d, "B", mid, timeout=10)
            self.assertEqual(held.messages(), [], "a suspended domain received mail")
            bounces.wait_for(1, timeout=20, what="messages")
            _, _, per_rcpt, _ = parse_bounce(bounces.messages()[0].body)
            self.assertEqual(len(per_rcpt), 1)
            self.assertIn("expired", str(per_rcpt[0]).lower())


if __name__ == "__main__":
    main()
