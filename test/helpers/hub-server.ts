/**
 * A local Hugging Face Hub look-alike for tests and benchmarks (127.0.0.1, ephemeral ports). It answers
 * what huggingface_hub, transformers and coldstart ask, with the headers the real Hub sends:
 *
 *   GET  /api/models/{repo}[/revision/{rev}]        model info with `sha` and `siblings`
 *   GET  /api/models/{repo}/tree/{rev}[/{path}]     tree listing, paginated with `Link: <…cursor=…>; rel="next"`
 *   POST /api/models/{repo}/paths-info/{rev}        paths-info (form or JSON body)
 *   HEAD/GET /{repo}/resolve/{rev}/{path}           regular file: 200 + ETag (git sha1) + X-Repo-Commit;
 *                                                   LFS file: 302 to a second origin ("CDN") with X-Linked-Etag
 *                                                   (sha256), X-Linked-Size, X-Repo-Commit
 *   GET  {cdn}/lfs/{sha256}?sig=…                   the bytes, with Range/206, Accept-Ranges, ETag
 *
 * Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and X-Error-Message.
 * Faults for tests: drop the connection after N bytes of a file, serve corrupted bytes, answer 503; and a hostile
 * Hub: rewrite the tree listing (oids, paths), point its next-page link elsewhere, answer a sha for any revision,
 * accept a request and never answer it. `startRecorder()` is a second loopback origin ("another host") that
 * records every request it gets, to prove no credential reaches it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';

export interface ServedFile {
  path: string;
  size: number;
  sha256: string;
  /** git blob sha1 of the content (regular files) or of the LFS pointer (LFS files). */
  oid: string;
  lfs: boolean;
  content?: Buffer;
  /** Served from disk instead of memory (benchmarks). */
  diskPath?: string;
}

interface Repo {
  id: string;
  gated: boolean;
  refs: Map<string, string>;
  commits: Map<string, Map<string, ServedFile>>;
}

export interface Faults {
  /** Destroy the socket after this many body bytes of a matching file, `times` times. */
  drop?: { match: (path: string) => boolean; afterBytes: number; times: number };
  /** Send this many body bytes of a matching file, then nothing more (the socket stays open), `times` times. */
  stall?: { match: (path: string) => boolean; afterBytes: number; times: number };
  /** Flip one byte in the middle of a matching file's body (every time). */
  corrupt?: (path: string) => boolean;
  /** Answer 503 this many times before serving file bytes. */
  unavailable?: number;
  /** Ignore Range headers (answer 200 with the whole body). */
  ignoreRange?: boolean;
  /** Accept a matching request and never answer it (no status line, the socket stays open). */
  hang?: (r: { url: string; host: 'hub' | 'cdn'; method: string }) => boolean;
  /** Rewrite each page of a tree listing before it is sent (a hostile listing: oids, sizes, paths). */
  treeEntries?: (entries: Array<Record<string, unknown>>) => Array<Record<string, unknown>>;
  /** Rewrite (or add, when `always`) the tree listing's `Link: <…>; rel="next"` URL. */
  nextLink?: { to: (next: string | null) => string; always?: boolean };
  /** Resolve any revision the repo does not have to its main branch's commit (a Hub that answers a sha for anything). */
  anyRevision?: boolean;
}

export interface RequestLog {
  method: string;
  url: string;
  range?: string;
  auth?: string;
  host: string;
}

const LFS_RE = /\.(safetensors|bin|pt|pth|ckpt|h5|msgpack|onnx|gguf|ot)$/;

export function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

export function servedFile(path: string, content: Buffer, lfs = LFS_RE.test(path)): ServedFile {
  const sha256 = createHash('sha256').update(content).digest('hex');
  return { path, size: content.length, sha256, oid: lfs ? gitBlobSha1(lfsPointer(sha256, content.length)) : gitBlobSha1(content), lfs, content };
}

/** A file served from disk; sha256 precomputed by the caller (big benchmark shards). */
export function diskFile(path: string, diskPath: string, size: number, sha256: string): ServedFile {
  return { path, size, sha256, oid: gitBlobSha1(lfsPointer(sha256, size)), lfs: true, diskPath };
}

