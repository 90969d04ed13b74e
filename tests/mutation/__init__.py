"""Mutation testing of the relay-safety modules: how strong are the unit tests?

mutator.py makes mutants from a module's AST, runner.py runs the unit tests against
each one in a forked child that imports a temporary copy of the source tree (the
checkout is never written), equivalent.toml lists the mutants that cannot be killed.
`invoke mutation --help`.
"""
