"""Golden rendered files of every shipped profile: tests/golden/<profile>/.

snapshot.py renders a profile into the files kept here; tests/unit/test_golden.py
compares them byte for byte; `invoke golden` rewrites them on purpose.
"""
