"""A real SMTP server for roster's tests (aiosmtpd), run as a subprocess.

    python3 tests/smtp/smtp_server.py PORT OUTDIR

Accepts every message and writes it, parsed, as OUTDIR/<n>.json: envelope sender and
recipients, Message-ID, Subject, To, and the decoded text and HTML parts. Refuses (550) any
recipient whose local part starts with "bounce", so tests can watch a delivery fail.
Prints "ready" once listening.
"""

import asyncio
import email
import email.policy
import json
import os
import sys
import threading

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, outdir):
        self.outdir = outdir
        self.lock = threading.Lock()
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("bounce"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "message_id": message["Message-ID"],
            "subject": message["Subject"],
            "to": message["To"],
            "from": message["From"],
            "text": text.get_content() if text else None,
            "html": html.get_content() if html else None,
        }
        with self.lock:
            self.count += 1
            n = self.count
        tmp = os.path.join(self.outdir, f".{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, os.path.join(self.outdir, f"{n:06d}.json"))
        return "250 Message accepted for delivery"


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    controller = Controller(Handler(outdir), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
