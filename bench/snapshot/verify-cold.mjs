#!/usr/bin/env node
// Does verifying every byte cost restore wall time? And where does CRIU's page restore go faster?
// A CPU server with a big heap (test/fixtures-servers/sleepy.mjs, --heap-mib, every page written) is snapshotted
// once with `coldstart snapshot`; then, side by side in one run, each `--rounds` times:
//   cold-verified   the image's files evicted from the page cache (posix_fadvise DONTNEED on those files only, so a
//                   shared machine's cache is left alone), then `coldstart restore` (verify every byte + criu restore)
//   cold-criu       the same eviction, then `criu restore` alone with coldstart's own flags (no verification)
//   warm-criu       `criu restore` with the image in the page cache
//   tmpfs-criu      `criu restore` from a copy of the image on tmpfs (--tmpfs DIR, default /dev/shm)
// plus a plain read of the page files (cold, then warm) as the disk and memory floors. Prints one JSON document;
// the verdict line compares cold-verified with cold-criu ("verify adds ≤ 5 % to a cold restore" is the target).
// Needs root, CRIU (eval "$(scripts/ci-criu.sh)"), `npm run build` (dist/ and the native addon).
//   node bench/snapshot/verify-cold.mjs --heap-mib 2048 --rounds 2 [--tmpfs /dev/shm] [--work /var/tmp/cs-verify]
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, readSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';
import { cliArgs } from '../lib/args.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { opt } = cliArgs();
const heapMiB = Number(opt('--heap-mib', '2048'));
const rounds = Number(opt('--rounds', '2'));
const tmpfsDir = opt('--tmpfs', '/dev/shm');
const workRoot = opt('--work', '/var/tmp');
const criu = process.env.COLDSTART_CRIU || 'criu';
const { loadNative } = await import(join(root, 'dist', 'native.js'));
const native = loadNative();
if (!native.ok) throw new Error(`native addon: ${native.reason}`);
const now = () => Number(process.hrtime.bigint()) / 1e9;

const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
const cs = (args) => spawnSync(process.execPath, [join(root, 'bin', 'coldstart.js'), ...args], { encoding: 'utf8', env: { ...process.env, COLDSTART_CRIU: criu }, maxBuffer: 64 << 20 });
const files = (dir) => readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()).map((f) => join(dir, f));
const evict = (dir) => native.addon.pageCache({ paths: files(dir), action: 'evict' });
const resident = async (dir) => (await native.addon.pageCache({ paths: files(dir), action: 'query' })).reduce((a, e) => a + (e.residentBytes ?? 0), 0);
const kill = (pids) => {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (let i = 0; i < 400 && pids.some((p) => existsSync(`/proc/${p}`)); i++) spawnSync('sleep', ['0.025']);
};
function readAll(dir) {
  const buf = Buffer.allocUnsafe(16 << 20);
  let bytes = 0;
  const t = now();
  for (const f of files(dir).filter((f) => /pages-\d+\.img$/.test(f))) {
    const fd = openSync(f, 'r');
    let n;
    while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) bytes += n;
    closeSync(fd);
  }
  return { bytes, seconds: now() - t };
}
/** `criu restore` as coldstart runs it (restore.ts/criu.ts), timed; returns the restored pid. */
function criuRestore(dir) {
  const work = mkdtempSync(join(workRoot, 'cs-verify-w-'));
  const t = now();
  const r = spawnSync(criu, ['restore', '-D', dir, '-W', work, '--tcp-close', '--file-locks', '--ext-unix-sk', '--restore-detached', '--pidfile', join(work, 'pid'), '-v2', '-o', 'restore.log'], { encoding: 'utf8' });
  const seconds = now() - t;
  if (r.status !== 0) throw new Error(`criu restore failed: ${readFileSync(join(work, 'restore.log'), 'utf8').slice(-400)}`);
  const pid = Number(readFileSync(join(work, 'pid'), 'utf8'));
  rmSync(work, { recursive: true, force: true });
  return { seconds, pid };
}

