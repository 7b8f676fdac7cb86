/**
 * Listening sockets on /proc (src/platform/sockets.ts): a server tree's ports by socket inode (real sockets), and
 * which listeners could have answered a ready URL while held only by processes older than the server — on a fake
 * /proc (net/tcp{,6}, <pid>/stat, <pid>/fd links to "socket:[inode]") so every case is exact, and on the real one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hexAddr, listeningPorts, olderListeners } from '../../src/platform/sockets.js';
import { procStartTicks } from '../../src/platform/procfs.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-sockets-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A /proc/net/tcp line (LISTEN, state 0A) as the kernel writes it; `addr` in its hex form. */
const tcpLine = (slot: number, addr: string, port: number, inode: number) =>
  `  ${slot}: ${addr}:${port.toString(16).toUpperCase().padStart(4, '0')} ${'0'.repeat(addr.length)}:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 ${inode} 1 0000000000000000 100 0 0 10 0`;
const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const V4_LOOP = '0100007F';
const V4_ANY = '00000000';
const V4_OTHER = '0100000A'; // 10.0.0.1
const V4_LOOP2 = '0200007F'; // 127.0.0.2
const V6_ANY = '0'.repeat(32);

/** The server in every fake /proc: pid 20, started at tick 200. */
const S20 = { pid: 20, startTicks: 200 };

let n = 0;
/** A fake /proc: `procs` pid → [start ticks, socket inodes held]; `tcp`/`tcp6` its listeners. */
function fakeProc(procs: Record<number, [number, number[]]>, tcp: string[], tcp6: string[] = []): string {
  const root = join(tmp, `proc${n++}`);
  mkdirSync(join(root, 'net'), { recursive: true });
  writeFileSync(join(root, 'net', 'tcp'), [HEAD, ...tcp].join('\n') + '\n');
  writeFileSync(join(root, 'net', 'tcp6'), [HEAD, ...tcp6].join('\n') + '\n');
  for (const [pid, [start, inodes]] of Object.entries(procs)) {
    mkdirSync(join(root, pid, 'fd'), { recursive: true });
    // Fields 3..22 of stat: state, ppid, then 17 zeros, then the start time (field 22).
    writeFileSync(join(root, pid, 'stat'), `${pid} (srv) S 1 ${'0 '.repeat(17)}${start} 0 0\n`);
    inodes.forEach((ino, i) => symlinkSync(`socket:[${ino}]`, join(root, pid, 'fd', String(3 + i))));
    symlinkSync('/dev/null', join(root, pid, 'fd', '0'));
  }
  return root;
}

