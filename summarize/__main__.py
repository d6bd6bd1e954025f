"""`python -m summarize` is the `summarize` command."""

from ._cli import main

main()
