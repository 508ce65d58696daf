# A tiny stand-in for the Chainfire / FlareDB admin API (docs/admin-api.md), IAM's /health and
# the collector's /v1/reports, for the NixOS VM test. The Rust simulator is a cargo test
# fixture; this one only needs to be honest about membership.
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

service, port = sys.argv[1], int(sys.argv[2])
members = [
    {"id": "node01", "raft_addr": f"10.0.200.10:{port + 1}", "status": "healthy", "role": "leader"}
]
adds = []
reports = []


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            body = {"status": "healthy"}
            if service == "iam":
                body["database"] = "connected"
            self.reply(200, body)
        elif self.path == "/admin/cluster/members":
            self.reply(200, {"members": members})
        elif self.path == "/test/adds":
            self.reply(200, adds)
        elif self.path == "/test/reports":
            self.reply(200, reports)
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/admin/member/add":
            adds.append(body)
            if not any(m["id"] == body["id"] for m in members):
                members.append(
                    {"id": body["id"], "raft_addr": body["raft_addr"], "status": "healthy", "role": "follower"}
                )
            self.reply(200, {"members": members})
        elif self.path == "/v1/reports":
            reports.append(body)
            self.reply(200, {"accepted": True})
        else:
            self.reply(404, {"error": "not found"})


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
