"""`python -m relaykit ...`: the same as the `relaykit` command."""

from relaykit.cli import main

main()
