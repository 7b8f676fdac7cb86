"""The HTTP side the Python test servers share (here and test/device/optimize_server.py):

    serve(port, answer)                          every GET on 127.0.0.1:PORT answered 200 with `answer(path)` (bytes),
                                                 one request per connection, nothing logged
    serve_completions(port, model_id, generate)  an OpenAI-style server: GET /health and /v1/models, POST
                                                 /v1/completions answered with `generate(prompt, max_tokens)` ->
                                                 (text, token logprobs); max_tokens at least 4; nothing logged
"""

import json
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


def serve(port, answer):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = answer(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", port), H).serve_forever()


def serve_completions(port, model_id, generate, on_ready=None):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                return self.reply(200, {"status": "ok"})
            if self.path == "/v1/models":
                return self.reply(200, {"data": [{"id": model_id}]})
            return self.reply(404, {"error": "not found"})

        def do_POST(self):
            if self.path != "/v1/completions":
                return self.reply(404, {"error": "not found"})
            n = int(self.headers.get("content-length") or 0)
            try:
                req = json.loads(self.rfile.read(n) or b"{}")
            except ValueError:
                return self.reply(400, {"error": "not JSON"})
            text, lps = generate(str(req.get("prompt", "")), max(4, int(req.get("max_tokens") or 4)))
            choice = {"index": 0, "text": text, "logprobs": {"token_logprobs": lps}, "finish_reason": "length"}
            self.reply(200, {"object": "text_completion", "model": model_id, "choices": [choice]})

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    if on_ready:
        on_ready()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
