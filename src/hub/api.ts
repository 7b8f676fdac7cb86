/** The few Hub API calls `cache` needs: revision → commit sha, and the recursive tree listing (paginated). */
import { ColdstartError } from '../core/errors.js';
import { GIT_OID_RE, SHA256_RE, checkHashName } from '../core/paths.js';
import { hfEndpoint, hfTimeoutMs, hfToken } from './env.js';
import { hubErrorFor, hubRequest, readBody, withRetries } from './http.js';
import { tokenOriginOf } from './hop.js';

type Env = Record<string, string | undefined>;

export interface RepoFile {
  path: string;
  size: number;
  /** git blob sha1 (the etag of a regular file). */
  oid: string;
  lfs?: { oid: string; size: number };
}

export interface HubClient {
  endpoint: string;
  token?: string;
  signal?: AbortSignal;
  retries: number;
  retryBaseMs: number;
  /** Connect and idle deadline of each file transfer hop (HF_HUB_DOWNLOAD_TIMEOUT, default 30 s). */
  timeoutMs: number;
  /** Connect and idle deadline of each API call (HF_HUB_ETAG_TIMEOUT, default 30 s); the whole call is bounded by 4× it. */
  apiTimeoutMs: number;
}

export function hubClient(env: Env, extra: Partial<HubClient> = {}): HubClient {
  return {
    endpoint: hfEndpoint(env),
    token: hfToken(env),
    retries: 5,
    retryBaseMs: 500,
    timeoutMs: hfTimeoutMs(env, 'HF_HUB_DOWNLOAD_TIMEOUT', 30_000),
    apiTimeoutMs: hfTimeoutMs(env, 'HF_HUB_ETAG_TIMEOUT', 30_000),
    ...extra,
  };
}

/** huggingface_hub's repo types: the API path (`/api/{type}s/`), the resolve prefix and the cache folder differ. */
export type RepoType = 'model' | 'dataset' | 'space';

/** `{endpoint}/{repo}` for models, `{endpoint}/datasets/{repo}` and `{endpoint}/spaces/{repo}` otherwise (huggingface_hub's hf_hub_url). */
export function repoUrl(endpoint: string, repo: string, repoType: RepoType = 'model'): string {
  return repoType === 'model' ? `${endpoint}/${repo}` : `${endpoint}/${repoType}s/${repo}`;
}

export const COMMIT_RE = /^[0-9a-f]{40}$/;

function enc(rev: string): string {
  return encodeURIComponent(rev);
}
export function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

async function getJson(c: HubClient, url: string, ctx: { repo: string; revision?: string }): Promise<{ body: unknown; link?: string }> {
  return withRetries(
    async () => {
      const res = await hubRequest(url, { endpoint: c.endpoint, token: c.token, signal: c.signal, timeoutMs: c.apiTimeoutMs, totalMs: 4 * c.apiTimeoutMs, headers: { accept: 'application/json' } });
      if ((res.statusCode ?? 0) >= 300) throw hubErrorFor(res, { ...ctx, hasToken: !!c.token });
      const text = await readBody(res, url, c.signal);
      try {
        return { body: JSON.parse(text), link: res.headers.link as string | undefined };
      } catch {
        throw new ColdstartError('BAD_INPUT', `${url}: the Hub answered with invalid JSON`, { hint: 'Check HF_ENDPOINT points at a Hugging Face Hub (or compatible mirror).' });
      }
    },
    { retries: c.retries, baseMs: c.retryBaseMs, signal: c.signal },
  );
}

/** `GET /api/models/{repo}/revision/{rev}`: the commit sha a branch/tag resolves to (and gated/private flags). */
export async function modelInfo(c: HubClient, repo: string, revision: string, repoType: RepoType = 'model'): Promise<{ sha: string; gated: unknown; private: boolean }> {
  const { body } = await getJson(c, `${c.endpoint}/api/${repoType}s/${repo}/revision/${enc(revision)}`, { repo, revision });
  const b = body as { sha?: unknown; gated?: unknown; private?: unknown };
  if (typeof b?.sha !== 'string' || !COMMIT_RE.test(b.sha)) {
    throw new ColdstartError('BAD_INPUT', `${repo}@${revision}: the Hub's model info has no commit sha`, { hint: 'Check HF_ENDPOINT points at a Hugging Face Hub (or compatible mirror).' });
  }
  return { sha: b.sha, gated: b.gated ?? false, private: b.private === true };
}

