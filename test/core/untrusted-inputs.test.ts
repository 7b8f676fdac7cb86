/**
 * Issue 22, untrusted inputs and waits, driven through the CLI: files that are not what they claim (/dev/zero, FIFOs,
 * symlink loops) are refused before they can fill memory or block, network waits end at their deadline and promptly
 * after SIGTERM, thousands of shards load with a bounded number of open files, and --json prints one document on every
 * exit path. Children run under a hard deadline: a regression fails the test instead of hanging the suite.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, runChild as runCliChild, type ChildRun } from '../helpers/cli.js';
import { callNative, requireNative } from '../../src/native.js';
import { writeTorchCheckpoint } from '../../src/formats/torch-writer.js';
import { startBlackHole, startFake } from '../helpers/fake-servers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-inputs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** runChild with this file's defaults: its temp dir, offline, its own coldstart cache. */
function runChild(args: string[], opts: Parameters<typeof runCliChild>[1] = {}): Promise<ChildRun> {
  return runCliChild(args, { cwd: tmp, ...opts, env: { HF_HUB_OFFLINE: '1', COLDSTART_CACHE: join(tmp, 'cache'), ...opts.env } });
}

/**
 * Node flags that collect garbage every 20 ms in the child: a timeout that only a garbage-collectable object keeps
 * alive (an AbortSignal.any composite, which made --timeout 3s wait for undici's 300 s) is lost at once, so a
 * wait without its own deadline shows up in every run instead of one in six.
 */
const GC_PRESSURE = (() => {
  const f = join(tmp, 'gc-pressure.cjs');
  writeFileSync(f, 'setInterval(() => globalThis.gc(), 20).unref();\n');
  return ['--expose-gc', '--require', f];
})();

/** The one JSON document of a --json run (JSON.parse fails on none or two). */
function doc(stdout: string): { schema: string; error?: { code: string; exitCode: number; message: string; details?: Record<string, unknown> } } & Record<string, unknown> {
  return JSON.parse(stdout);
}

/** A minimal coldstart/profile@1 report of one run: total 3 s, gpu-load 2 s. */
function report(name: string): string {
  const p = join(tmp, name);
  writeFileSync(
    p,
    JSON.stringify({ schema: 'coldstart/profile@1', createdAt: '2026-12-01T00:00:00Z', host: { hostname: 'a' }, phases: [{ name: 'gpu-load', status: 'ok', seconds: 2 }], total: { seconds: 3, complete: true } }),
  );
  return p;
}

function fifo(path: string): string {
  execFileSync('mkfifo', [path]);
  return path;
}

