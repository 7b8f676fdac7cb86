// A CPU-only HTTP server with state in memory, for snapshot/restore tests: GET /health answers "ok";
// every other request bumps a counter and answers {"count": n, "pid": pid}. Port from argv[2].
import http from 'node:http';

let count = 0;
const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    res.setHeader('connection', 'close');
    if (req.url === '/health') return res.end('ok');
    count += 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ count, pid: process.pid }));
  })
  .listen(port, '127.0.0.1', () => console.log(`counter listening on 127.0.0.1:${port}`));
