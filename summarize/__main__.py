"""`python -m summarize` is the `summarize` command."""

from .cli import main

main()
