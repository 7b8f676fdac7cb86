#!/usr/bin/env node
// Writes MB MiB to stderr without a newline (blocking writes: it cannot go on until the reader drains the
// pipe), then a newline and "done writing", then serves GET /health on 127.0.0.1:PORT.
// Usage: long-line-server.mjs PORT MB
import { createServer } from 'node:http';
import { writeSync } from 'node:fs';

const [port, mb] = process.argv.slice(2).map(Number);
const chunk = Buffer.alloc(1 << 20, 0x61);
const t0 = process.hrtime.bigint();
for (let i = 0; i < mb; i++) {
  let off = 0;
  while (off < chunk.length) {
    try {
      off += writeSync(2, chunk, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
writeSync(2, `\ndone writing ${mb} MiB in ${ms.toFixed(0)} ms\n`);
process.on('SIGTERM', () => process.exit(0));
createServer((req, res) => {
  res.statusCode = req.url === '/health' ? 200 : 404;
  res.end();
}).listen(port, '127.0.0.1');
