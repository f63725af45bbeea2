"""The version of anynet, defined here only.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), ``anynet.__version__`` re-exports
it, checkpoints record it and ``anynet --version`` prints it.
"""

__version__ = "0.2.0"