/** A safetensors file with one F32 tensor of two elements. */
function shard(path: string, name: string): void {
  let h = JSON.stringify({ [name]: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } });
  h += ' '.repeat((8 - (h.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(path, Buffer.concat([len, Buffer.from(h), Buffer.alloc(8, 1)]));
}

describe('case 1: small untrusted files are read by the one reader (regular, non-blocking, size-capped)', () => {
  it('report merge /dev/zero is refused unread: exit 2, BAD_INPUT, in seconds (no 16 GB read)', async () => {
    const r = await runChild(['report', 'merge', '/dev/zero', '--json'], { deadlineMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    expect(doc(r.stdout).error).toMatchObject({ code: 'BAD_INPUT', exitCode: 2 });
  });

  it('profile --config /dev/zero is refused unread: exit 2, BAD_CONFIG naming the flag', async () => {
    const r = await runChild(['profile', '--estimate', '--config', '/dev/zero', '--json'], { deadlineMs: 20_000 });
    expect(r.code).toBe(2);
    const e = doc(r.stdout).error!;
    expect(e.code).toBe('BAD_CONFIG');
    expect(e.message).toContain('/dev/zero');
    expect(e.message).toContain('--config');
  });

  it('a FIFO given as a report is refused without blocking (no writer ever opens it)', async () => {
    const f = fifo(join(tmp, 'report.fifo'));
    const r = await runChild(['report', 'merge', f, '--json'], { deadlineMs: 20_000 });
    expect(r.signal).toBeNull(); // not killed at the deadline: it never blocked
    expect(r.code).toBe(2);
    expect(doc(r.stdout).error).toMatchObject({ code: 'BAD_INPUT', exitCode: 2 });
  });

  it('an auto-discovered coldstart.config.json that is a FIFO in a parent folder is refused naming it (exit 2)', async () => {
    const root = join(tmp, 'cfg-fifo');
    const deep = join(root, 'a', 'b');
    mkdirSync(deep, { recursive: true });
    const cfg = fifo(join(root, 'coldstart.config.json'));
    const r = await runChild(['report', 'merge', report('r1.json'), '--json'], { cwd: deep, deadlineMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    const e = doc(r.stdout).error!;
    expect(e.code).toBe('BAD_CONFIG');
    expect(e.message).toContain(cfg);
  });

  it('a FIFO named model.safetensors.index.json is refused without blocking (prefetch of the folder)', async () => {
    const dir = join(tmp, 'index-fifo');
    mkdirSync(dir);
    fifo(join(dir, 'model.safetensors.index.json'));
    const r = await runChild(['prefetch', dir, '--json'], { deadlineMs: 20_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    expect(doc(r.stdout).error).toMatchObject({ code: 'BAD_INPUT', exitCode: 2 });
  });

  it('a FIFO among the shards an index names, or named pytorch_model.bin, is refused without blocking (exit 2)', async () => {
    const dir = join(tmp, 'shard-fifo');
    mkdirSync(dir);
    shard(join(dir, 'a.safetensors'), 'a');
    fifo(join(dir, 'b.safetensors'));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'a.safetensors', b: 'b.safetensors' } }));
    const bin = join(tmp, 'bin-fifo');
    mkdirSync(bin);
    fifo(join(bin, 'pytorch_model.bin'));
    writeFileSync(join(bin, 'config.json'), '{"torch_dtype": "float16"}');
    for (const args of [
      ['prefetch', dir, '--json'],
      ['profile', dir, '--only', 'gpu-load', '--json'],
      ['profile', bin, '--only', 'gpu-load', '--json'],
    ]) {
      const r = await runChild(args, { deadlineMs: 30_000 });
      expect(r.signal, args.join(' ')).toBeNull();
      expect(r.code, args.join(' ')).toBe(2);
      expect(doc(r.stdout).error!.message).toContain('not a regular file');
    }
  });

  it('the native layer refuses a FIFO itself (non-blocking open): pageCache and prefetch reject, never block', async () => {
    const f = fifo(join(tmp, 'native.fifo'));
    const addon = requireNative('test');
    const deadline = <T,>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('blocked')), 10_000))]);
    for (const call of [() => addon.pageCache({ paths: [f], action: 'query' }), () => addon.prefetch({ paths: [f] })]) {
      const e = await deadline(callNative(call, 'fifo')).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toMatchObject({ code: 'CORRUPT_FILE' });
    }
  });
});

describe('report merge: a malformed report is refused naming the field (exit 2), never a TypeError (exit 3)', () => {
  it.each([
    ['no total', { schema: 'coldstart/profile@1', phases: [] }, 'total'],
    ['a null phase', { schema: 'coldstart/profile@1', phases: [null], total: { seconds: 1 } }, 'phases[0]'],
    ['samples of the wrong type', { schema: 'coldstart/profile@1', phases: [], total: { seconds: 1 }, runs: { samples: [null] } }, 'runs.samples[0]'],
    ['seconds as a string', { schema: 'coldstart/profile@1', phases: [{ name: 'gpu-load', status: 'ok', seconds: '2' }], total: { seconds: 1 } }, 'phases[0]'],
  ])('%s', async (_what, body, field) => {
    const f = join(tmp, `malformed-${field.replace(/\W/g, '')}.json`);
    writeFileSync(f, JSON.stringify(body));
    const r = await runCli(['report', 'merge', f, '--json']);
    expect(r.code).toBe(2);
    const e = doc(r.stdout).error!;
    expect(e.code).toBe('BAD_INPUT');
    expect(e.message).toContain(`${f}: ${field} is not`);
  });
});

