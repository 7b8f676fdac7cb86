/**
 * TCP listening sockets on /proc: which process holds which listening socket (/proc/net/tcp{,6} by socket inode,
 * matched against /proc/<pid>/fd). Two questions use it: the ports a server's tree listens on (snapshot records
 * them), and whether what answered a server's ready URL is that server at all (`olderListeners`).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fdTargets, procStartTicks } from './procfs.js';

export interface ListeningPort {
  port: number;
  address: string;
  family: 4 | 6;
  pid: number;
}

/** One LISTEN socket of /proc/net/tcp{,6}. */
interface Listener {
  port: number;
  address: string;
  family: 4 | 6;
  inode: string;
}

/** The socket inodes `pid` holds open (none when it is gone or not ours to read). */
function socketInodes(pid: number, procRoot: string): Set<string> {
  const s = new Set<string>();
  for (const target of fdTargets(pid, procRoot)) {
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) s.add(m[1]!);
  }
  return s;
}

/** An address of /proc/net/tcp{,6} (hex, little-endian words) as text; IPv6 shortened as RFC 5952 says. */
export function hexAddr(hex: string, family: 4 | 6): string {
  if (family === 4) {
    const n = parseInt(hex, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, (n >>> 24) & 255].join('.');
  }
  // Four little-endian 32-bit words.
  const words = hex.match(/.{8}/g) ?? [];
  const bytes: string[] = [];
  for (const w of words) for (let i = 3; i >= 0; i--) bytes.push(w.slice(i * 2, i * 2 + 2));
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(parseInt(bytes[i]! + bytes[i + 1]!, 16).toString(16));
  // RFC 5952: the longest run (≥ 2) of zero groups becomes "::".
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (bestLen < 2) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Every TCP socket in LISTEN state this network namespace shows. */
function tcpListeners(procRoot: string): Listener[] {
  const out: Listener[] = [];
  for (const [file, family] of [[`${procRoot}/net/tcp`, 4], [`${procRoot}/net/tcp6`, 6]] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addr, port] = f[1]!.split(':');
      out.push({ port: parseInt(port!, 16), address: hexAddr(addr!, family), family, inode: f[9]! });
    }
  }
  return out;
}

/** TCP ports in LISTEN state held by any process of `pids` (from /proc/net/tcp{,6} by socket inode). */
export function listeningPorts(pids: readonly number[], procRoot = '/proc'): ListeningPort[] {
  const owner = new Map<string, number>();
  for (const p of pids) for (const i of socketInodes(p, procRoot)) owner.set(i, p);
  const out: ListeningPort[] = [];
  for (const l of tcpListeners(procRoot)) {
    const pid = owner.get(l.inode);
    if (pid !== undefined) out.push({ port: l.port, address: l.address, family: l.family, pid });
  }
  return out.sort((a, b) => a.port - b.port);
}

const ANY = new Set(['0.0.0.0', '::']);
/** What `localhost` and the unspecified addresses connect to (each as /proc/net/tcp6 writes a v4 address, too). */
const LOCALHOST = ['127.0.0.1', '::ffff:127.0.0.1', '::1'];

/**
 * The listener addresses a connection to `hostname` (a URL's) may reach on this host, besides the wildcards; null
 * when it is not this host (a name other than localhost, an address no interface has): then who answers cannot be
 * told from here.
 */
function localAddresses(hostname: string): Set<string> | null {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost') || ANY.has(h)) return new Set(LOCALHOST);
  if (/^127\./.test(h) || h === '::1') return new Set([h, `::ffff:${h}`]);
  const mine = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.toLowerCase()));
  return mine.includes(h) ? new Set([h, `::ffff:${h}`]) : null;
}

/** Whether a listener bound to `address` takes connections to one of `to` (a dual-stack `::` takes IPv4 ones too). */
function takes(address: string, to: Set<string>): boolean {
  const a = address.toLowerCase();
  return ANY.has(a) || to.has(a);
}

export interface OlderListener {
  address: string;
  port: number;
  /** The processes holding it, each started before the server's first process. */
  pids: number[];
}

/**
 * The listening sockets that could have answered `url` and that no process younger than the server holds: each is
 * held only by processes started before `server` (its first process: pid and start time, taken when it was ready),
 * so none of them is the server (a server's processes all start after it). `known`: the server's tree as far as
 * known, looked at first (the usual answer: the server holds the port, and nothing else is read). Sockets whose
 * holders cannot be seen (another user's processes, another network namespace) are not counted: who answers there
 * cannot be told. Empty where the URL's host is not this one or /proc cannot tell.
 */
export function olderListeners(url: string, server: { pid: number; startTicks: number }, known: readonly number[], procRoot = '/proc'): OlderListener[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return [];
  }
  const to = localAddresses(u.hostname);
  if (!to) return [];
  const root = server.pid;
  const rootStart = server.startTicks;
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const candidates = tcpListeners(procRoot).filter((l) => l.port === port && takes(l.address, to));
  if (!candidates.length) return [];
  const holders = new Map<string, number[]>(candidates.map((l) => [l.inode, []]));
  const look = (pids: Iterable<number>) => {
    for (const p of pids) for (const i of socketInodes(p, procRoot)) holders.get(i)?.push(p);
  };
  const tree = new Set([root, ...known]);
  look(tree);
  if ([...holders.values()].every((h) => h.length > 0)) return [];
  let all: string[] = [];
  try {
    all = readdirSync(procRoot);
  } catch {
    return [];
  }
  look(all.filter((n) => /^\d+$/.test(n)).map(Number).filter((p) => !tree.has(p)));
  const out: OlderListener[] = [];
  for (const l of candidates) {
    const pids = holders.get(l.inode)!;
    if (!pids.length) continue;
    const older = pids.every((p) => {
      const t = procStartTicks(p, procRoot);
      return t !== null && t < rootStart;
    });
    if (older) out.push({ address: l.address, port: l.port, pids: [...new Set(pids)].sort((a, b) => a - b) });
  }
  return out;
}
