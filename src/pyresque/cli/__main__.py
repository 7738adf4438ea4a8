"""``python -m pyresque.cli``: the command line."""

from pyresque.cli.main import main

main()
