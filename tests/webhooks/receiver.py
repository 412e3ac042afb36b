"""A webhook receiver roster did not write: every delivery is verified by the
`standardwebhooks` package (PyPI), the Standard Webhooks reference library for Python.

Usage: receiver.py HOST PORT SECRET [DOWN_FILE]
  SECRET     the endpoint's `whsec_…` secret, or a file holding it (read at each request)
  PORT       0 picks a free one
  DOWN_FILE  while this file exists the receiver is "down": it answers 503 and reads nothing

Prints `listening PORT` once, then one JSON line per delivery it took:
{"id", "type", "user_id", "verified": true} or {"verified": false, "error": ...}, and
answers 204 to a verified delivery, 401 otherwise. Used by tests/api/webhooks.rs.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST, PORT, SECRET = sys.argv[1], int(sys.argv[2]), sys.argv[3]
DOWN_FILE = sys.argv[4] if len(sys.argv) > 4 else None
# Deliveries arrive on several threads at once, and print() writes the text and the newline
# separately: two lines could interleave into one the test cannot read (seen in CI: two
# deliveries taken, answered 204, and missing from the output). One line at a time.
PRINTING = threading.Lock()


def hook():
    if SECRET.startswith("whsec_"):
        return Webhook(SECRET)
    with open(SECRET) as f:
        return Webhook(f.read().strip())


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        if DOWN_FILE and os.path.exists(DOWN_FILE):
            self.send_response(503)
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            event = hook().verify(body, headers)
            line = {
                "verified": True,
                "id": headers["webhook-id"],
                "type": event["type"],
                "user_id": event["data"]["user_id"],
            }
            status = 204
        except WebhookVerificationError as e:
            line = {"verified": False, "error": str(e)}
            status = 401
        with PRINTING:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer((HOST, PORT), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
