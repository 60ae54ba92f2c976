"""One module per ``kdbench`` sub-command; each defines ``add_parser(subparsers)``."""