mkdirSync(workRoot, { recursive: true });
const work = mkdtempSync(join(workRoot, 'cs-verify-'));
const image = join(work, 'img');
const port = await freePort();
const t0 = now();
const snap = cs(['snapshot', '--json', '-o', image, '--ready-url', `http://127.0.0.1:${port}/health`, '--warmup', `http://127.0.0.1:${port}/work`, '--timeout', '300', '--', process.execPath, '--expose-gc', join(root, 'test', 'fixtures-servers', 'sleepy.mjs'), String(port), String(heapMiB)]);
if (snap.status !== 0) throw new Error(`snapshot failed: ${snap.stderr}`);
const sdoc = JSON.parse(snap.stdout);
const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
const out = {
  machine: { cpus: (await import('node:os')).cpus().length, kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), date: new Date().toISOString() },
  heapMiB,
  imageBytes: m.imageBytes,
  snapshot: { seconds: now() - t0, phases: sdoc.details.snapshotSeconds, hashBytesPerSecond: sdoc.details.hashBytesPerSecond, kinds: sdoc.details.kinds },
  rounds: [],
};
const shm = existsSync(tmpfsDir) ? mkdtempSync(join(tmpfsDir, 'cs-verify-')) : null;
try {
  for (let i = 0; i < rounds; i++) {
    const row = {};
    await evict(image);
    row.diskRead = readAll(image);
    row.cacheRead = readAll(image);
    await evict(image);
    row.residentBeforeColdVerified = await resident(image);
    let t = now();
    const r = cs(['restore', image, '--json']);
    row.coldVerified = { wall: now() - t };
    if (r.status !== 0) throw new Error(`restore failed: ${r.stdout}${r.stderr}`);
    const d = JSON.parse(r.stdout).details;
    Object.assign(row.coldVerified, { resumed: d.restored.resumedSeconds, verify: d.verifySeconds, criuRestore: d.restored.criuRestoreSeconds, total: d.restored.totalSeconds, verifyBytesPerSecond: d.verifyBytesPerSecond });
    kill(m.pids);
    await evict(image);
    row.coldCriu = criuRestore(image);
    kill(m.pids);
    readAll(image);
    row.warmCriu = criuRestore(image);
    kill(m.pids);
    if (shm) {
      rmSync(join(shm, 'img'), { recursive: true, force: true });
      cpSync(image, join(shm, 'img'), { recursive: true });
      row.tmpfsCriu = criuRestore(join(shm, 'img'));
      kill(m.pids);
      rmSync(join(shm, 'img'), { recursive: true, force: true });
    }
    out.rounds.push(row);
  }
} finally {
  kill(m.pids);
  if (shm) rmSync(shm, { recursive: true, force: true });
}
const best = (k, f) => Math.min(...out.rounds.map((r) => f(r[k])));
// Verified: from the start of verification until the tree is resumed (metadata verified, then the page data hashed
// alongside criu restore); plain: criu restore alone. Both from a cold cache, both as wall time.
const verified = best('coldVerified', (x) => x.resumed);
const plain = best('coldCriu', (x) => x.seconds);
out.summary = {
  coldVerifiedSeconds: verified,
  coldCriuSeconds: plain,
  verifyAddsPercent: Math.round(1000 * (verified / plain - 1)) / 10,
  warmCriuSeconds: best('warmCriu', (x) => x.seconds),
  tmpfsCriuSeconds: shm ? best('tmpfsCriu', (x) => x.seconds) : null,
  diskGiBps: Math.max(...out.rounds.map((r) => r.diskRead.bytes / r.diskRead.seconds / 2 ** 30)),
  cacheGiBps: Math.max(...out.rounds.map((r) => r.cacheRead.bytes / r.cacheRead.seconds / 2 ** 30)),
  hashGiBps: (out.snapshot.hashBytesPerSecond ?? 0) / 2 ** 30,
  verifyGiBps: Math.max(...out.rounds.map((r) => (r.coldVerified.verifyBytesPerSecond ?? 0) / 2 ** 30)),
  target: 'verify adds <= 5 % to a cold restore',
};
out.summary.met = out.summary.verifyAddsPercent <= 5;
rmSync(work, { recursive: true, force: true });
console.log(JSON.stringify(out, null, 2));
