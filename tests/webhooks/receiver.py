"""A webhook receiver roster did not write: every delivery is verified by the
`standardwebhooks` package (PyPI), the Standard Webhooks reference library for Python.

Usage: receiver.py HOST PORT SECRET. Prints one JSON line per request on stdout:
{"id", "type", "user_id", "verified": true} or {"verified": false, "error": ...};
answers 204 to a verified delivery, 401 otherwise. Used by tests/api/webhooks.rs.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HOST, PORT, SECRET = sys.argv[1], int(sys.argv[2]), sys.argv[3]
HOOK = Webhook(SECRET)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            event = HOOK.verify(body, headers)
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
        print(json.dumps(line), flush=True)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args):
        pass


print("listening", flush=True)
ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
