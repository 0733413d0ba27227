"""A local HTTP server for checkpoints: tests of downloading code never leave 127.0.0.1."""

import http.server
import socket
import threading


class CheckpointServer(http.server.ThreadingHTTPServer):
    """Serves `routes[path] = (body, mode)` and records every request path.

    Modes: "ok"; "cut" (announces the whole body, sends half, closes the connection); "short"
    (a complete transfer of the first half: a truncated file served as if whole); "stall"
    (announces the body, sends half, then nothing until the server shuts down).
    """

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = {}
        self.requests = []
        self.stopping = threading.Event()

    def shutdown(self):
        self.stopping.set()  # releases stalled transfers, which server_close waits for
        super().shutdown()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        self.server.requests.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404, "Not Found")
            return
        body, mode = self.server.routes[self.path]
        sent = body[: len(body) // 2] if mode in ("cut", "short", "stall") else body
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(sent if mode == "short" else body)))
        self.end_headers()
        self.wfile.write(sent)
        if mode == "cut":
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        if mode == "stall":
            self.wfile.flush()
            self.server.stopping.wait(60)

    def log_message(self, *args):
        pass


def start_checkpoint_server():
    """Starts a `CheckpointServer` on a free 127.0.0.1 port in a daemon thread."""
    server = CheckpointServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
