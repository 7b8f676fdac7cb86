/**
 * A complete cache on a read-only mount (as root: `mount --bind` + `remount,ro`; otherwise chmod a-w, which
 * root ignores, so as root the bind mount is the test) works online and offline with nothing written; an
 * empty read-only cache fails with the real cause (read-only / permission), exit 3.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';
import { HubServer, servedFile, startHubServer } from '../helpers/hub-server.js';

const ROOT = process.getuid?.() === 0;
let hub: HubServer;
let tmp: string;

beforeAll(async () => {
  hub = await startHubServer();
  hub.addRepo('org/ro', [servedFile('config.json', Buffer.from('{"a":1}')), servedFile('model.safetensors', randomBytes(1_200_000)), servedFile('tok.json', Buffer.from('{}'))]);
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-ro-'));
});
afterAll(async () => {
  await hub.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** Every path under dir with its type, size and mtime: any write shows up as a difference. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      out.push(`${p} ${st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : 'f'} ${st.size} ${st.mtimeMs}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Makes `dir` read-only: a read-only bind mount onto itself as root, else chmod a-w. Returns the undo. */
function readOnly(dir: string): () => void {
  if (ROOT) {
    const a = spawnSync('mount', ['--bind', dir, dir]);
    const b = a.status === 0 ? spawnSync('mount', ['-o', 'remount,bind,ro', dir]) : a;
    if (b.status !== 0) throw new Error(`mount --bind -o ro failed (${String(b.stderr)}); run as root with mount privileges`);
    return () => void spawnSync('umount', [dir]);
  }
  const dirs: string[] = [];
  const walk = (d: string) => {
    dirs.push(d);
    for (const n of readdirSync(d)) if (lstatSync(join(d, n)).isDirectory()) walk(join(d, n));
  };
  walk(dir);
  for (const d of dirs) chmodSync(d, 0o555);
  return () => dirs.forEach((d) => chmodSync(d, 0o755));
}

describe(`read-only caches (${ROOT ? 'read-only bind mount' : 'chmod a-w'})`, () => {
  it('a complete cache: exit 0 online and offline, nothing written', async () => {
    const cache = join(tmp, 'full');
    const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HOME: join(tmp, 'home') };
    expect((await runCli(['cache', 'org/ro'], { env })).code).toBe(0);
    const before = snapshot(cache);
    const undo = readOnly(cache);
    try {
      for (const extra of [{}, { HF_HUB_OFFLINE: '1' }]) {
        const r = await runCli(['--json', 'cache', 'org/ro'], { env: { ...env, ...extra } });
        expect(r.code, r.stdout + r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ fromCache: true, bytesDownloaded: 0 });
      }
      expect(snapshot(cache)).toEqual(before);
    } finally {
      undo();
    }
  });

  it('a complete --local-dir on a read-only mount: exit 0 online, nothing written', async () => {
    const dir = join(tmp, 'local');
    const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(tmp, 'unused'), HF_HOME: join(tmp, 'home') };
    expect((await runCli(['cache', 'org/ro', '--local-dir', dir], { env })).code).toBe(0);
    const before = snapshot(dir);
    const undo = readOnly(dir);
    try {
      const r = await runCli(['--json', 'cache', 'org/ro', '--local-dir', dir], { env });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ fromCache: true, bytesDownloaded: 0 });
      expect(snapshot(dir)).toEqual(before);
    } finally {
      undo();
    }
  });

  it('an empty read-only cache: exit 3, the cause is read-only / permission', async () => {
    const cache = join(tmp, 'empty');
    mkdirSync(cache, { recursive: true });
    const undo = readOnly(cache);
    try {
      const r = await runCli(['--json', 'cache', 'org/ro'], { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HOME: join(tmp, 'home') } });
      expect(r.code).toBe(3);
      const err = JSON.parse(r.stdout).error;
      expect(err.code).toBe('PERMISSION');
      expect(err.message).toMatch(ROOT ? /read-only file system/ : /permission denied/);
      expect(err.hint).toMatch(/not writable/);
      expect(readdirSync(cache)).toEqual([]);
    } finally {
      undo();
    }
  });
});
