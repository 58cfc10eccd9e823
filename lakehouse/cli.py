"""Shared command-line plumbing: one-line errors, non-zero exits."""

from __future__ import annotations

import sys
from collections.abc import Callable

from lakehouse.errors import UserError
from lakehouse.lake import LakeObjectMissing
from lakehouse.warehouse import WarehouseConfigError


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a CLI main; known errors become `error: ...` on stderr and exit code 2."""
    try:
        return main(argv) or 0
    except LakeObjectMissing as exc:
        print(f"error: {exc}; ingest your download (`python -m loaders ingest PATH`) or generate "
              "a sample year (`python -m loaders generate --year Y`), and check LAKE_URL",
              file=sys.stderr)
    except (UserError, WarehouseConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        print("error: interrupted; nothing was published (re-run the command)", file=sys.stderr)
        return 130
    return 2
