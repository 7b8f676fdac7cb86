"""Where the device proof's Python finds coldstart_load: the folder CS_COLDSTART_PY names (an installed package's
dist/python), else the checkout's src/python, else its dist/python. Importing this module puts it first on sys.path."""

import os
import sys

_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
_PY = [os.environ.get("CS_COLDSTART_PY", ""), os.path.join(_ROOT, "src", "python"), os.path.join(_ROOT, "dist", "python")]
FOLDER = next((d for d in _PY if d and os.path.isfile(os.path.join(d, "coldstart_load.py"))), _PY[1])
if FOLDER not in sys.path:
    sys.path.insert(0, FOLDER)
