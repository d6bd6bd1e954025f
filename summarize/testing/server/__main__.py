"""`python -m summarize.testing.server`: serve until Ctrl-C."""

from __future__ import annotations

import contextlib

from ._server import FakeOpenAI


def main() -> None:
    """Serve until Ctrl-C: `python -m summarize.testing.server --port 8000 --latency 0.2 --rps 50`.

    `--batch-polls 3` makes a batch take three retrieves per step of its life.
    """
    import argparse  # noqa: PLC0415 - only the command line needs it
    import time  # noqa: PLC0415

    parser = argparse.ArgumentParser(description="A local OpenAI-compatible test server.")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--rps", type=float, default=None, help="429 past this many requests/s")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this much extra latency")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds, on 429s")
    parser.add_argument(
        "--no-limit-headers", action="store_true", help="send no x-ratelimit-* headers"
    )
    parser.add_argument(
        "--batch-polls",
        type=int,
        default=1,
        help="retrieves of a batch per step of its status (validating, in_progress, ...)",
    )
    parser.add_argument(
        "--faults",
        default="",
        help="fault mix, e.g. http_500=0.05,drop=0.02",
    )
    args = parser.parse_args()
    mix = {k: float(v) for k, v in (p.split("=") for p in args.faults.split(",") if p)}
    with FakeOpenAI(
        latency=args.latency,
        jitter=args.jitter,
        rps_limit=args.rps,
        retry_after=args.retry_after,
        limit_headers=not args.no_limit_headers,
        batch_polls=args.batch_polls,
        port=args.port,
    ) as server:
        server.set_fault_mix(mix)
        print(f"serving {server.base_url} (Ctrl-C stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
