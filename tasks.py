"""relaykit's tasks for `invoke` in a clone: `invoke --list`, `invoke --help <task>`.

The tasks are defined once, in src/relaykit/cli.py, which the installed `relaykit`
command runs too; this file only lets invoke find them without installing relaykit.
`invoke --debug <task>` (or RELAYKIT_DEBUG=1) shows tracebacks; RELAYKIT_VERBOSE=1 shows
progress when stderr is not a terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from relaykit.cli import namespace as ns

__all__ = ["ns"]
