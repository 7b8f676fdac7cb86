/**
 * The rules every Hub request keeps on every hop, shared by the main-thread client (http.ts) and the download
 * worker (worker.ts):
 * - **one token rule**: the token goes only to the endpoint's origin (HF_ENDPOINT's scheme, host and port),
 *   decided per hop — a redirect, a retry or a pagination link to any other origin (the CDN, which gets a signed
 *   URL; an http:// downgrade; another host) never carries it, whatever URL the request started at;
 * - **one deadline per network wait**: connect (DNS + TCP), idle (no byte for that long, headers or body) and,
 *   where the answer is small (API calls), a total bound on the whole hop.
 */
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** The origin (`scheme://host:port`) credentials may go to: the endpoint's. */
export function tokenOriginOf(endpoint: string): string {
  return new URL(endpoint).origin;
}

/** Headers for one hop to `u`; the token only when `u` is on `tokenOrigin` (the endpoint's origin). */
export function hopHeaders(u: URL, tokenOrigin: string, token: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'coldstart', 'accept-encoding': 'identity', ...extra };
  delete headers.authorization;
  if (token && u.origin === tokenOrigin) headers.authorization = `Bearer ${token}`;
  return headers;
}

/** The next URL when `status` is a redirect with a Location, else null. */
export function redirectTarget(status: number, headers: IncomingHttpHeaders, from: URL): string | null {
  if (status < 300 || status >= 400 || !headers.location) return null;
  return new URL(headers.location, from).toString();
}

export interface Deadlines {
  /** DNS lookup + TCP connect (TLS then counts as idle time). */
  connectMs: number;
  /** No byte received for this long, waiting for the headers or within the body. */
  idleMs: number;
  /** The whole hop, headers and body (small API answers only; a file's time depends on its size). */
  totalMs?: number;
}

/** Why a hop was cut by its deadline (set on the request before it is destroyed). */
export interface HopTimeout {
  phase: 'connect' | 'idle' | 'total';
  ms: number;
}
const TIMED_OUT = Symbol('coldstart.hopTimeout');

/** The deadline that cut this request (or the request of this response), if one did. */
export function hopTimeout(r: ClientRequest | IncomingMessage | null | undefined): HopTimeout | undefined {
  // A client response carries its request as `res.req`; a request has no such field.
  const req = ((r as { req?: unknown } | null | undefined)?.req ?? r) as (ClientRequest & { [TIMED_OUT]?: HopTimeout }) | null | undefined;
  return req?.[TIMED_OUT];
}

/**
 * Arms the deadlines of one hop: past one, the request is destroyed with an ETIMEDOUT error whose message says
 * which wait ran out (`hopTimeout(req)` tells it too, also when the error surfaces on the response body).
 * Node's own `req.setTimeout` starts only once the socket is connected, so the connect wait is timed here.
 */
export function armDeadlines(req: ClientRequest, d: Deadlines): void {
  const timers: NodeJS.Timeout[] = [];
  const fail = (phase: HopTimeout['phase'], ms: number) => {
    (req as ClientRequest & { [TIMED_OUT]?: HopTimeout })[TIMED_OUT] ??= { phase, ms };
    req.destroy(Object.assign(new Error(`${phase === 'connect' ? 'no connection' : phase === 'idle' ? 'no data' : 'no complete answer'} within ${ms / 1000} s`), { code: 'ETIMEDOUT' }));
  };
  const arm = (phase: HopTimeout['phase'], ms: number) => {
    const t = setTimeout(() => fail(phase, ms), ms);
    t.unref();
    timers.push(t);
    return t;
  };
  req.once('socket', (s: Socket) => {
    if (!s.connecting) return;
    const t = arm('connect', d.connectMs);
    s.once('connect', () => clearTimeout(t));
  });
  req.setTimeout(d.idleMs, () => fail('idle', d.idleMs));
  if (d.totalMs) arm('total', d.totalMs);
  req.once('close', () => timers.forEach(clearTimeout));
}
