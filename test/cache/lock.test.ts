/** src/cache/lock.ts: atomic creation with content, identity, heartbeat, staleness rules, mutual exclusion. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock, inspectLock, pidNamespace, processStart, readOwner } from '../../src/cache/lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'coldstart-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('per-blob lock', () => {
  it('is created with its full identity (host, PID namespace, pid, start time) and removed on release', async () => {
    const p = join(dir, 'a.coldstart.lock');
    const l = await acquireLock(p);
    const o = readOwner(p)!;
    expect(o).toMatchObject({ v: 1, host: hostname(), pid: process.pid, pidns: pidNamespace(), start: processStart('self') });
    expect(o.pidns).toMatch(/^\d+$/); // Linux: the /proc/self/ns/pid inode
    expect(o.start).toMatch(/^\d+$/);
    expect(readdirSync(dir)).toEqual(['a.coldstart.lock']); // the temp file it was linked from is gone
    expect(inspectLock(p).state).toBe('live');
    l.release();
    expect(existsSync(p)).toBe(false);
  });

  it('excludes: 20 concurrent acquirers never overlap', async () => {
    const p = join(dir, 'b.coldstart.lock');
    let inside = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const l = await acquireLock(p, { pollMs: 5 });
        inside++;
        max = Math.max(max, inside);
        await new Promise((r) => setTimeout(r, 2));
        inside--;
        l.release();
      }),
    );
    expect(max).toBe(1);
  });

  it('heartbeat: the holder refreshes mtime; another host is stale only when its heartbeat is older than the bound', async () => {
    const p = join(dir, 'c.coldstart.lock');
    const env = { COLDSTART_LOCK_STALE_SECONDS: '0.4' };
    const l = await acquireLock(p, { env });
    const old = new Date(Date.now() - 5000);
    utimesSync(p, old, old);
    await new Promise((r) => setTimeout(r, 250)); // beats every bound/4 = 100 ms
    expect(Date.now() - statSync(p).mtimeMs).toBeLessThan(300);
    l.release();
    writeFileSync(p, JSON.stringify({ v: 1, host: 'elsewhere', pidns: '1', pid: 1, start: '1', token: 't', created: '' }));
    expect(inspectLock(p, 0.4).state).toBe('live');
    utimesSync(p, old, old);
    const st = inspectLock(p, 0.4);
    expect(st.state).toBe('stale');
    expect(st.state === 'stale' && st.why).toMatch(/no heartbeat/);
  });

  it('same host and PID namespace with the pid gone, or reused (start time differs): stale at once; another PID namespace: judged by heartbeat only', () => {
    const p = join(dir, 'd.coldstart.lock');
    writeFileSync(p, JSON.stringify({ v: 1, host: hostname(), pidns: pidNamespace(), pid: 999_999_999, start: '1', token: 't', created: '' }));
    expect(inspectLock(p).state).toBe('stale');
    writeFileSync(p, JSON.stringify({ v: 1, host: hostname(), pidns: pidNamespace(), pid: process.pid, start: '1', token: 't', created: '' }));
    const st = inspectLock(p);
    expect(st.state === 'stale' && st.why).toMatch(/reused/);
    // Same hostname, other PID namespace (a container of the same pod): pid 999999999 means nothing here.
    writeFileSync(p, JSON.stringify({ v: 1, host: hostname(), pidns: '1', pid: 999_999_999, start: '1', token: 't', created: '' }));
    expect(inspectLock(p).state).toBe('live');
  });

  it('takes over a stale lock and never removes a lock it does not own on release', async () => {
    const p = join(dir, 'e.coldstart.lock');
    writeFileSync(p, JSON.stringify({ v: 1, host: hostname(), pidns: pidNamespace(), pid: 999_999_999, start: '1', token: 't', created: '' }));
    const l = await acquireLock(p);
    expect(readOwner(p)!.pid).toBe(process.pid);
    writeFileSync(p, JSON.stringify({ v: 1, host: 'other', pidns: '1', pid: 7, start: '1', token: 'someone-else', created: '' }));
    l.release();
    expect(JSON.parse(readFileSync(p, 'utf8')).token).toBe('someone-else');
  });
});
