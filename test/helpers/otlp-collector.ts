/**
 * A loopback OTLP/HTTP collector for tests, and the real decoders of what coldstart sends or writes
 * (test/telemetry/decode.py: opentelemetry-proto for OTLP bodies, prometheus_client for textfiles).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const DECODE = fileURLToPath(new URL('../telemetry/decode.py', import.meta.url));

export interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface DecodedSpan {
  resource: Record<string, unknown>;
  name: string;
  spanId: string;
  parentSpanId: string;
  traceId: string;
  seconds: number;
  status: number;
  attributes: Record<string, unknown>;
}

export interface Collector {
  /** `http://127.0.0.1:PORT` (a trace goes to `${endpoint}/v1/traces`). */
  endpoint: string;
  received: Received[];
  close(): Promise<void>;
}

/** Answers every POST with 200 and keeps what came. */
export async function startCollector(): Promise<Collector> {
  const received: Received[] = [];
  const server = http.createServer((q, s) => {
    const c: Buffer[] = [];
    q.on('data', (d: Buffer) => c.push(d));
    q.on('end', () => {
      received.push({ url: q.url ?? '', headers: q.headers, body: Buffer.concat(c) });
      s.writeHead(200, { 'content-type': 'application/x-protobuf' });
      s.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Decodes with the real definitions: `otlp` takes a body (written to `scratch` first), `prom` a textfile path. */
export function decodeOtlp(py: string, body: Buffer, scratch: string): DecodedSpan[] {
  writeFileSync(scratch, body);
  return JSON.parse(execFileSync(py, [DECODE, 'otlp', scratch], { encoding: 'utf8' })) as DecodedSpan[];
}

export function decodeProm<T>(py: string, file: string): T {
  return JSON.parse(execFileSync(py, [DECODE, 'prom', file], { encoding: 'utf8' })) as T;
}

interface ReportPhase {
  name: string;
  status: string;
  seconds: number | null;
  reason?: string;
  floor?: { seconds: number; source: string } | null;
  steps: Array<{ name: string; seconds: number }>;
}

/**
 * The checks every command's trace must pass against its own JSON report: one trace, one root named
 * `coldstart <command>`, a span per phase in the report's order with the report's seconds (an unmeasured phase a
 * span of no duration that says why), the floor and efficiency as attributes, a span per step under its phase.
 * Returns the root. Uses vitest's expect, passed in so this file stays free of the test runner.
 */
export function checkTrace(
  expect: (v: unknown, msg?: string) => { toBe(x: unknown): void; toEqual(x: unknown): void; toBeLessThan(x: number): void; toBeCloseTo(x: number, d?: number): void; toContain(x: string): void; toHaveLength(n: number): void },
  spans: DecodedSpan[],
  doc: { command?: string; phases: ReportPhase[] },
  command: string,
): DecodedSpan {
  const roots = spans.filter((s) => s.parentSpanId === '');
  expect(roots).toHaveLength(1);
  const root = roots[0]!;
  expect(root.name).toBe(`coldstart ${command}`);
  expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
  const phaseSpans = spans.filter((s) => s.parentSpanId === root.spanId);
  expect(phaseSpans.map((s) => s.name)).toEqual(doc.phases.map((p) => p.name));
  for (const p of doc.phases) {
    const s = phaseSpans.find((x) => x.name === p.name)!;
    const measured = (p.status === 'ok' || p.status === 'estimated') && p.seconds !== null;
    expect(s.attributes['coldstart.measured'], p.name).toBe(measured);
    if (measured) {
      expect(Math.abs(s.seconds - p.seconds!), p.name).toBeLessThan(2e-6);
      expect(s.attributes['coldstart.seconds'] as number, p.name).toBeCloseTo(p.seconds!, 9);
    } else {
      expect(s.seconds, p.name).toBe(0); // a span of no duration that says why, never a measured-looking 0
      if (p.reason) expect(String(s.attributes['coldstart.not_measured.reason']), p.name).toContain(p.reason);
    }
    if (p.floor) {
      expect(s.attributes['coldstart.floor.seconds'] as number, p.name).toBeCloseTo(p.floor.seconds, 9);
      expect(s.attributes['coldstart.floor.source'], p.name).toBe(p.floor.source);
      if (measured && p.seconds! > 0) expect(s.attributes['coldstart.efficiency'] as number, p.name).toBeCloseTo(p.floor.seconds / p.seconds!, 9);
    }
    const children = spans.filter((c) => c.parentSpanId === s.spanId);
    expect(children.map((c) => c.name)).toEqual(p.steps.map((st) => `${p.name}: ${st.name}`));
    p.steps.forEach((st, i) => expect(Math.abs(children[i]!.seconds - st.seconds), `${p.name}: ${st.name}`).toBeLessThan(2e-6));
  }
  return root;
}
