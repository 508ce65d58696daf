"""Chainfire, FlareDB and IAM admin APIs of a lab fleet, as docs/admin-api.md specifies them
(the real services cannot run here), served with the fleet's generated certificates.

Usage: python3 cluster_sim.py LAB_DIR SECRETS_DIR
LAB_DIR/cluster.json holds the state and is re-read on every request, so the test (and the
nixos-rebuild stand-in) change the cluster by editing files:
  {"nodes": {"node01": {"address": "10.0.200.10", "services": ["chainfire", "flaredb", "iam"]}},
   "members": {"chainfire": ["node01", ...], "flaredb": [...]},
   "leader": {"chainfire": "node01", "flaredb": "node02"}}
LAB_DIR/broken-<node> makes that node's services unhealthy (503 on /health, "unhealthy" in
the membership). Mutual TLS: the node's certificate, client certificates from the cluster CA.
Every request is appended to LAB_DIR/admin-requests.jsonl. Prints "ready" when listening;
exits when stdin closes.
"""

import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTS = {"chainfire": 2379, "flaredb": 2479, "iam": 8080}
LOCK = threading.Lock()


def main():
    lab, secrets = sys.argv[1], sys.argv[2]
    state_path = os.path.join(lab, "cluster.json")

    def load():
        with open(state_path) as f:
            return json.load(f)

    def save(state):
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, state_path)

    def broken(node):
        return os.path.exists(os.path.join(lab, "broken-" + node))

    def make_handler(node, service):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def record(self):
                cert = self.connection.getpeercert() or {}
                cn = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
                with LOCK, open(os.path.join(lab, "admin-requests.jsonl"), "a") as f:
                    f.write(json.dumps({"node": node, "service": service, "method": self.command,
                                        "path": self.path, "client": cn[0] if cn else None}) + "\n")

            def root(self, state, who):
                return "https://%s:%d" % (state["nodes"][who]["address"], PORTS[service])

            def member(self, state, who):
                role = "leader" if state["leader"].get(service) == who else "follower"
                status = "unhealthy" if broken(who) else "healthy"
                raft = PORTS[service] + 1
                return {"id": who, "raft_addr": "%s:%d" % (state["nodes"][who]["address"], raft),
                        "status": status, "role": role}

            def do_GET(self):
                self.record()
                state = load()
                if self.path == "/health":
                    if broken(node):
                        return self.reply(503, {"status": "starting"})
                    body = {"status": "healthy"}
                    if service == "iam":
                        body["database"] = "connected"
                    return self.reply(200, body)
                if service == "iam":
                    return self.reply(404, {"error": "not found"})
                if self.path == "/admin/cluster/members":
                    ids = state["members"][service]
                    return self.reply(200, {"members": [self.member(state, m) for m in ids]})
                if self.path == "/admin/cluster/leader":
                    leader = state["leader"][service]
                    return self.reply(200, {"id": leader, "leader": self.root(state, leader)})
                return self.reply(404, {"error": "not found"})

            def do_DELETE(self):
                self.record()
                prefix = "/admin/member/"
                if service == "iam" or not self.path.startswith(prefix):
                    return self.reply(404, {"error": "not found"})
                with LOCK:
                    state = load()
                    leader = state["leader"][service]
                    if leader != node:
                        loc = self.root(state, leader) + self.path
                        return self.reply(307, {}, [("Location", loc)])
                    who = self.path[len(prefix):]
                    if who not in state["members"][service]:
                        return self.reply(404, {"error": "no such member"})
                    state["members"][service].remove(who)
                    save(state)
                return self.reply(200, {"removed": True, "id": who})

        return Handler

    state = load()
    ca = os.path.join(secrets, "ca", "ca-cert.pem")
    servers = []
    for node, info in state["nodes"].items():
        certs = os.path.join(secrets, "nodes", node, "etc", "nixos", "secrets")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certs, node + "-cert.pem"),
                            os.path.join(certs, node + "-key.pem"))
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        for service in info["services"]:
            server = ThreadingHTTPServer((info["address"], PORTS[service]),
                                         make_handler(node, service))
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
