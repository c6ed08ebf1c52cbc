"""The project's gunicorn.conf.py with the access log off.

Formatting an access line costs the same on both sides of bench/http_overhead.py and would only
flatter the ratio, so it is left out; everything else (workers, timeouts, keep-alive) is the
project's.
"""

import runpy
from pathlib import Path

_project = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
globals().update({k: v for k, v in _project.items() if not k.startswith("_") and k != "os"})
accesslog = None
