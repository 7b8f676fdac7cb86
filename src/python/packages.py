"""doctor: this interpreter and the versions of the packages named in argv, found by their metadata (none of them is
imported, so a broken or slow torch does not stall doctor), and whether coldstart_load (beside this file, standard
library only) finds and loads libcoldstart_load.so here, as a server's wake-up would. Emits one event: python.
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


def server_loader():
    import coldstart_load

    out = {"module": os.path.abspath(coldstart_load.__file__)}
    try:
        out["library"] = coldstart_load.library()._name
    except coldstart_load.LoadError as e:
        out["reason"] = str(e)
    return out


def main():
    packages = {n: installed(n) for n in sys.argv[1:]}
    emit("python", version=sys.version.split()[0], executable=sys.executable, packages=packages, serverLoader=server_loader())


if __name__ == "__main__":
    main()