export class HubServer {
  readonly repos = new Map<string, Repo>();
  readonly log: RequestLog[] = [];
  faults: Faults = {};
  pageSize = 50;
  token = 'hf_test_token';
  /** Total body bytes of file content sent. */
  bytesServed = 0;
  private hub!: http.Server;
  private cdn!: http.Server;
  endpoint = '';
  cdnOrigin = '';

  async start(): Promise<this> {
    this.hub = http.createServer((q, s) => this.handle(q, s, false));
    this.cdn = http.createServer((q, s) => this.handle(q, s, true));
    // The "CDN" is another loopback host (127.0.0.2, all of 127/8 is loopback on Linux): clients follow
    // redirects within the Hub's host but must not send credentials to, or read file metadata from, the CDN.
    for (const [srv, host] of [
      [this.hub, '127.0.0.1'],
      [this.cdn, '127.0.0.2'],
    ] as const) {
      srv.keepAliveTimeout = 30_000;
      await new Promise<void>((r) => srv.listen(0, host, r));
    }
    this.endpoint = `http://127.0.0.1:${(this.hub.address() as AddressInfo).port}`;
    this.cdnOrigin = `http://127.0.0.2:${(this.cdn.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const srv of [this.hub, this.cdn]) {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  }

  /** Adds (or extends) a repo with one commit on `branch`; returns the commit sha. */
  addRepo(id: string, files: Array<ServedFile>, opts: { gated?: boolean; branch?: string; tags?: string[] } = {}): string {
    const repo = this.repos.get(id) ?? { id, gated: !!opts.gated, refs: new Map(), commits: new Map() };
    this.repos.set(id, repo);
    const commit = createHash('sha1').update(id).update(randomBytes(8)).update(files.map((f) => f.path + f.oid).join()).digest('hex');
    repo.commits.set(commit, new Map(files.map((f) => [f.path, f])));
    repo.refs.set(opts.branch ?? 'main', commit);
    for (const t of opts.tags ?? []) repo.refs.set(t, commit);
    return commit;
  }

  requests(filter: (r: RequestLog) => boolean = () => true): RequestLog[] {
    return this.log.filter(filter);
  }

  private err(res: http.ServerResponse, status: number, code: string | null, message: string): void {
    const h: Record<string, string> = { 'content-type': 'application/json', 'x-error-message': message };
    if (code) h['x-error-code'] = code;
    res.writeHead(status, h);
    res.end(JSON.stringify({ error: message }));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, isCdn: boolean): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.log.push({ method: req.method ?? 'GET', url: req.url ?? '', range: req.headers.range, auth: req.headers.authorization, host: isCdn ? 'cdn' : 'hub' });
    if (this.faults.hang?.({ url: req.url ?? '', host: isCdn ? 'cdn' : 'hub', method: req.method ?? 'GET' })) return; // accepted, never answered
    if (isCdn) return this.serveCdn(req, res, url);
    // Repo ids of one segment (gpt2) or two (org/name); datasets and spaces are stored as `datasets/<id>`, `spaces/<id>`.
    let m = /^\/api\/(models|datasets|spaces)\/([^/]+(?:\/[^/]+)?)(?:\/(revision|tree|paths-info)\/([^/]+)(\/.*)?)?$/.exec(url.pathname);
    if (m) {
      const [, type, bare, kind, revEnc, sub] = m;
      const id = type === 'models' ? bare : `${type}/${bare}`;
      const found = this.lookup(req, res, id, kind ? decodeURIComponent(revEnc) : 'main');
      if (!found) return;
      const { repo, commit, files } = found;
      if (!kind || kind === 'revision') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: repo.id, modelId: repo.id, sha: commit, private: false, gated: repo.gated ? 'auto' : false, siblings: [...files.keys()].sort().map((rfilename) => ({ rfilename })) }));
        return;
      }
      if (kind === 'tree') return this.tree(res, url, repo.id, revEnc, commit, files, sub ? decodeURIComponent(sub.slice(1)) : '');
      if (kind === 'paths-info' && req.method === 'POST') return this.pathsInfo(req, res, files);
    }
    m = /^\/(?:(datasets|spaces)\/)?([^/]+(?:\/[^/]+)?)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (m) {
      const [, type, bare, revEnc, pathEnc] = m;
      const id = type ? `${type}/${bare}` : bare;
      const found = this.lookup(req, res, id, decodeURIComponent(revEnc));
      if (!found) return;
      const path = pathEnc.split('/').map(decodeURIComponent).join('/');
      const f = found.files.get(path);
      if (!f) return this.err(res, 404, 'EntryNotFound', `${path} does not exist on "${revEnc}"`);
      const common = { 'x-repo-commit': found.commit, 'accept-ranges': 'bytes' };
      if (f.lfs) {
        res.writeHead(302, {
          ...common,
          location: `${this.cdnOrigin}/lfs/${f.sha256}?name=${encodeURIComponent(path)}&sig=${randomBytes(6).toString('hex')}`,
          'x-linked-etag': `"${f.sha256}"`,
          'x-linked-size': String(f.size),
          etag: `"${f.oid}"`,
          'content-length': '0',
        });
        res.end();
        return;
      }
      return this.body(req, res, f, { ...common, etag: `"${f.oid}"` });
    }
    this.err(res, 404, null, `no route ${url.pathname}`);
  }

  private lookup(req: http.IncomingMessage, res: http.ServerResponse, id: string, rev: string): { repo: Repo; commit: string; files: Map<string, ServedFile> } | null {
    const repo = this.repos.get(id);
    if (!repo) {
      this.err(res, 404, 'RepoNotFound', `Repository not found: ${id}`);
      return null;
    }
    if (repo.gated && req.headers.authorization !== `Bearer ${this.token}`) {
      this.err(res, 401, 'GatedRepo', `Access to model ${id} is restricted. You must have access to it and be authenticated to access it.`);
      return null;
    }
    const commit = repo.commits.has(rev) ? rev : (repo.refs.get(rev) ?? (this.faults.anyRevision ? repo.refs.get('main') : undefined));
    if (!commit) {
      this.err(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
      return null;
    }
    return { repo, commit, files: repo.commits.get(commit)! };
  }

  private entry(f: ServedFile): Record<string, unknown> {
    return { type: 'file', oid: f.oid, size: f.size, path: f.path, ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: lfsPointer(f.sha256, f.size).length } } : {}) };
  }

  private tree(res: http.ServerResponse, url: URL, id: string, revEnc: string, _commit: string, files: Map<string, ServedFile>, prefix: string): void {
    const recursive = url.searchParams.get('recursive') === 'true' || url.searchParams.get('recursive') === 'True';
    const entries: Array<Record<string, unknown>> = [];
    const dirs = new Set<string>();
    for (const f of [...files.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      if (prefix && !f.path.startsWith(`${prefix}/`)) continue;
      const rest = prefix ? f.path.slice(prefix.length + 1) : f.path;
      const parts = rest.split('/');
      for (let i = 1; i < parts.length; i++) {
        const d = [prefix, ...parts.slice(0, i)].filter(Boolean).join('/');
        if (!recursive && i > 1) break;
        if (!dirs.has(d)) {
          dirs.add(d);
          entries.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
        }
      }
      if (recursive || parts.length === 1) entries.push(this.entry(f));
    }
    const cursor = Number(url.searchParams.get('cursor') ?? 0);
    let page = entries.slice(cursor, cursor + this.pageSize);
    if (this.faults.treeEntries) page = this.faults.treeEntries(page);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    let nextUrl: string | null = null;
    if (cursor + this.pageSize < entries.length) {
      const next = new URL(url.toString().replace('http://x', this.endpoint));
      next.searchParams.set('cursor', String(cursor + this.pageSize));
      nextUrl = next.toString();
    }
    const nl = this.faults.nextLink;
    if (nl && (nextUrl || nl.always)) nextUrl = nl.to(nextUrl);
    if (nextUrl) headers.link = `<${nextUrl}>; rel="next"`;
    void id;
    void revEnc;
    res.writeHead(200, headers);
    res.end(JSON.stringify(page));
  }

  private pathsInfo(req: http.IncomingMessage, res: http.ServerResponse, files: Map<string, ServedFile>): void {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      let paths: string[] = [];
      if (String(req.headers['content-type'] ?? '').includes('json')) paths = (JSON.parse(body) as { paths: string[] }).paths ?? [];
      else paths = new URLSearchParams(body).getAll('paths');
      const out = paths.map((p) => files.get(p)).filter((f): f is ServedFile => !!f).map((f) => this.entry(f));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  }

  private serveCdn(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const m = /^\/lfs\/([0-9a-f]{64})$/.exec(url.pathname);
    const f = m ? this.findBySha(m[1]) : undefined;
    if (!f || !url.searchParams.get('sig')) return this.err(res, 403, null, 'AccessDenied');
    this.body(req, res, f, { etag: `"${f.sha256}"`, 'accept-ranges': 'bytes' });
  }

  private findBySha(sha: string): ServedFile | undefined {
    for (const r of this.repos.values()) for (const c of r.commits.values()) for (const f of c.values()) if (f.sha256 === sha) return f;
    return undefined;
  }

  private body(req: http.IncomingMessage, res: http.ServerResponse, f: ServedFile, headers: Record<string, string>): void {
    if (this.faults.unavailable && this.faults.unavailable > 0 && req.method === 'GET') {
      this.faults.unavailable--;
      return this.err(res, 503, null, 'Service Unavailable');
    }
    let start = 0;
    let end = f.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range && !this.faults.ignoreRange) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= f.size) {
        res.writeHead(416, { 'content-range': `bytes */${f.size}` });
        res.end();
        return;
      }
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${f.size}`;
    }
    const length = end - start + 1;
    res.writeHead(status, { ...headers, 'content-length': String(length), 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    const drop = this.faults.drop && this.faults.drop.times > 0 && this.faults.drop.match(f.path) ? this.faults.drop : null;
    if (drop) drop.times--;
    const stall = this.faults.stall && this.faults.stall.times > 0 && this.faults.stall.match(f.path) ? this.faults.stall : null;
    if (stall) stall.times--;
    const corrupt = this.faults.corrupt?.(f.path) ? Math.floor(f.size / 2) : -1;
    let sent = 0;
    const src = f.content ? [f.content.subarray(start, end + 1)] : createReadStream(f.diskPath!, { start, end, highWaterMark: 1 << 20 });
    const write = async () => {
      for await (const raw of src as AsyncIterable<Buffer>) {
        let chunk = raw;
        const pos = start + sent;
        if (corrupt >= pos && corrupt < pos + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[corrupt - pos] ^= 0xff;
        }
        if (drop && sent + chunk.length > drop.afterBytes) {
          const keep = Math.max(0, drop.afterBytes - sent);
          if (keep) res.write(chunk.subarray(0, keep));
          this.bytesServed += keep;
          // Let the bytes reach the client, then cut the connection mid-body.
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        if (stall && sent + chunk.length > stall.afterBytes) {
          const keep = Math.max(0, stall.afterBytes - sent);
          if (keep) res.write(chunk.subarray(0, keep));
          this.bytesServed += keep;
          return; // never ends: the client must time out or give up
        }
        sent += chunk.length;
        this.bytesServed += chunk.length;
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    };
    write().catch(() => res.destroy());
  }
}

export async function startHubServer(): Promise<HubServer> {
  return new HubServer().start();
}

/** What a recorder saw: every request, with its Authorization header (if any). */
export interface Recorder {
  origin: string;
  log: Array<{ method: string; url: string; auth?: string; cookie?: string }>;
  stop(): Promise<void>;
}

/**
 * "Another host": a loopback server on its own origin (127.0.0.3 by default) that records every request and
 * answers `body` (JSON) with 200, so a client that wrongly follows a hostile link there gets an answer too.
 */
export async function startRecorder(host = '127.0.0.3', body: unknown = []): Promise<Recorder> {
  const log: Recorder['log'] = [];
  const srv = http.createServer((q, s) => {
    log.push({ method: q.method ?? 'GET', url: q.url ?? '', auth: q.headers.authorization, cookie: q.headers.cookie });
    s.writeHead(200, { 'content-type': 'application/json' });
    s.end(JSON.stringify(body));
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  return {
    origin: `http://${host}:${(srv.address() as AddressInfo).port}`,
    log,
    async stop() {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
