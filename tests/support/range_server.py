#!/usr/bin/env python3
"""An HTTP/1.1 file server with Range support for resumable-download tests.

Python's http.server ignores Range, so this one implements what the tests need: Range
("bytes=N-" and "bytes=N-M") with 206 and Content-Range, If-Range against a strong ETag or
Last-Modified, and faults on request: cut the connection (FIN) or stall after N body bytes for
the first K requests, answer 200 to Range requests, serve another file (new ETag) from the R-th
request on. The file is at /image.zst (anything else is 404). Binds 127.0.0.1 on an OS-chosen
port and prints the port on stdout. Each request is logged as one JSON line (client port, Range, If-Range, status) to --log.
"""

import argparse
import hashlib
import json
import socket
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Version:
    def __init__(self, path, stamp):
        with open(path, "rb") as f:
            self.data = f.read()
        self.etag = '"' + hashlib.sha256(self.data).hexdigest()[:16] + '"'
        self.last_modified = formatdate(stamp, usegmt=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--fault", choices=["none", "cut", "stall"], default="none")
    p.add_argument("--fault-after", type=int, default=0, help="body bytes sent before the fault")
    p.add_argument("--fault-requests", type=int, default=0, help="how many first requests get the fault")
    p.add_argument("--ignore-range", action="store_true", help="answer 200 with the whole file to Range")
    p.add_argument("--no-validators", action="store_true", help="send neither ETag nor Last-Modified")
    p.add_argument("--change-to", help="another file served from request --change-at on")
    p.add_argument("--change-at", type=int, default=0)
    args = p.parse_args()

    versions = [Version(args.file, 1_700_000_000)]
    if args.change_to:
        versions.append(Version(args.change_to, 1_700_000_100))
    state = {"requests": 0}
    lock = threading.Lock()
    log = open(args.log, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *a):  # quiet: stdout carries only the port
            pass

        def do_GET(self):
            with lock:
                state["requests"] += 1
                number = state["requests"]
            if self.path != "/image.zst":
                log.write(json.dumps({"request": number, "path": self.path, "status": 404}) + "\n")
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            version = versions[1] if args.change_to and number >= args.change_at else versions[0]
            data = version.data
            range_header = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            start, end, status = 0, len(data) - 1, 200
            if range_header and not args.ignore_range:
                valid = if_range is None or if_range in (version.etag, version.last_modified)
                if valid:
                    spec = range_header.removeprefix("bytes=")
                    first, _, last = spec.partition("-")
                    start = int(first)
                    end = min(int(last), len(data) - 1) if last else len(data) - 1
                    status = 206
                    if start >= len(data):
                        status = 416
            log.write(json.dumps({"request": number, "client_port": self.client_address[1], "range": range_header,
                                  "if_range": if_range, "status": status}) + "\n")
            if status == 416:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            body = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, len(data)))
            if not args.no_validators:
                self.send_header("ETag", version.etag)
                self.send_header("Last-Modified", version.last_modified)
            self.send_header("Connection", "close")
            self.end_headers()
            faulty = args.fault != "none" and number <= args.fault_requests
            limit = min(args.fault_after, len(body)) if faulty else len(body)
            sent = 0
            try:
                while sent < limit:
                    n = min(65536, limit - sent)
                    self.wfile.write(body[sent:sent + n])
                    sent += n
                self.wfile.flush()
                if faulty and args.fault == "cut":
                    self.connection.shutdown(socket.SHUT_WR)
                elif faulty and args.fault == "stall":
                    # Hold the connection open, silent, until the client gives up on it.
                    self.connection.settimeout(30)
                    try:
                        while self.connection.recv(4096):
                            pass
                    except OSError:
                        pass
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    # Nothing more goes to stdout (the test stops reading it); errors go next to the log.
    sys.stderr = open(args.log + ".stderr", "a", buffering=1)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
