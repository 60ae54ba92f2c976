"""kdbench's benchmark harness: data, recipes, training engine, teachers, suites, runner,
MLflow tracking, leaderboards and the ``kdbench`` command line.

Kept import-light on purpose: ``models`` and ``losses`` import :mod:`benchmark.errors`.
"""

__version__ = "0.1.0"
