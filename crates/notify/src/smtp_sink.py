"""Ordertrail's test SMTP sink: a real SMTP server on loopback that keeps every message it accepts.

Started by ordertrail_notify::testing::SmtpSink as
    /usr/bin/python3 smtp_sink.py MAIL_DIR CONTROL_FILE
It listens on 127.0.0.1 on a free port (aiosmtpd's Controller, asked for port 0) and prints "READY <port>" on
stdout once it answers. Each accepted message N becomes MAIL_DIR/N.json (the envelope: {"mail_from": ...,
"rcpt_tos": [...]}) and MAIL_DIR/N.eml (the raw message bytes as received), N zero-padded from 000001; the .eml
appears last and atomically (rename), so a reader that sees it finds both files complete. While CONTROL_FILE
exists and holds an SMTP reply line (e.g. "451 4.3.0 try later"), every RCPT and DATA is answered with that
line instead. The server stops when its stdin reaches end of file, i.e. when the test process goes away.
If aiosmtpd is missing it prints "MISSING aiosmtpd" and exits with status 3.
"""

import json
import os
import sys

try:
    from aiosmtpd.controller import Controller
except ImportError:
    print("MISSING aiosmtpd", flush=True)
    sys.exit(3)


class LoopbackController(Controller):
    """A Controller bound to port 0: the kernel picks a free port, read back once the socket is bound."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Sink:
    def __init__(self, mail_dir, control_file):
        self.mail_dir = mail_dir
        self.control_file = control_file
        self.seq = 0

    def failure(self):
        try:
            with open(self.control_file, encoding="utf-8") as f:
                reply = f.read().strip()
        except FileNotFoundError:
            return None
        return reply or None

    def write(self, name, data):
        tmp = os.path.join(self.mail_dir, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.mail_dir, name))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.failure()
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.failure()
        if reply:
            return reply
        self.seq += 1
        name = "%06d" % self.seq
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        self.write(name + ".json", json.dumps(meta).encode("utf-8"))
        self.write(name + ".eml", raw)
        return "250 2.0.0 Message accepted"


def main():
    if len(sys.argv) != 3:
        print("usage: smtp_sink.py MAIL_DIR CONTROL_FILE", file=sys.stderr)
        sys.exit(2)
    mail_dir, control_file = sys.argv[1], sys.argv[2]
    os.makedirs(mail_dir, exist_ok=True)
    controller = LoopbackController(Sink(mail_dir, control_file), hostname="127.0.0.1", port=0)
    controller.start()
    print("READY %d" % controller.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
