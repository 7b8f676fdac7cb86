#!/usr/bin/env node
// Replays a real start-up log with its own inter-line timing compressed by SCALE (wall = log time × SCALE),
// then serves the readiness URL (GET /health → 200) on 127.0.0.1:PORT, like the engine would once up.
// Usage: replay-server.mjs LOG PORT SCALE [--never-ready]
// With REPLAY_STATS_FILE set, writes {"maxLateMs":…} (how late the latest line was written) when done.
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { timedLines } from './log-time.mjs';

const [logPath, portArg, scaleArg] = process.argv.slice(2);
const neverReady = process.argv.includes('--never-ready');
const scale = Number(scaleArg);
const lines = timedLines(readFileSync(logPath, 'utf8'));
const t0 = process.hrtime.bigint();
const nowMs = () => Number(process.hrtime.bigint() - t0) / 1e6;
let maxLate = 0;
process.on('SIGTERM', () => process.exit(0));
const waitUntil = (ms) =>
  new Promise((resolve) => {
    const step = () => {
      const left = ms - nowMs();
      if (left <= 0) return resolve();
      if (left > 3) setTimeout(step, Math.max(0, left - 2));
      else setImmediate(step);
    };
    step();
  });
for (const { line, t } of lines) {
  const at = t * scale * 1000;
  await waitUntil(at);
  maxLate = Math.max(maxLate, nowMs() - at);
  process.stderr.write(line + '\n');
}
if (process.env.REPLAY_STATS_FILE) writeFileSync(process.env.REPLAY_STATS_FILE, JSON.stringify({ maxLateMs: maxLate }));
if (neverReady) setInterval(() => {}, 1 << 30);
else
  createServer((req, res) => {
    res.statusCode = req.url === '/health' ? 200 : 404;
    res.end();
  }).listen(Number(portArg), '127.0.0.1');
