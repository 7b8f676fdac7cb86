import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { runCommandWith, type CliResult } from '../helpers/cli.js';

// ajv-formats is CommonJS: its default export arrives wrapped under ESM.
const addFormats = ((addFormatsPlugin as unknown as { default?: typeof addFormatsPlugin }).default ?? addFormatsPlugin) as typeof addFormatsPlugin;

export const FAKE_VLLM = fileURLToPath(new URL('../fixtures-servers/fake-vllm.mjs', import.meta.url));
export const SCHEMA = fileURLToPath(new URL('../../docs/schema/profile.schema.json', import.meta.url));

export function tempDir(prefix = 'cs-profile-'): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

export { freePort } from '../helpers/fake-servers.js';

/**
 * Validates a JSON document against docs/schema/profile.schema.json with Ajv (Draft 2020-12, formats checked by
 * ajv-formats): a validator nobody here wrote, with no Python needed, so the schema checks always run.
 */
const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
let validateProfile: ValidateFunction | undefined;
export function validateWithSchema(doc: unknown): string[] {
  validateProfile ??= ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')) as object);
  if (validateProfile(doc)) return [];
  return (validateProfile.errors ?? []).map((e) => `${e.instancePath}: ${e.message ?? e.keyword}`).sort();
}

export const OPTIMIZE_SCHEMA = fileURLToPath(new URL('../../docs/schema/optimize.schema.json', import.meta.url));
let validateOptimize: ValidateFunction | undefined;
/** The same check for docs/schema/optimize.schema.json (it reuses profile.schema.json's common fields by $ref). */
export function validateOptimizeReport(doc: unknown): string[] {
  if (!validateOptimize) {
    validateProfile ??= ajv.compile(JSON.parse(readFileSync(SCHEMA, 'utf8')) as object);
    validateOptimize = ajv.compile(JSON.parse(readFileSync(OPTIMIZE_SCHEMA, 'utf8')) as object);
  }
  if (validateOptimize(doc)) return [];
  return (validateOptimize.errors ?? []).map((e) => `${e.instancePath}: ${e.message ?? e.keyword}`).sort();
}

/**
 * Parses JUnit XML with junit2json (a JUnit parser from npm that nobody here wrote) and checks the JUnit structure:
 * testsuites > testsuite > testcase, and each suite's counts equal its test cases.
 */
export async function parseJUnit(path: string): Promise<{ tests: number; failures: number; skipped: number; cases: Array<{ name: string; failure: string | null; skipped: boolean; time: number }> }> {
  const { parse } = await import('junit2json');
  const root = (await parse(readFileSync(path, 'utf8'))) as {
    tests?: number;
    testsuite?: Array<{ name?: string; tests?: number; failures?: number; skipped?: number; errors?: number; time?: number; testcase?: Array<{ name?: string; classname?: string; time?: number; failure?: Array<{ message?: string }>; skipped?: unknown[] }> }>;
  };
  const suites = root.testsuite ?? [];
  if (suites.length < 1) throw new Error('JUnit: no <testsuite>');
  const cases: Array<{ name: string; failure: string | null; skipped: boolean; time: number }> = [];
  let tests = 0;
  let failures = 0;
  let skipped = 0;
  for (const s of suites) {
    for (const a of ['name', 'tests', 'failures', 'errors', 'time'] as const) if (s[a] === undefined) throw new Error(`JUnit: <testsuite> without ${a}`);
    const tc = s.testcase ?? [];
    if (s.tests !== tc.length) throw new Error(`JUnit: tests=${s.tests} but ${tc.length} <testcase>`);
    if (s.failures !== tc.filter((c) => c.failure).length) throw new Error('JUnit: failures count does not match');
    for (const c of tc) {
      if (c.name === undefined || c.classname === undefined) throw new Error('JUnit: <testcase> without name/classname');
      cases.push({ name: c.name, failure: c.failure?.[0]?.message ?? null, skipped: !!c.skipped, time: Number(c.time ?? 0) });
    }
    tests += s.tests ?? 0;
    failures += s.failures ?? 0;
    skipped += s.skipped ?? 0;
  }
  return { tests, failures, skipped, cases };
}

/**
 * Runs `coldstart profile ARGS` in-process with the given engines (stand-ins for the GPU loader, download,
 * warmup, Python, native probe): the same commander wiring and runner as src/cli/main.ts, with engines passed in.
 */
export async function runProfileWith(engines: import('../../src/profile/engines.js').Engines, args: string[], opts: { env?: Record<string, string | undefined> } = {}): Promise<CliResult> {
  const { registerProfile } = await import('../../src/commands/profile.js');
  return runCommandWith(registerProfile, engines, 'profile', args, opts);
}
