/** Child process for the benchmark: serves a generated repo from disk with the test Hub server. */
import { readFileSync } from 'node:fs';
import { HubServer, diskFile, servedFile } from '../../test/helpers/hub-server.js';

const manifest = JSON.parse(readFileSync(process.argv[2], 'utf8')) as {
  repo: string;
  small: Array<{ path: string; text: string }>;
  shards: Array<{ path: string; diskPath: string; size: number; sha256: string }>;
};
const hub = await new HubServer().start();
const commit = hub.addRepo(manifest.repo, [
  ...manifest.small.map((s) => servedFile(s.path, Buffer.from(s.text))),
  ...manifest.shards.map((s) => diskFile(s.path, s.diskPath, s.size, s.sha256)),
]);
process.stdout.write(`${JSON.stringify({ endpoint: hub.endpoint, cdn: hub.cdnOrigin, commit })}\n`);
process.on('SIGTERM', () => void hub.stop().then(() => process.exit(0)));