describe('case 2: one deadline per network wait', () => {
  it('warmup --url at a server that accepts and never answers ends at --timeout (exit 3, TIMEOUT), not at 306 s', async () => {
    const hole = await startBlackHole();
    try {
      const r = await runChild(['warmup', '--url', hole.url, '--timeout', '3s', '--json'], { node: GC_PRESSURE, deadlineMs: 40_000 });
      expect(r.signal).toBeNull();
      expect(r.code).toBe(3);
      expect(doc(r.stdout).error).toMatchObject({ code: 'TIMEOUT', exitCode: 3 });
      expect(r.seconds).toBeLessThan(20); // 3 s + start-up and grace on a loaded machine
    } finally {
      await hole.close();
    }
  });

  it('a stream that stops mid-answer ends at --timeout too, and the process does not stay behind on its socket', async () => {
    const s = await startFake({ api: 'openai', stallAfterTokens: 1 });
    try {
      const r = await runChild(['warmup', '--url', s.url, '--timeout', '3s', '--json'], { node: GC_PRESSURE, deadlineMs: 40_000 });
      expect(r.signal).toBeNull();
      expect(r.code).toBe(3);
      expect(doc(r.stdout).error).toMatchObject({ code: 'TIMEOUT' });
      expect(r.seconds).toBeLessThan(20);
    } finally {
      await s.close();
    }
  });

  it('SIGTERM during a wait (default 120 s deadline) ends the run within 20 s with 143 and one INTERRUPTED document', async () => {
    // A server that accepts and never answers, and says when the CLI's first connection arrives: the CLI is then
    // inside its wait, its signal handlers installed.
    let connected!: () => void;
    const arrived = new Promise<void>((r) => (connected = r));
    const sockets: Socket[] = [];
    const hole = createServer((c) => {
      sockets.push(c);
      connected();
    });
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
    try {
      let sent = 0;
      const child = runChild(['warmup', '--url', `http://127.0.0.1:${(hole.address() as AddressInfo).port}`, '--json'], { deadlineMs: 90_000, onSpawn: (kill) => void arrived.then(() => ((sent = Date.now()), kill('SIGTERM'))) });
      const r = await child;
      expect(sent).toBeGreaterThan(0);
      expect(r.code).toBe(143);
      expect((Date.now() - sent) / 1000).toBeLessThan(20);
      expect(doc(r.stdout).error).toMatchObject({ code: 'INTERRUPTED', exitCode: 143 });
    } finally {
      for (const c of sockets) c.destroy();
      await new Promise<void>((r) => hole.close(() => r()));
    }
  });
});

describe('warmup --url: the --header values never leave the server\'s origin', () => {
  it('a redirect to another origin is followed without them (undici would forward X-Api-Key)', async () => {
    const other = await startFake({ api: 'openai' });
    const hop = createHttpServer((req, res) => {
      res.writeHead(307, { location: `${other.url.replace('127.0.0.1', 'localhost')}${req.url}` });
      res.end();
    });
    await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()));
    try {
      const url = `http://127.0.0.1:${(hop.address() as AddressInfo).port}`;
      const r = await runCli(['warmup', '--url', url, '--header', 'X-Api-Key: sekrit-key', '--header', 'Authorization: Bearer sekrit-token', '--runs', '1', '--timeout', '20s', '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(other.log.length).toBeGreaterThan(1);
      for (const h of other.headers) {
        expect(h['x-api-key']).toBeUndefined();
        expect(h.authorization).toBeUndefined();
      }
    } finally {
      hop.closeAllConnections();
      await new Promise<void>((r) => hop.close(() => r()));
      await other.close();
    }
  });
});

