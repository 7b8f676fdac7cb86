/**
 * --otlp and --prometheus, checked with the real decoders: the OTLP body is parsed with OpenTelemetry's own protobuf
 * definitions (opentelemetry-proto, in the pinned venv) and the textfile with prometheus_client's parser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { peerPython } from '../helpers/python.js';

const py = peerPython();
const DECODE = fileURLToPath(new URL('./decode.py', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'cs-telemetry-'));
// A 4 MiB rate probe: what is checked is what the exporters send, not the probe's size.
const env = { COLDSTART_CACHE: join(tmp, 'cache'), COLDSTART_PYTHON: py ?? undefined, NO_COLOR: '1', COLDSTART_PROBE_BYTES: String(4 << 20) };

interface Received {
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}
let collector: http.Server;
let endpoint = '';
const received: Received[] = [];

beforeAll(async () => {
  collector = http.createServer((q, s) => {
    const c: Buffer[] = [];
    q.on('data', (d: Buffer) => c.push(d));
    q.on('end', () => {
      received.push({ url: q.url ?? '', headers: q.headers, body: Buffer.concat(c) });
      s.writeHead(200, { 'content-type': 'application/x-protobuf' });
      s.end();
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => collector.close(() => r())));

interface Span {
  resource: Record<string, unknown>;
  name: string;
  spanId: string;
  parentSpanId: string;
  traceId: string;
  seconds: number;
  status: number;
  attributes: Record<string, unknown>;
}
interface Phase {
  name: string;
  status: string;
  seconds: number | null;
  reason?: string;
  notApplicable?: boolean;
  floor?: { seconds: number; source: string } | null;
  steps: Array<{ name: string; seconds: number }>;
}

function decode<T>(mode: 'otlp' | 'prom', file: string): T {
  return JSON.parse(execFileSync(py!, [DECODE, mode, file], { encoding: 'utf8' })) as T;
}

describe.skipIf(!py)('--otlp: one trace per cold start, decoded with opentelemetry-proto', () => {
  it('a span per phase and per step under one root, durations equal to the JSON report, floors and reasons as attributes, the standard variables honoured', async () => {
    received.length = 0;
    const r = await runCli(['profile', '--framework', 'safetensors', '--only', 'gpu-load', '--json', '--otlp'], {
      env: { ...env, OTEL_EXPORTER_OTLP_ENDPOINT: `${endpoint}/`, OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=s%3Dcret', OTEL_SERVICE_NAME: 'inference-a', OTEL_RESOURCE_ATTRIBUTES: 'k8s.pod.name=llama-0,k8s.namespace.name=serving' },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/--otlp/);
    const doc = JSON.parse(r.stdout) as { phases: Phase[]; total: { seconds: number | null } };
    expect(received).toHaveLength(1);
    expect(received[0]!.url).toBe('/v1/traces');
    expect(received[0]!.headers['content-type']).toBe('application/x-protobuf');
    expect(received[0]!.headers['x-collector-token']).toBe('s=cret');
    const body = join(tmp, 'otlp.bin');
    writeFileSync(body, received[0]!.body);
    const spans = decode<Span[]>('otlp', body);

    const roots = spans.filter((s) => s.parentSpanId === '');
    expect(roots).toHaveLength(1);
    const root = roots[0]!;
    expect(root.name).toBe('coldstart profile');
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(root.resource).toMatchObject({ 'service.name': 'inference-a', 'k8s.pod.name': 'llama-0', 'k8s.namespace.name': 'serving', 'coldstart.model': 'demo' });
    expect(typeof root.resource['host.name']).toBe('string');

    const phaseSpans = spans.filter((s) => s.parentSpanId === root.spanId);
    expect(phaseSpans.map((s) => s.name)).toEqual(doc.phases.map((p) => p.name));
    for (const p of doc.phases) {
      const s = phaseSpans.find((x) => x.name === p.name)!;
      const measured = (p.status === 'ok' || p.status === 'estimated') && p.seconds !== null;
      expect(s.attributes['coldstart.measured']).toBe(measured);
      if (measured) {
        expect(Math.abs(s.seconds - p.seconds!)).toBeLessThan(2e-6);
        expect(s.attributes['coldstart.seconds']).toBeCloseTo(p.seconds!, 9);
      } else {
        expect(s.seconds).toBe(0); // a span of no duration that says why, never a measured-looking 0
        expect(String(s.attributes['coldstart.not_measured.reason'])).toContain(p.reason!);
      }
      if (p.floor) {
        expect(s.attributes['coldstart.floor.seconds']).toBeCloseTo(p.floor.seconds, 9);
        expect(s.attributes['coldstart.floor.source']).toBe(p.floor.source);
        if (measured) expect(s.attributes['coldstart.efficiency']).toBeCloseTo(p.floor.seconds / p.seconds!, 9);
      }
    }
    expect(doc.phases.find((p) => p.name === 'gpu-load')!.status).toBe('ok');
    // Each step of a phase is a span under it, with the step's seconds.
    for (const p of doc.phases) {
      const ps = phaseSpans.find((s) => s.name === p.name)!;
      const children = spans.filter((s) => s.parentSpanId === ps.spanId);
      expect(children.map((c) => c.name)).toEqual(p.steps.map((st) => `${p.name}: ${st.name}`));
      p.steps.forEach((st, i) => expect(Math.abs(children[i]!.seconds - st.seconds)).toBeLessThan(2e-6));
    }
    // The root lasts as long as the phases together (the report's total when complete).
    const sum = doc.phases.reduce((a, p) => a + ((p.status === 'ok' || p.status === 'estimated') && p.seconds !== null ? p.seconds : 0), 0);
    expect(Math.abs(root.seconds - sum)).toBeLessThan(1e-5);
    if (doc.total.seconds !== null) expect(root.attributes['coldstart.total.seconds']).toBeCloseTo(doc.total.seconds, 9);
  });

  it('warmup sends its trace too: one root, the warmup phase under it', async () => {
    received.length = 0;
    const onnx = fileURLToPath(new URL('../../fixtures/onnx/mlp.onnx', import.meta.url));
    const r = await runCli(['warmup', onnx, '--json', '--cache-dir', join(tmp, 'ort'), '--otlp', `${endpoint}/v1/traces`], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { phases: Phase[] };
    expect(received).toHaveLength(1);
    const body = join(tmp, 'otlp-warmup.bin');
    writeFileSync(body, received[0]!.body);
    const spans = decode<Span[]>('otlp', body);
    const root = spans.find((s) => s.parentSpanId === '')!;
    expect(root.name).toBe('coldstart warmup');
    const w = doc.phases.find((p) => p.name === 'warmup')!;
    const ws = spans.find((s) => s.parentSpanId === root.spanId && s.name === 'warmup')!;
    expect(Math.abs(ws.seconds - w.seconds!)).toBeLessThan(2e-6);
  });

  it('with the collector down the exit code and the output are those of a run without --otlp, plus one warning', async () => {
    const dead = 'http://127.0.0.1:9/v1/traces';
    const ok = await runCli(['profile', '--only', 'gpu-load', '--json', '--otlp', dead], { env });
    const okPlain = await runCli(['profile', '--only', 'gpu-load', '--json'], { env });
    expect(ok.code).toBe(okPlain.code);
    const warnings = ok.stderr.split('\n').filter((l) => /--otlp/.test(l));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not exported to http:\/\/127\.0\.0\.1:9\/v1\/traces .*the result above stands/);
    const shape = (s: string) => (JSON.parse(s) as { phases: Phase[] }).phases.map((p) => [p.name, p.status]);
    expect(shape(ok.stdout)).toEqual(shape(okPlain.stdout));
  });
});

describe.skipIf(!py)('--prometheus: the node-exporter textfile, parsed by prometheus_client', () => {
  it('a histogram per phase that adds up across runs, the floor as a gauge, unmeasured phases never observed', async () => {
    const file = join(tmp, 'coldstart.prom');
    for (let i = 0; i < 2; i++) {
      const r = await runCli(['profile', '--framework', 'safetensors', '--only', 'gpu-load', '--prometheus', file], { env });
      expect(r.code, r.stderr).toBe(0);
    }
    const fams = decode<Array<{ name: string; type: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }>>('prom', file);
    const fam = (n: string) => fams.find((f) => f.name === n)!;
    expect(fam('coldstart_phase_seconds').type).toBe('histogram');
    const count = fam('coldstart_phase_seconds').samples.find((s) => s.name === 'coldstart_phase_seconds_count' && s.labels.phase === 'gpu-load')!;
    expect(count.value).toBe(2);
    const inf = fam('coldstart_phase_seconds').samples.find((s) => s.name === 'coldstart_phase_seconds_bucket' && s.labels.phase === 'gpu-load' && s.labels.le === '+Inf')!;
    expect(inf.value).toBe(2);
    // Left out by --only: no observation, and the gauge says why.
    expect(fam('coldstart_phase_seconds').samples.some((s) => s.labels.phase === 'container')).toBe(false);
    const measured = fam('coldstart_phase_measured').samples;
    expect(measured.find((s) => s.labels.phase === 'gpu-load')!.value).toBe(1);
    expect(measured.find((s) => s.labels.phase === 'container')).toMatchObject({ value: 0, labels: { state: 'left-out' } });
    expect(fam('coldstart_phase_floor_seconds').samples.find((s) => s.labels.phase === 'gpu-load')!.value).toBeGreaterThan(0);
    expect(readFileSync(file, 'utf8')).toMatch(/\n$/);
  });

  it('--prometheus naming the model being profiled is refused before anything runs', async () => {
    const w = join(tmp, 'w.safetensors');
    writeFileSync(w, 'x');
    const r = await runCli(['profile', w, '--prometheus', w, '--json'], { env });
    expect(r.code).toBe(2);
    expect(readFileSync(w, 'utf8')).toBe('x');
  });
});

describe('telemetry/spans: a report as spans', () => {
  it('one root per measured run, each phase its run\'s seconds, back to back, ending at the export', async () => {
    const { reportSpans } = await import('../../src/telemetry/spans.js');
    const { newReport } = await import('../../src/core/report.js');
    const report = newReport('profile');
    report.phases = [
      { name: 'imports', status: 'ok', seconds: 2, steps: [], metrics: {}, share: null },
      { name: 'gpu-load', status: 'ok', seconds: 5, steps: [], metrics: {}, share: null },
    ];
    report.runs = { count: 2, warmup: 0, samples: [{ index: 1, total: 6, phases: { imports: 2, 'gpu-load': 4 } }, { index: 2, total: 8, phases: { imports: 2, 'gpu-load': 6 } }] };
    const roots = reportSpans(report, {}, 100_000);
    expect(roots.map((r) => [(r.endMs - r.startMs) / 1000, r.attributes['coldstart.run'], r.attributes['coldstart.total.seconds']])).toEqual([
      [6, 1, 6],
      [8, 2, 8],
    ]);
    expect(roots[1]!.endMs).toBe(100_000);
    expect(roots[0]!.endMs).toBe(roots[1]!.startMs);
    expect(roots[1]!.children.map((c) => (c.endMs - c.startMs) / 1000)).toEqual([2, 6]);
  });

  it('prometheus label values are escaped as the text format says', async () => {
    const { escapeLabel } = await import('../../src/telemetry/prometheus.js');
    expect(escapeLabel('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });
});

describe('docs/examples/grafana-coldstart.json', () => {
  it('queries only metrics the textfile has', async () => {
    const { prometheusText } = await import('../../src/telemetry/prometheus.js');
    const { newReport } = await import('../../src/core/report.js');
    const report = newReport('profile');
    report.phases = [{ name: 'gpu-load', status: 'ok', seconds: 1.5, steps: [], metrics: {}, share: null, floor: { seconds: 0.3, source: 'native loader' } }];
    report.total = { seconds: 1.5, complete: true, missing: [] };
    const written = new Set([...prometheusText(report).matchAll(/^(coldstart_\w+)\{/gm)].map((m) => m[1]!));
    const dashboard = readFileSync(fileURLToPath(new URL('../../docs/examples/grafana-coldstart.json', import.meta.url)), 'utf8');
    const queried = new Set([...dashboard.matchAll(/\b(coldstart_[a-z_]+)\b/g)].map((m) => m[1]!));
    expect(queried.size).toBeGreaterThan(3);
    for (const q of queried) expect(written, q).toContain(q);
  });
});
