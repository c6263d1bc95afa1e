#!/usr/bin/env python3
"""http_inject.py - request bodies and the timed HTTP client of http_inject.sh

Two subcommands, standard library only:

  bodies [--sandbox] DIR TOTAL SIZES...
                              write the JSON bodies of POST /api/v1/transmissions
                              to DIR: for each SIZE, TOTAL/SIZE files
                              DIR/SIZE-NNNN.json of SIZE recipients each, the
                              recipients of one SIZE numbered 0..TOTAL-1 (the
                              same addresses and data whatever the split);
                              --sandbox adds "options":{"sandbox":true} (every
                              message built, none spooled)
  post PORT CONCURRENCY FILE...   POST every FILE to 127.0.0.1:PORT over
                              CONCURRENCY keep-alive connections (each takes
                              the next file when its answer is in); print one
                              JSON line: seconds from before the first request
                              to the last 200, recipients accepted, requests,
                              bytes sent, slowest request

The content is a monthly statement of a shop: a text and an HTML part with
ten substitutions per recipient, one {{if}}/{{else}} and per-recipient
substitution_data; rendered it is about 4 KB per message (the benchmark
reports the size the spool really holds). Every answer must be a 200 that
accepts exactly the recipients of its request and refuses none; anything
else exits with status 1 and says which request and what came back.
"""
import http.client
import json
import os
import sys
import threading
import time

TEXT = """Hello {{first}},

Here is your {{month}} statement from {{shop}} for account {{account}}.

Balance on {{date}}: {{balance}} EUR
{{if vip}}As a member of our loyalty programme you keep free delivery on every
order until the end of the year, and your points ({{points}}) never expire.
{{else}}Join our loyalty programme before the end of the month and your first
delivery is on us: it takes one minute at https://shop.example/join.
{{end}}
What is new this month
----------------------

* Autumn collection: coats, scarves and boots for the cold days ahead, in
  sizes from XS to 3XL, with free returns within 60 days of delivery.
* Our shop in {{city}} now opens on Sundays from 10:00 to 17:00, and has a
  new pick-up counter for online orders: ready two hours after you order.
* Repairs: bring any shoe you bought from us, whatever its age, and we mend
  it for the cost of the parts. Ask at the counter or book on the web site.

Your orders
-----------

Your last order, {{order}}, was delivered on {{delivered}}. If something is
not right with it, answer this message or call us on +33 1 23 45 67 89
(Monday to Saturday, 9:00 to 19:00) and quote your account number.

Thank you for shopping with us,
The {{shop}} team

--
You receive this message because you have an account at {{shop}} with the
address {{email}}. To stop these statements, visit
https://shop.example/unsubscribe?a={{account}} or reply with "stop".
{{shop}}, 12 rue de la Paix, 75002 Paris, France.
"""

HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Your {{month}} statement</title></head>
<body style="font-family: Arial, sans-serif; color: #222; max-width: 640px; margin: 0 auto;">
<table width="100%" cellpadding="0" cellspacing="0"><tr>
<td style="background: #1d3557; color: #fff; padding: 16px; font-size: 20px;">{{shop}}</td>
</tr></table>
<p>Hello {{first}} {{last}},</p>
<p>Here is your <b>{{month}}</b> statement for account <code>{{account}}</code>.</p>
<p style="font-size: 18px;">Balance on {{date}}: <b>{{balance}} EUR</b></p>
{{if vip}}<p style="background: #f1faee; padding: 8px;">As a member of our loyalty programme you keep
free delivery on every order until the end of the year, and your points
(<b>{{points}}</b>) never expire.</p>
{{else}}<p style="background: #f1faee; padding: 8px;">Join our loyalty programme before the end of
the month and your first delivery is on us: <a href="https://shop.example/join">it takes one minute</a>.</p>
{{end}}
<h2 style="font-size: 16px; border-bottom: 1px solid #ccc;">What is new this month</h2>
<ul>
<li><b>Autumn collection</b>: coats, scarves and boots for the cold days ahead, in sizes
from XS to 3XL, with free returns within 60 days of delivery.</li>
<li>Our shop in <b>{{city}}</b> now opens on Sundays from 10:00 to 17:00, and has a new
pick-up counter for online orders: ready two hours after you order.</li>
<li><b>Repairs</b>: bring any shoe you bought from us, whatever its age, and we mend it
for the cost of the parts. Ask at the counter or <a href="https://shop.example/repairs">book on the web site</a>.</li>
</ul>
<h2 style="font-size: 16px; border-bottom: 1px solid #ccc;">Your orders</h2>
<p>Your last order, <a href="https://shop.example/orders/{{order}}">{{order}}</a>, was delivered on
{{delivered}}. If something is not right with it, answer this message or call us on
+33 1 23 45 67 89 (Monday to Saturday, 9:00 to 19:00) and quote your account number.</p>
<p>Thank you for shopping with us,<br>The {{shop}} team</p>
<p style="font-size: 11px; color: #777;">You receive this message because you have an account at
{{shop}} with the address {{email}}. <a href="https://shop.example/unsubscribe?a={{account}}">Unsubscribe</a>.
{{shop}}, 12 rue de la Paix, 75002 Paris, France.</p>
</body></html>
"""

FIRST = ["Ann", "Bob", "Chloé", "David", "Emma", "Farid", "Gaëlle", "Hugo"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
CITY = ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes", "Lille", "Bordeaux"]


def recipient(i):
    """The i-th recipient: its address and its own substitution data."""
    first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
    return {
        "address": {"email": "r%d@dest.example" % i, "name": "%s %s" % (first, last)},
        "substitution_data": {
            "first": first, "last": last, "account": "A%08d" % i,
            "balance": "%d.%02d" % (i % 977, i % 100), "city": CITY[i % len(CITY)],
            "vip": i % 3 == 0, "points": i % 5000, "order": "O-%07d" % (i * 7),
            "delivered": "2026-11-%02d" % (1 + i % 28),
        },
    }


def body(first, count, sandbox=False):
    """One transmission of recipients first..first+count-1, as UTF-8 JSON."""
    doc = {
        "campaign_id": "bench",
        "return_path": "bounces@shop.example",
        "substitution_data": {"shop": "Maison Exemple", "month": "November", "date": "2026-11-30"},
        "recipients": [recipient(i) for i in range(first, first + count)],
        "content": {
            "from": {"email": "news@shop.example", "name": "{{shop}}"},
            "subject": "{{first}}, your {{month}} statement from {{shop}}",
            "text": TEXT,
            "html": HTML,
        },
    }
    if sandbox:
        doc["options"] = {"sandbox": True}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def cmd_bodies(argv):
    """Write TOTAL recipients split in requests of each SIZE given."""
    sandbox = argv[0] == "--sandbox"
    if sandbox:
        argv = argv[1:]
    out, total, sizes = argv[0], int(argv[1]), [int(s) for s in argv[2:]]
    os.makedirs(out, exist_ok=True)
    for size in sizes:
        if size <= 0 or total % size:
            sys.exit("http_inject.py: %d recipients do not split in requests of %d" % (total, size))
        for n in range(total // size):
            with open(os.path.join(out, "%d-%04d.json" % (size, n)), "wb") as f:
                f.write(body(n * size, size, sandbox))


def cmd_post(argv):
    """POST the files over CONCURRENCY connections; print the timing."""
    port, concurrency, files = int(argv[0]), int(argv[1]), argv[2:]
    jobs = []
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        # The expected count is the request's own: read it back, untimed.
        jobs.append((path, data, len(json.loads(data)["recipients"])))
    lock = threading.Lock()
    state = {"next": 0, "accepted": 0, "slowest": 0.0, "error": None, "end": 0.0}
    start = threading.Barrier(concurrency + 1)

    def worker():
        conn = None
        start.wait()
        while True:
            with lock:
                if state["error"] or state["next"] >= len(jobs):
                    break
                path, data, want = jobs[state["next"]]
                state["next"] += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("POST", "/api/v1/transmissions", body=data,
                              headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                answer = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    state["error"] = "%s: %s" % (path, e)
                break
            t1 = time.perf_counter()
            err = None
            try:
                res = json.loads(answer)["results"]
                if status != 200 or res["total_accepted_recipients"] != want \
                        or res["total_rejected_recipients"] != 0:
                    err = "bad answer"
            except (ValueError, KeyError, TypeError):
                err = "answer is not the expected JSON"
            with lock:
                if err:
                    state["error"] = "%s: %s: HTTP %d %s" % (path, err, status, answer[:300])
                    break
                state["accepted"] += want
                state["slowest"] = max(state["slowest"], t1 - t0)
                state["end"] = max(state["end"], t1)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    t_start = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    if state["error"]:
        sys.exit("http_inject.py: " + state["error"])
    print(json.dumps({
        "seconds": round(state["end"] - t_start, 3),
        "accepted": state["accepted"],
        "requests": len(jobs),
        "bytes": sum(len(j[1]) for j in jobs),
        "slowest": round(state["slowest"], 3),
    }))


def main():
    """Dispatch on the subcommand."""
    if len(sys.argv) >= 4 and sys.argv[1] == "bodies":
        cmd_bodies(sys.argv[2:])
    elif len(sys.argv) >= 5 and sys.argv[1] == "post":
        cmd_post(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
