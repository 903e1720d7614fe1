"""`python -m pdopt` runs the command line, like the `pdopt` script."""

from pdopt.cli import main

main()
