"""One module per ``scaling`` subcommand: ``add_parser(subparsers)`` and ``run(args) -> int``."""
