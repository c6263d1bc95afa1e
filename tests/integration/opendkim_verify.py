"""
opendkim_verify.py - DKIM signatures checked by OpenDKIM (libopendkim)

OpenDKIM is the second independent verifier of the DKIM tests, next to
dkimpy. It runs in its own test mode, `opendkim -x CONF -t FILE,FILE...`
(Debian package opendkim): the daemon's code path, milter callbacks and
all, over message files, with the public keys taken from a TestDNSData
file instead of the network, so nothing leaves the machine.

Why not opendkim-testmsg (opendkim-tools): the Debian 12 build
(2.11.0~beta2-8+deb12u1) fails with "dkim_chunk(): Syntax error" on every
input, signing or verifying, and would look keys up in the system's DNS.

The test mode always exits 0; the verdict is the line it writes per file
on stdout, "opendkim: FILE: verification (s=..., d=..., ...) succeeded"
or "... failed: REASON", which is what verify() reads.
"""

import os
import shutil
import subprocess
import tempfile

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def available():
    """available - whether the opendkim binary is installed."""
    return os.access(OPENDKIM, os.X_OK)


def verify(messages, txt):
    """verify - OpenDKIM's verdict on each message.

    messages: a list of bytes (whole messages, CRLF or LF line ends).
    txt: {"sel._domainkey.example.com.": "v=DKIM1; k=rsa; p=..."}.
    Returns a list, one entry per message: (True, line) when the first
    signature verified, (False, line or stderr) otherwise.
    """
    if not available():
        raise AssertionError("opendkim missing: install the opendkim package (scripts/install-deps.sh)")
    d = tempfile.mkdtemp(prefix="impetus-opendkim-")
    try:
        with open(os.path.join(d, "keys"), "w") as f:
            for name, value in txt.items():
                # A TestDNSData "file:" data set: key, whitespace, value.
                f.write("%s %s\n" % (name.rstrip("."), value))
        conf = os.path.join(d, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Mode v\nSyslog no\nLogResults yes\nTestDNSData file:%s\n" % os.path.join(d, "keys"))
        paths = []
        for i, m in enumerate(messages):
            p = os.path.join(d, "m%d" % i)
            with open(p, "wb") as f:
                f.write(m)
            paths.append(p)
        r = subprocess.run([OPENDKIM, "-x", conf, "-t", ",".join(paths)],
                           capture_output=True, timeout=60)
        # The verdicts go to stdout, the errors to stderr: read both.
        err = (r.stdout + r.stderr).decode(errors="replace")
        out = []
        for p in paths:
            tag = "opendkim: %s: " % p
            lines = [ln[len(tag):] for ln in err.splitlines() if ln.startswith(tag)]
            verdict = [ln for ln in lines if ln.startswith("verification")]
            if verdict:
                out.append((verdict[0].endswith("succeeded"), verdict[0]))
            else:
                out.append((False, "no verdict for %s (exit %d): %s" % (p, r.returncode, err[-500:])))
        return out
    finally:
        shutil.rmtree(d, ignore_errors=True)
