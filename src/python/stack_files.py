"""prefetch --stack: where this interpreter's inference stack lives on disk, found without importing it (a cold
import is what the prefetch is meant to speed up). Emits one event: stack, with the interpreter, its standard
library folders and, for each package named in argv that is installed, its folder(s), in argv's order.
"""

import importlib.util
import os
import sys
import sysconfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit  # noqa: E402


def folders(name):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [p for p in spec.submodule_search_locations if os.path.isdir(p)]
    return [spec.origin] if spec.origin and os.path.isfile(spec.origin) else []


def main():
    paths = sysconfig.get_paths()
    stdlib = [p for p in {paths.get("stdlib"), paths.get("platstdlib")} if p and os.path.isdir(p)]
    emit(
        "stack",
        executable=os.path.realpath(sys.executable),
        version=sys.version.split()[0],
        stdlib=sorted(stdlib),
        packages={n: folders(n) for n in sys.argv[1:]},
    )


if __name__ == "__main__":
    main()
