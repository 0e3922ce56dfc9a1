#!/usr/bin/env python3
"""A small stateful fake of the Consul agent API for the supervisor benchmark (no Consul can be
installed here): service register/deregister, TTL check updates that lapse to critical, and
/v1/health/service/NAME?passing=1. It logs every call as one JSON line to the file given, so
two supervisors' traffic can be compared. Usage: consul_fake.py PORT LOGFILE"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

services = {}
lock = threading.Lock()
log = open(sys.argv[2], "a", buffering=1)


def status_of(service):
    if service["status"] != "critical" and time.time() - service["updated"] > service["ttl"]:
        service["status"] = "critical"
    return service["status"]


class Agent(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def handle_call(self):
        url = urlparse(self.path)
        body = self.body()
        log.write(json.dumps({"t": time.time(), "method": self.command, "path": url.path, "body": body}) + "\n")
        with lock:
            if url.path == "/v1/agent/service/register":
                ttl = int(str(body.get("Check", {}).get("TTL", "3600s")).rstrip("s") or 3600)
                services[body.get("ID") or body["Name"]] = {
                    "name": body["Name"], "address": body.get("Address", ""), "port": body.get("Port", 0),
                    "ttl": ttl, "status": body.get("Check", {}).get("Status", "critical"), "updated": time.time()}
                return self.reply(200)
            if url.path.startswith("/v1/agent/service/deregister/"):
                return self.reply(200 if services.pop(url.path.rsplit("/", 1)[1], None) else 404)
            if url.path.startswith("/v1/agent/check/update/service:"):
                service = services.get(url.path.split("service:", 1)[1])
                if service is None:
                    return self.reply(404, "Unknown check ID")
                service["status"], service["updated"] = body["Status"], time.time()
                return self.reply(200)
            if url.path.startswith("/v1/health/service/"):
                name = url.path.rsplit("/", 1)[1]
                passing = parse_qs(url.query).get("passing", ["0"])[0] not in ("0", "false")
                entries = [{"Node": {"Node": "fake", "Address": "127.0.0.1"},
                            "Service": {"ID": sid, "Service": s["name"], "Address": s["address"], "Port": s["port"]}}
                           for sid, s in services.items()
                           if s["name"] == name and (not passing or status_of(s) == "passing")]
                return self.reply(200, entries)
            if url.path == "/fake/add":
                services[body["ID"]] = {"name": body["Name"], "address": body["Address"], "port": body["Port"],
                                        "ttl": 3600, "status": "passing", "updated": time.time()}
                return self.reply(200)
        return self.reply(404)

    do_GET = do_PUT = do_POST = handle_call


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Agent).serve_forever()
