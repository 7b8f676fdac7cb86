import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython, runPython } from '../helpers/python.js';

export const FAKE_VLLM = fileURLToPath(new URL('../fixtures-servers/fake-vllm.mjs', import.meta.url));
export const SCHEMA = fileURLToPath(new URL('../../docs/schema/profile.schema.json', import.meta.url));

export function tempDir(prefix = 'cs-profile-'): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Validates a JSON document against docs/schema/profile.schema.json with python's jsonschema (Draft 2020-12). */
export function validateWithSchema(doc: unknown, py = peerPython()): string[] {
  if (!py) throw new Error('no peer python');
  const dir = mkdtempSync(join(tmpdir(), 'cs-schema-'));
  try {
    const f = join(dir, 'doc.json');
    writeFileSync(f, JSON.stringify(doc));
    const out = runPython(
      py,
      `import json, sys
from jsonschema import Draft202012Validator, FormatChecker
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
doc = json.load(open(sys.argv[2]))
errs = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(doc), key=lambda e: list(e.path))
print(json.dumps([f"{'/'.join(map(str, e.path))}: {e.message}" for e in errs]))`,
      [SCHEMA, f],
    );
    return JSON.parse(out) as string[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parses JUnit XML with python's xml.etree and checks the JUnit structure (testsuites > testsuite > testcase). */
export function parseJUnit(path: string, py = peerPython()): { tests: number; failures: number; skipped: number; cases: Array<{ name: string; failure: string | null; skipped: boolean; time: number }> } {
  if (!py) throw new Error('no peer python');
  const out = runPython(
    py,
    `import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
assert len(suites) >= 1
for s in suites:
    for a in ("name", "tests", "failures", "errors", "time"):
        assert a in s.attrib, a
    n = len(s.findall("testcase"))
    assert int(s.get("tests")) == n, (s.get("tests"), n)
    assert int(s.get("failures")) == len(s.findall("testcase/failure"))
    float(s.get("time"))
cases = []
for c in root.iter("testcase"):
    assert "name" in c.attrib and "classname" in c.attrib
    f = c.find("failure")
    cases.append({"name": c.get("name"), "failure": f.get("message") if f is not None else None, "skipped": c.find("skipped") is not None, "time": float(c.get("time"))})
print(json.dumps({"tests": sum(int(s.get("tests")) for s in suites), "failures": sum(int(s.get("failures")) for s in suites), "skipped": sum(int(s.get("skipped") or 0) for s in suites), "cases": cases}))`,
    [path],
  );
  return JSON.parse(out);
}