describe('case 3: bounded open files', () => {
  const dir = join(tmp, 'shards');
  // 15× the open-file limit below: an fd per shard would fail long before the end (10,000 took 42 s to no more effect).
  const N = 2_000;
  const make = () => {
    mkdirSync(dir);
    const map: Record<string, string> = {};
    for (let i = 0; i < N; i++) {
      const f = `model-${String(i + 1).padStart(5, '0')}-of-${N}.safetensors`;
      shard(join(dir, f), `w${i}`);
      map[`w${i}`] = f;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
  };

  it('profile of a folder of 2,000 shards under ulimit -n 128 loads every shard (no EMFILE)', async () => {
    make();
    const r = await runChild(['profile', dir, '--only', 'gpu-load', '--json'], { shell: 'ulimit -n 128', deadlineMs: 180_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).not.toMatch(/too many open files|EMFILE/i);
    expect(r.code).toBe(0);
    const gl = (doc(r.stdout).phases as Array<{ name: string; status: string; metrics: Record<string, unknown> }>).find((p) => p.name === 'gpu-load')!;
    expect(gl.status).not.toBe('failed');
    expect(gl.metrics.files).toBe(N);
    expect(gl.metrics.bytes).toBe(N * 8);
  }, 200_000);

  it('convert of a checkpoint in 600 .bin shards under ulimit -n 128: every tensor converted, exit 0', async () => {
    const src = join(tmp, 'bin-shards');
    mkdirSync(src);
    const M = 600; // ~5× the open-file limit
    const map: Record<string, string> = {};
    for (let i = 0; i < M; i++) {
      const f = `pytorch_model-${String(i + 1).padStart(5, '0')}-of-${M}.bin`;
      const fd = openSync(join(src, f), 'w');
      await writeTorchCheckpoint(fd, [{ name: `w${i}`, dtype: 'F32', shape: [2] }], (_i, chunk) => void chunk.fill(1));
      closeSync(fd);
      map[`w${i}`] = f;
    }
    writeFileSync(join(src, 'pytorch_model.bin.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
    const r = await runChild(['convert', src, '-o', join(tmp, 'bin-shards-out'), '--json'], { shell: 'ulimit -n 128', deadlineMs: 120_000 });
    expect(r.signal).toBeNull();
    expect(r.stderr).not.toMatch(/too many open files|EMFILE/i);
    expect(r.code).toBe(0);
    expect((doc(r.stdout).details as { tensors: number }).tensors).toBe(M);
  }, 150_000);

  it('prefetch of the same folder under ulimit -n 128: every file read, exit 0', async () => {
    const r = await runChild(['prefetch', dir, '--strategy', 'pread', '--json'], { shell: 'ulimit -n 128', deadlineMs: 120_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    const d = doc(r.stdout) as unknown as { files: unknown[]; bytes: number };
    expect(d.files).toHaveLength(N);
  }, 150_000);
});

describe('case 4: --json prints exactly one document on every exit path', () => {
  it.each([
    [['--json', 'doctor', '--nope'], 'unknownOption'],
    [['--json', 'convert'], 'missingArgument'],
    [['--json', 'frobnicate'], 'unknownCommand'],
    [['--json', 'report'], 'missingSubcommand'],
    [['--json'], 'missingSubcommand'],
    [['profile', '--json', '--runs'], 'optionMissingArgument'],
    [['report', 'merge', '--json'], 'missingArgument'],
  ])('%j: exit 2 and one coldstart/error@1 document (USAGE, %s)', async (args, reason) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    const d = doc(r.stdout);
    expect(d.schema).toBe('coldstart/error@1');
    expect(d.error).toMatchObject({ code: 'USAGE', exitCode: 2, details: { reason } });
    expect(r.stderr).not.toBe(''); // the human line and usage (or the help) stay on stderr
  });

  it('without --json a usage error still prints nothing on stdout', async () => {
    const r = await runCli(['doctor', '--nope']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
  });
});

describe('case 5: symlink loops are refused input (exit 2), never a raw ELOOP (exit 3)', () => {
  const loop = join(tmp, 'loop');
  symlinkSync('loop', loop);
  const folder = join(tmp, 'loop-inside');
  mkdirSync(folder);
  shard(join(folder, 'a.safetensors'), 'a');
  symlinkSync('x.safetensors', join(folder, 'x.safetensors'));

  it.each([
    ['a model folder', ['profile', loop, '--estimate', '--json']],
    ['a weight file inside a model folder', ['profile', folder, '--estimate', '--json']],
    ['a weights file', ['profile', join(folder, 'x.safetensors'), '--json']],
    ['a report', ['report', 'merge', loop, '--json']],
    ['a prefetch target', ['prefetch', loop, '--json']],
    ['a weight file of a prefetch folder', ['prefetch', folder, '--json']],
  ])('%s that is a symlink loop: exit 2, BAD_INPUT', async (_what, args) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    const e = doc(r.stdout).error!;
    expect(e.code).toBe('BAD_INPUT');
    expect(e.message).toContain('symbolic links');
  });
});

describe('case 6: --since is a time within the last day, not in the future', () => {
  it.each([
    ['0', '1970: a 56-year container phase'],
    [String(Math.floor(Date.now() / 1000) - 3 * 86_400), 'three days ago'],
    [String(Math.floor(Date.now() / 1000) + 86_400), 'tomorrow'],
    [String(Date.now()), 'epoch milliseconds (far future)'],
    ['yesterday', 'unparseable'],
  ])('--since %s (%s): exit 2, BAD_FLAG naming --since, before anything runs', async (since) => {
    const r = await runCli(['profile', '--since', since, '--only', 'container', '--json']);
    expect(r.code).toBe(2);
    const e = doc(r.stdout).error!;
    expect(e.code).toBe('BAD_FLAG');
    expect(e.message).toMatch(/^--since: expected an RFC 3339 time .* or Unix epoch seconds/);
  });

  it('a --since ten seconds ago gives a container phase of about ten seconds', async () => {
    const since = new Date(Date.now() - 10_000).toISOString();
    // A child process: --since is measured to coldstart's own process start, which in-process would be the test
    // worker's (minutes old after a long run of other files).
    const r = await runChild(['profile', '--since', since, '--only', 'container', '--json'], { deadlineMs: 60_000 });
    expect(r.code).toBe(0);
    const c = (doc(r.stdout).phases as Array<{ name: string; status: string; seconds: number }>).find((p) => p.name === 'container')!;
    expect(c.status).toBe('ok');
    expect(c.seconds).toBeGreaterThan(9);
    expect(c.seconds).toBeLessThan(120);
  });
});

describe('case 7: a phase budgeted twice on one command line is a usage error', () => {
  it.each([
    [['--budget', 'total=5s,total=10s']],
    [['--budget', 'total=5s', '--budget', 'gpu-load=1s,total=10s']],
  ])('%j: exit 2, BAD_BUDGET', async (flags) => {
    const r = await runCli(['report', 'merge', report('r2.json'), ...flags, '--json'], { cwd: tmp });
    expect(r.code).toBe(2);
    expect(doc(r.stdout).error).toMatchObject({ code: 'BAD_BUDGET', exitCode: 2 });
  });

  it("a --budget overriding the config file's value for the same phase stays legal", async () => {
    const dir = join(tmp, 'cfg-override');
    mkdirSync(dir);
    writeFileSync(join(dir, 'coldstart.config.json'), JSON.stringify({ budgets: { total: '1s' } }));
    const r2 = report('r3.json');
    const fromConfig = await runCli(['report', 'merge', r2, '--json'], { cwd: dir });
    expect(fromConfig.code).toBe(1); // total 3 s over the config's 1 s
    const overridden = await runCli(['report', 'merge', r2, '--budget', 'total=100s', '--json'], { cwd: dir });
    expect(overridden.code).toBe(0);
  });
});
