"""Send a job's logging, warnings and progress bars to its log file."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager


@contextmanager
def log_to(path):
    """Route stderr (tqdm, warnings, tracebacks) and the logging module into ``path``."""
    with open(path, "w", buffering=1) as handle:
        old_stderr = sys.stderr
        sys.stderr = handle
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr = old_stderr
