"""The command-line entry point every script under ``train/`` uses.

A user error (a bad argument, a missing or malformed file, a checkpoint that does not fit: the ``ValueError``
and ``OSError`` families, and ``SystemExit`` with a message) prints one line, ``error: <message>``, and exits
with status 2; a traceback is shown only with ``--debug`` (or ``HILIGHT_DEBUG=1``), or for a real bug (any
other exception propagates as usual).

    if __name__ == "__main__":
        run_main(main)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

USER_ERRORS = (ValueError, OSError)


def run_main(main: Callable[..., Any]) -> None:
    debug = "--debug" in sys.argv or os.environ.get("HILIGHT_DEBUG") == "1"
    if "--debug" in sys.argv:
        sys.argv.remove("--debug")
    try:
        result = main()
    except SystemExit as exc:
        if isinstance(exc.code, str) and not debug:
            print(f"error: {exc.code}", file=sys.stderr)
            sys.exit(2)
        raise
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(result if isinstance(result, int) else 0)
