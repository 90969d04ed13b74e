"""Stage 1 of the pipeline: a profile file becomes a validated, frozen model.

yamlsrc (YAML with FILE:LINE for every path) → load (extends:, defaults, schema via
fastcheck, policy) → model (frozen dataclasses).
"""
