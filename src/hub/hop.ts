/**
 * The one redirect/credential rule of every Hub request, shared by the main-thread client (http.ts) and the
 * download worker (worker.ts): the token goes only to the origin the request started at (the Hub); a redirect
 * to another origin (the CDN, which gets a signed URL) never carries it.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Headers for one hop to `u` of a request that started at `firstOrigin`. */
export function hopHeaders(u: URL, firstOrigin: string, token: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'coldstart', 'accept-encoding': 'identity', ...extra };
  if (token && u.origin === firstOrigin) headers.authorization = `Bearer ${token}`;
  else delete headers.authorization;
  return headers;
}

/** The next URL when `status` is a redirect with a Location, else null. */
export function redirectTarget(status: number, headers: IncomingHttpHeaders, from: URL): string | null {
  if (status < 300 || status >= 400 || !headers.location) return null;
  return new URL(headers.location, from).toString();
}
