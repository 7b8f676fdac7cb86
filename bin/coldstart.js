#!/usr/bin/env node
import('../dist/cli/main.js').then((m) => m.main(process)).catch((e) => { console.error(`coldstart: failed to start: ${e?.message ?? e}\n  Run \`npm run build\` in the package directory (dist/ is missing or stale).`); process.exitCode = 3; });
