"""The HTTP side the Python test servers here share: `serve(port, answer)` answers every GET on 127.0.0.1:PORT with
200 and `answer(path)` (bytes), one request per connection, nothing logged."""

from http.server import BaseHTTPRequestHandler, HTTPServer


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
