"""A real, small OpenAI-compatible server for the warmup interop test.

FastAPI + uvicorn; at start-up it loads a transformers causal LM from MODEL_DIR (a tiny GPT-2 the test
generates on the fly with random weights) in a background thread, answering 503 on every route until the
model is loaded — like vLLM/TGI/llama.cpp while they load. Then it serves:
  GET  /v1/models
  POST /v1/completions       (stream: SSE "data: {...}" chunks, one per generated token, then [DONE])
  POST /v1/chat/completions
Tokenisation is bytes → ids (the tiny model has a 256-token vocabulary), so no tokenizer files are needed;
generation is real: greedy decoding with the model's KV cache, one forward per token.

Usage: python openai_server.py MODEL_DIR PORT [LOAD_DELAY_SECONDS]
"""
import asyncio
import json
import sys
import threading
import time

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from transformers import AutoModelForCausalLM

MODEL_DIR, PORT = sys.argv[1], int(sys.argv[2])
LOAD_DELAY = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
NAME = "tiny-gpt2"
state = {"model": None, "error": None}
app = FastAPI()


def load():
    try:
        time.sleep(LOAD_DELAY)  # stands in for a big download / GPU copy
        m = AutoModelForCausalLM.from_pretrained(MODEL_DIR, local_files_only=True).eval()
        state["model"] = m
        print(f"loaded {type(m).__name__}", flush=True)
    except Exception as e:  # surfaced as 500s
        state["error"] = repr(e)


threading.Thread(target=load, daemon=True).start()


@app.middleware("http")
async def loading_gate(request: Request, call_next):
    if state["error"]:
        return JSONResponse({"error": {"message": state["error"]}}, status_code=500)
    if state["model"] is None:
        return JSONResponse({"error": {"message": "Loading model", "type": "unavailable_error"}}, status_code=503)
    return await call_next(request)


@app.get("/v1/models")
def models():
    return {"object": "list", "data": [{"id": NAME, "object": "model", "owned_by": "coldstart-test"}]}


def tokens(prompt: str, max_tokens: int):
    """Greedy generation, one token at a time (yields decoded text pieces)."""
    m = state["model"]
    ids = torch.tensor([list(prompt.encode("utf-8"))[-64:] or [0]], dtype=torch.long)
    past = None
    with torch.inference_mode():
        for _ in range(max_tokens):
            out = m(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = int(out.logits[0, -1].argmax())
            ids = torch.tensor([[nxt]], dtype=torch.long)
            yield chr(nxt) if 32 <= nxt < 127 else "?"


def sse(pieces, chat: bool):
    for p in pieces:
        choice = {"index": 0, "delta": {"content": p}} if chat else {"index": 0, "text": p, "finish_reason": None}
        yield f"data: {json.dumps({'id': 'cmpl-1', 'model': NAME, 'choices': [choice]})}\n\n"
    yield "data: [DONE]\n\n"


@app.post("/v1/completions")
async def completions(request: Request):
    body = await request.json()
    prompt, n = str(body.get("prompt", "")), int(body.get("max_tokens", 16))
    if body.get("stream"):
        return StreamingResponse(sse(tokens(prompt, n), chat=False), media_type="text/event-stream")
    text = "".join(await asyncio.to_thread(lambda: list(tokens(prompt, n))))
    return {"id": "cmpl-1", "object": "text_completion", "model": NAME, "choices": [{"index": 0, "text": text, "finish_reason": "length"}]}


@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    n = int(body.get("max_tokens", 16))
    if body.get("stream"):
        return StreamingResponse(sse(tokens(prompt, n), chat=True), media_type="text/event-stream")
    text = "".join(await asyncio.to_thread(lambda: list(tokens(prompt, n))))
    return {"id": "chat-1", "model": NAME, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}]}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
