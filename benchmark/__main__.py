"""``python -m benchmark`` is the same as the ``kdbench`` command."""

from benchmark.cli import main

raise SystemExit(main())
