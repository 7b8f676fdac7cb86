"""doctor: this interpreter and the versions of the packages named in argv, found by their metadata (nothing is
imported, so a broken or slow torch does not stall doctor). Emits one event: python.
"""

import importlib.util
import os
import sys
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402


def installed(name):
    try:
        if importlib.util.find_spec(name) is None:
            return None
        return version(name.replace("_", "-"))
    except Exception:
        return None


def main():
    emit("python", version=sys.version.split()[0], executable=sys.executable, packages={n: installed(n) for n in sys.argv[1:]})


if __name__ == "__main__":
    main()