function nextLink(link: string | undefined): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * The next page of a listing, resolved against the page that named it. Only a link on the endpoint's own origin
 * is followed: the listing is what every byte is verified against, and the token goes nowhere else, so a link to
 * another origin (another host, an http:// downgrade) is refused rather than followed with or without the token.
 */
function nextPage(link: string | undefined, page: string, c: HubClient, repo: string): string | undefined {
  const next = nextLink(link);
  if (next === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(next, page);
  } catch {
    throw new ColdstartError('HOSTILE_FILE', `${repo}: the Hub's tree listing names a next page that is not a URL: ${JSON.stringify(next.slice(0, 200))}`, { hint: 'Check HF_ENDPOINT points at a Hugging Face Hub (or compatible mirror).' });
  }
  const own = tokenOriginOf(c.endpoint);
  if (u.origin !== own) {
    throw new ColdstartError('HOSTILE_FILE', `${repo}: the Hub's tree listing sends its next page to ${u.origin}, not to the endpoint ${own}; refused (nothing was fetched from it, no token sent)`, {
      hint: 'A listing is followed only on HF_ENDPOINT\'s own origin; if this is your mirror, fix the public URL it writes in its Link headers.',
      details: { endpoint: own, next: u.origin },
    });
  }
  return u.toString();
}

/** A hash field that names a file in the cache: checkHashName's hex rule, and the one length its algorithm has. */
export function hashField(v: unknown, re: typeof GIT_OID_RE | typeof SHA256_RE, what: string): string {
  const h = checkHashName(v, what);
  const want = re === SHA256_RE ? 64 : 40;
  if (h.length !== want) throw new ColdstartError('HOSTILE_FILE', `${what}: ${h} has ${h.length} hex digits, not ${want}`, { hint: 'A hash from the Hub names a file in the cache; nothing was written.' });
  return h;
}

/**
 * One entry of a tree listing, checked where it enters: a non-empty path, a whole non-negative size, a 40-hex
 * git blob oid and (LFS) a 64-hex sha256 — the hashes name files in the cache, so anything else is refused.
 */
function repoFile(e: Record<string, unknown>, repo: string): RepoFile {
  const what = `${repo}: the Hub's tree listing`;
  const path = e.path;
  if (typeof path !== 'string' || path === '') throw new ColdstartError('HOSTILE_FILE', `${what} has a file without a path`);
  const size = (v: unknown, field: string) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new ColdstartError('HOSTILE_FILE', `${what}: ${JSON.stringify(path)} has ${field} ${JSON.stringify(v)}, not a byte count`);
    return v;
  };
  const f: RepoFile = { path, size: size(e.size, 'size'), oid: hashField(e.oid, GIT_OID_RE, `${what}: the oid of ${JSON.stringify(path)}`) };
  const lfs = e.lfs as { oid?: unknown; size?: unknown } | undefined | null;
  if (lfs !== undefined && lfs !== null) {
    f.lfs = { oid: hashField(lfs.oid, SHA256_RE, `${what}: the lfs.oid of ${JSON.stringify(path)}`), size: size(lfs.size ?? e.size, 'lfs.size') };
  }
  return f;
}

/**
 * A listing's paths as a set of files: no path twice, and no file that is also a folder of another file
 * (`a` and `a/b`), which would make one entry write through or over another.
 */
export function checkListingShape(files: RepoFile[], what: string): void {
  const paths = new Set<string>();
  for (const f of files) {
    if (paths.has(f.path)) throw new ColdstartError('HOSTILE_FILE', `${what} names ${JSON.stringify(f.path)} twice`);
    paths.add(f.path);
  }
  for (const f of files) {
    for (let i = f.path.indexOf('/'); i > 0; i = f.path.indexOf('/', i + 1)) {
      if (paths.has(f.path.slice(0, i))) throw new ColdstartError('HOSTILE_FILE', `${what} names ${JSON.stringify(f.path.slice(0, i))} both as a file and as the folder of ${JSON.stringify(f.path)}`);
    }
  }
}

/** Every file of the repo at `commit` (recursive tree listing, following `Link: rel="next"` pages on the endpoint). */
export async function listTree(c: HubClient, repo: string, commit: string, repoType: RepoType = 'model'): Promise<RepoFile[]> {
  const files: RepoFile[] = [];
  let url: string | undefined = `${c.endpoint}/api/${repoType}s/${repo}/tree/${enc(commit)}?recursive=true&expand=false`;
  for (let pages = 0; url; pages++) {
    if (pages > 10_000) throw new ColdstartError('BAD_INPUT', `${repo}: tree listing does not end`);
    const { body, link } = await getJson(c, url, { repo, revision: commit });
    if (!Array.isArray(body)) throw new ColdstartError('BAD_INPUT', `${repo}: the Hub's tree listing is not a list`);
    for (const e of body as Array<Record<string, unknown>>) {
      if (e?.type !== 'file') continue;
      files.push(repoFile(e, repo));
    }
    url = nextPage(link, url, c, repo);
  }
  checkListingShape(files, `${repo}: the Hub's tree listing`);
  return files;
}
