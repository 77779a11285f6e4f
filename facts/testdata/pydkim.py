#!/usr/bin/python3
"""A second DKIM/ARC implementation for the facts tests (python3-dkim).

pydkim.py sign KEYFILE SELECTOR DOMAIN ALG   < message > signed message
pydkim.py arcsign KEYFILE SELECTOR DOMAIN SRVID < message > sealed message
pydkim.py verify DNSJSON     < message   (exit 0: the first, newest, DKIM signature verifies)
pydkim.py arcverify DNSJSON  < message   (prints pass, fail or none)

DNSJSON maps TXT names to their record, so no resolver is needed.
"""
import json
import sys

import dkim


def dnsfunc_of(path):
    with open(path) as f:
        recs = json.load(f)

    def dnsfunc(name, timeout=5):
        n = name.decode() if isinstance(name, bytes) else name
        v = recs.get(n.rstrip('.'))
        return v.encode() if v is not None else None
    return dnsfunc


def main():
    cmd = sys.argv[1]
    msg = sys.stdin.buffer.read()
    out = sys.stdout.buffer
    if cmd == 'sign':
        key, sel, dom, alg = sys.argv[2:6]
        sig = dkim.sign(msg, sel.encode(), dom.encode(), open(key, 'rb').read(),
                        signature_algorithm=alg.encode(),
                        include_headers=[b'from', b'to', b'subject', b'date', b'message-id'],
                        linesep=b'\r\n')
        out.write(sig + msg)
    elif cmd == 'arcsign':
        key, sel, dom, srv = sys.argv[2:6]
        cv = dkim.CV_Pass if b'arc-seal' in msg.lower() else dkim.CV_None
        sig = dkim.arc_sign(msg, sel.encode(), dom.encode(), open(key, 'rb').read(),
                            srv.encode(), cv, linesep=b'\r\n')
        out.write(b''.join(sig) + msg)
    elif cmd == 'verify':
        d = dkim.DKIM(msg)
        ok = d.verify(idx=0, dnsfunc=dnsfunc_of(sys.argv[2]))
        sys.exit(0 if ok else 1)
    elif cmd == 'arcverify':
        cv, _, reason = dkim.arc_verify(msg, dnsfunc=dnsfunc_of(sys.argv[2]))
        print(cv.decode(), reason)
    else:
        sys.exit('unknown command ' + cmd)


main()
