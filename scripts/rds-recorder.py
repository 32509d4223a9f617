"""A recording proxy in front of moto's RDS API, for the local stack's tests only.

moto has no database behind RDS and never reveals a master password it was sent, so the tests
cannot otherwise see the exact ModifyDBInstance / ModifyDBCluster calls the functions make. The
functions' RDS endpoint (AWS_ENDPOINT_URL_RDS) points here; every request is forwarded to moto
unchanged and its form parameters appended, one JSON object per line, to the file named on the
command line. The file holds the throw-away passwords of the test run; it lives in the stack's
directory and is deleted with it.

Usage: python rds-recorder.py LISTEN_PORT MOTO_URL RECORD_FILE
"""

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN_PORT, MOTO_URL, RECORD_FILE = int(sys.argv[1]), sys.argv[2].rstrip("/"), sys.argv[3]


class Recorder(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        params = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        with open(RECORD_FILE, "a", encoding="utf-8") as record:
            record.write(json.dumps(params) + "\n")
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = urllib.request.Request(MOTO_URL + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, reply, reply_headers = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            status, reply, reply_headers = error.code, error.read(), error.headers
        self.send_response(status)
        for key in ("Content-Type", "x-amzn-RequestId"):
            if reply_headers.get(key):
                self.send_header(key, reply_headers[key])
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", LISTEN_PORT), Recorder).serve_forever()
