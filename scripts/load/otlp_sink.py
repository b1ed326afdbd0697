"""An OTLP/HTTP trace sink for load scripts: accepts every export and discards it.

    python3 scripts/load/otlp_sink.py PORT

Listens on 127.0.0.1:PORT and answers each POST (any path, as
`/v1/traces`) with 200 and an empty ExportTraceServiceResponse, after
reading the whole body, as a collector's receiver would.
"""

import http.server
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
