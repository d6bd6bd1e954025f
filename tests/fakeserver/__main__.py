"""`python -m tests.fakeserver`: the same as `python -m summarize.testing.server`."""

from summarize.testing.server.__main__ import main

if __name__ == "__main__":
    main()
