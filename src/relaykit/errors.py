"""Domain errors: what went wrong, where, and how to fix it.

Every user-facing failure is a RelaykitError carrying a message and a hint; the CLI
layer (tasks.py) turns it into a non-zero exit without a traceback.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a profile, pinned to a source location."""

    level: Level
    file: str
    line: int
    path: str  # ".listeners[0].port" style; "." for the document root
    message: str
    hint: str = ""
    code: str = ""  # stable rule id, e.g. "open-relay"

    def format(self) -> str:
        prefix = "" if self.level is Level.ERROR else "warning: "
        text = f"{self.file}:{self.line}: {self.path}: {prefix}{self.message}"
        if self.code:
            text += f" [{self.code}]"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["level"] = self.level.value
        return data


class RelaykitError(Exception):
    """A user-facing error: a message, an optional hint, and an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


class ProfileError(RelaykitError):
    """The profile is invalid; carries every diagnostic found, errors and warnings."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic], strict: bool = False) -> None:
        errors = [d for d in diagnostics if d.level is Level.ERROR]
        warnings = len(diagnostics) - len(errors)
        summary = f"profile is invalid: {len(errors)} error(s)"
        if strict and warnings:
            summary += f", {warnings} warning(s) treated as errors (--strict)"
        super().__init__(summary)
        self.diagnostics = diagnostics

    def render(self) -> str:
        lines = [d.format() for d in self.diagnostics]
        lines.append(self.message)
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {"ok": False, "diagnostics": [d.to_json() for d in self.diagnostics]}, indent=2
        )


def die(message: str, hint: str = "") -> RelaykitError:
    """Build an error to raise: ``raise die("...", hint="...")``."""
    return RelaykitError(message, hint)
