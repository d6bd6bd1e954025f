"""The fake OpenAI server moved to `summarize.testing.server`; this name stays for
`python -m tests.fakeserver` and old imports. New code imports the package's."""

from summarize.testing.server import *  # noqa: F403
from summarize.testing.server import __all__ as __all__
