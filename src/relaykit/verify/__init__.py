"""SMTP conformance suite shared by image and package verification.

`run_suite(Expectations) -> list[CheckResult]`; `format_table(results)`; a sink SMTP
server in `relaykit.verify.sink`. See suite.py for the namespace-friendly CLI.
"""

from relaykit.verify.model import CheckResult, Expectations, Listener, TlsMode
from relaykit.verify.suite import format_table, run_suite, run_suite_via

__all__ = [
    "CheckResult",
    "Expectations",
    "Listener",
    "TlsMode",
    "format_table",
    "run_suite",
    "run_suite_via",
]
