// A CPU-only OpenAI-compatible completion server for snapshot/restore tests: GET /health answers "ok"; POST or GET
// /v1/completions answers the same completion text every time with a new `id` and `created` (as vLLM, SGLang and
// OpenAI do), so its answers are identical as compared (src/server/answer.ts) and never byte for byte. Port: argv[2].
import http from 'node:http';
import { randomBytes } from 'node:crypto';

const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    res.setHeader('connection', 'close');
    if (req.url === '/health') return res.end('ok');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ id: `cmpl-${randomBytes(12).toString('hex')}`, object: 'text_completion', created: Math.floor(Date.now() / 1000) + Math.floor(Math.random() * 1000), model: 'tiny', choices: [{ index: 0, text: ' the same words', logprobs: null, finish_reason: 'length' }], usage: { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 } }));
  })
  .listen(port, '127.0.0.1', () => console.log(`openai-ids listening on 127.0.0.1:${port}`));
