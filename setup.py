"""Build hook: a wheel carries the clone's schema/, profiles/, rootfs/ and locks/ as
relaykit/_data.

The repository keeps those directories at its top, where they are edited; everything
else about the package is in pyproject.toml.  relaykit.paths.data_dir() finds the copy
in an installed wheel and the originals in a clone (so an editable install copies
nothing).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _paths_constant(name: str) -> Any:
    """A literal from src/relaykit/paths.py, read without importing relaykit."""
    tree = ast.parse((HERE / "src" / "relaykit" / "paths.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"src/relaykit/paths.py defines no {name}")


class build_py_with_data(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # the clone's own directories are used in place
        target = Path(self.build_lib) / "relaykit" / str(_paths_constant("DATA_PACKAGE_DIR"))
        for name in _paths_constant("DATA_DIRS"):
            # copytree keeps the executable bits the image builder reads (entrypoint).
            shutil.copytree(HERE / name, target / name, dirs_exist_ok=True)


# setuptools' scratch space must not be ./build: that is where relaykit writes artifacts.
setup(cmdclass={"build_py": build_py_with_data},
      options={"build": {"build_base": ".setuptools-build"}})
