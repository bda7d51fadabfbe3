"""One reader for the JSON files scalinglab reads back (fits, chains, hyperparameter fits).

Every failure — missing, a directory, unreadable, not JSON, not UTF-8, nested too deeply for the
parser — is one :class:`~scalinglab.errors.InputError` naming the file; what the JSON holds is
checked by each file kind's own validator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scalinglab.errors import InputError

__all__ = ["read_json"]


def read_json(path: str | Path, kind: str, missing: str | None = None) -> Any:
    """Parse ``path``; ``kind`` names the file in errors ("fit JSON file"), ``missing`` in the not-found one."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {missing or kind}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a {kind}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not a {kind} ({exc.msg})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a {kind} (not UTF-8 text)") from None
    except RecursionError:
        raise InputError(f"{path}: not a {kind} (nested too deeply)") from None
