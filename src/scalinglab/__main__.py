"""`python -m scalinglab` runs the CLI."""

from scalinglab.cli import main

main()
