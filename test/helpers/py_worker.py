"""One Python process for a whole test file: runs the snippets that test/helpers/python.ts `pythonWorker` sends.

Each request is one JSON line on stdin: {"code": str, "args": [str], "env": {str: str}}. The snippet runs as a
script would (`__name__ == "__main__"`, sys.argv = ["-c", *args], env set for its run), its print() output is
captured, and the answer is one JSON line on fd 3 ({"ok": true, "stdout": ...} or {"ok": false, "error":
traceback}), so anything a library writes to the real stdout or stderr cannot garble it. Modules stay imported
between snippets: torch and transformers are imported once per file instead of once per snippet.
"""

import contextlib
import io
import json
import os
import sys
import traceback


def run(req):
    saved_env = dict(os.environ)
    os.environ.update(req.get("env") or {})
    sys.argv = ["-c", *req.get("args", [])]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(req["code"], "<test snippet>", "exec"), {"__name__": "__main__"})
        return {"ok": True, "stdout": out.getvalue()}
    except SystemExit as e:
        if e.code in (None, 0):
            return {"ok": True, "stdout": out.getvalue()}
        return {"ok": False, "error": f"exit {e.code}\n{out.getvalue()}"}
    except BaseException:  # noqa: BLE001 - the test gets every failure with its traceback
        return {"ok": False, "error": traceback.format_exc()}
    finally:
        os.environ.clear()
        os.environ.update(saved_env)


def main():
    answers = os.fdopen(3, "w", encoding="utf-8")
    for line in sys.stdin:
        if line.strip():
            answers.write(json.dumps(run(json.loads(line))) + "\n")
            answers.flush()


if __name__ == "__main__":
    main()
