// A CPU server with vLLM-style sleep/wake hooks, for snapshot's --before-snapshot / --after-restore tests:
// it holds a big buffer (argv[3] MiB, every page written) that POST /sleep drops and POST /wake_up rebuilds;
// GET /health answers "ok"; GET /work answers {"awake": bool, "sum": n} from the buffer's content (the same
// after every wake-up). Run with --expose-gc so /sleep returns the memory at once. Port from argv[2].
import http from 'node:http';

const port = Number(process.argv[2]);
const mib = Number(process.argv[3] ?? 128);
let buf = null;
const build = () => {
  buf = Buffer.alloc(mib * 1048576);
  for (let i = 0; i < buf.length; i += 4096) buf[i] = (i >>> 12) & 0xff;
};
const sum = () => {
  if (!buf) return null;
  let s = 0;
  for (let i = 0; i < buf.length; i += 4096) s += buf[i];
  return s;
};
build();
http
  .createServer((req, res) => {
    res.setHeader('connection', 'close');
    if (req.url === '/health') return res.end('ok');
    if (req.method === 'POST' && req.url === '/sleep') {
      buf = null;
      globalThis.gc?.();
      return res.end('asleep');
    }
    if (req.method === 'POST' && req.url === '/wake_up') {
      if (!buf) build();
      return res.end('awake');
    }
    if (req.url === '/work') return res.end(JSON.stringify({ awake: buf !== null, sum: sum() }));
    res.statusCode = 404;
    res.end('no such path');
  })
  .listen(port, '127.0.0.1', () => console.log(`sleepy listening on 127.0.0.1:${port}`));