describe('olderListeners: who holds the port a ready URL was answered on', () => {
  it('names a listener held only by a process started before the server (an earlier server still starting)', () => {
    const proc = fakeProc({ 10: [100, [555]], 20: [200, []], 21: [201, []] }, [tcpLine(0, V4_LOOP, 8000, 555)]);
    expect(olderListeners('http://127.0.0.1:8000/health', S20, [20, 21], proc)).toEqual([{ address: '127.0.0.1', port: 8000, pids: [10] }]);
    // localhost reaches a loopback listener; another port is nobody's business
    expect(olderListeners('http://localhost:8000/', S20, [], proc)).toHaveLength(1);
    expect(olderListeners('http://127.0.0.1:8001/', S20, [], proc)).toEqual([]);
  });

  it('says nothing when the server or anything younger holds it (a child not yet known, a container port helper)', () => {
    const proc = fakeProc({ 20: [200, []], 21: [201, [555]], 30: [250, [666]] }, [tcpLine(0, V4_ANY, 8000, 555), tcpLine(1, V4_ANY, 9000, 666)]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [21], proc)).toEqual([]); // the tree holds it
    expect(olderListeners('http://127.0.0.1:9000/', S20, [21], proc)).toEqual([]); // pid 30: not in the tree, younger
    // the same start tick is not "before"
    const same = fakeProc({ 19: [200, [555]], 20: [200, []] }, [tcpLine(0, V4_LOOP, 8000, 555)]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [], same)).toEqual([]);
  });

  it('counts a shared socket as the server\'s when any holder is younger (a pre-fork master and its new worker)', () => {
    const proc = fakeProc({ 10: [100, [555]], 20: [200, []], 40: [300, [555]] }, [tcpLine(0, V4_LOOP, 8000, 555)]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [], proc)).toEqual([]);
  });

  it('finds an older listener beside the server\'s on one port (SO_REUSEPORT), and a dual-stack :: one for an IPv4 URL', () => {
    const proc = fakeProc({ 10: [100, [777]], 20: [200, [555]] }, [tcpLine(0, V4_LOOP, 8000, 555)], [tcpLine(0, V6_ANY, 8000, 777)]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [20], proc)).toEqual([{ address: '::', port: 8000, pids: [10] }]);
  });

  it('claims nothing it cannot see: another host, a listener on another address, holders not readable', () => {
    const proc = fakeProc({ 10: [100, [555]], 20: [200, []] }, [tcpLine(0, V4_OTHER, 8000, 555), tcpLine(1, V4_LOOP, 8001, 999)]);
    expect(olderListeners('http://example.com:8000/', S20, [], proc)).toEqual([]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [], proc)).toEqual([]); // bound to 10.0.0.1 only
    expect(olderListeners('http://127.0.0.1:8001/', S20, [], proc)).toEqual([]); // inode 999: no visible holder
    // another loopback address is another listener: 127.0.0.2:8000 does not answer 127.0.0.1:8000
    const two = fakeProc({ 10: [100, [555]], 20: [200, [556]] }, [tcpLine(0, V4_LOOP2, 8000, 555), tcpLine(1, V4_LOOP, 8000, 556)]);
    expect(olderListeners('http://127.0.0.1:8000/', S20, [20], two)).toEqual([]);
    expect(olderListeners('http://127.0.0.2:8000/', S20, [20], two)).toEqual([{ address: '127.0.0.2', port: 8000, pids: [10] }]);
    expect(olderListeners('not a url', S20, [], proc)).toEqual([]);
  });

  it('on the real /proc: this process, older than a child, holds what the child\'s URL reaches', async () => {
    const { spawn } = await import('node:child_process');
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    // the child starts at least one clock tick after this process
    await new Promise((r) => setTimeout(r, 30));
    const child = spawn('sleep', ['5'], { stdio: 'ignore' });
    try {
      const port = (s.address() as { port: number }).port;
      expect(procStartTicks(child.pid!)).toBeGreaterThan(procStartTicks(process.pid)!);
      expect(olderListeners(`http://127.0.0.1:${port}/`, { pid: child.pid!, startTicks: procStartTicks(child.pid!)! }, [child.pid!])).toEqual([{ address: '127.0.0.1', port, pids: [process.pid] }]);
      // from this process's own point of view nothing is older
      expect(olderListeners(`http://127.0.0.1:${port}/`, { pid: process.pid, startTicks: procStartTicks(process.pid)! }, [])).toEqual([]);
    } finally {
      child.kill('SIGKILL');
      s.close();
    }
  });
});

describe('listeningPorts', () => {
  it('finds the listening ports of a process by socket inode, IPv4 and IPv6, and not others', async () => {
    const s4 = createServer();
    const s6 = createServer();
    await new Promise<void>((r) => s4.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => s6.listen(0, '::1', r));
    try {
      const p4 = (s4.address() as { port: number }).port;
      const p6 = (s6.address() as { port: number }).port;
      const ports = listeningPorts([process.pid]);
      expect(ports).toContainEqual({ port: p4, address: '127.0.0.1', family: 4, pid: process.pid });
      expect(ports).toContainEqual({ port: p6, address: '::1', family: 6, pid: process.pid });
      expect(listeningPorts([process.ppid]).some((p) => p.port === p4)).toBe(false);
    } finally {
      s4.close();
      s6.close();
    }
    expect(hexAddr('B80D0120000000000000000001000000', 6)).toBe('2001:db8::1');
    expect(hexAddr('00000000000000000000000000000000', 6)).toBe('::');
  });
});
