"""The curator peer of the throughput benchmark: the same extraction with bespokelabs-curator.

    bash bench/setup_curator.sh
    bench/.venv-curator/bin/python bench/curator_peer.py --base-url URL --input ABSTRACTS.jsonl \
        [--rpm N] [--concurrency-hint N]

Each line of ABSTRACTS.jsonl has `title` and `abstract`. Every abstract goes through a
`curator.LLM` subclass (`prompt()` renders prompts/summarize.md, `parse()` keeps the
answer) with `response_format=summarize.Summary` on curator's "openai" online
backend, pointed at `--base-url`. Curator validates the shape (it builds the
`response_format` model and retries an answer that does not fit); this script then
checks each answer against its abstract (`Summary` with the grounding context, as the
job does, but with no re-ask). Prints one JSON line to stdout:

    {"peer": "curator", "n": N, "valid": V, "wall_s": .., "cpu_s": .., "requests": ..}

`wall_s`/`cpu_s` cover building the `LLM` (curator's probe request included) through the
validated rows, not the imports; `cpu_s` is user+system time of this process and its
children (getrusage). `requests` is curator's count of chat-completion attempts for the
rows (successes + failed attempts, retries included), without its start-up probes.
Everything else (curator's logs, progress, final statistics) goes to stderr.

Kept off the network and out of the home directory: curator's telemetry (PostHog) and
hosted viewer are disabled, its cache is disabled and its working directory is a
temporary one removed at the end, litellm uses its bundled model cost map, tiktoken
reads litellm's bundled cl100k_base (else it downloads it), and the Hugging Face
libraries are offline. Setting any of these variables yourself overrides.

Curator's rate limits, unlike the job's, always apply: without `--rpm` it would read
`x-ratelimit-limit-requests` as requests per MINUTE (or use 200/min), and it charges
every request its prompt tokens plus 4096 estimated output tokens (for a model litellm
does not know) against 100,000 tokens/min. So `--rpm` unset means effectively no limit
(10^6/min) and `--tpm` defaults to 10^9; `--concurrency-hint` becomes curator's
`max_concurrent_requests` (no cap when unset).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UNLIMITED_RPM = 1_000_000
DEFAULT_TPM = 1_000_000_000


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def quiet_environment(workdir: Path) -> None:
    """No telemetry, viewer, cache or hub traffic; must run before curator is imported."""
    defaults = {
        "TELEMETRY_ENABLED": "false",  # bespokelabs.curator.telemetry (PostHog), read at import
        "CURATOR_DISABLE_CACHE": "1",  # a random run fingerprint: never reuse old responses
        "CURATOR_CACHE_DIR": str(workdir / "curator-cache"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else litellm fetches its cost map at import
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_DATASETS_CACHE": str(workdir / "hf-datasets"),
    }
    # curator's token estimates use tiktoken's cl100k_base, which tiktoken downloads
    # unless it is cached: litellm ships it, but sets TIKTOKEN_CACHE_DIR only when its
    # default_encoding module happens to be imported, which curator's path does not do.
    litellm_spec = importlib.util.find_spec("litellm")
    if litellm_spec is not None and litellm_spec.submodule_search_locations:
        litellm_dir = Path(next(iter(litellm_spec.submodule_search_locations)))
        defaults["TIKTOKEN_CACHE_DIR"] = str(litellm_dir / "litellm_core_utils" / "tokenizers")
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    # The hosted Curator Viewer streams every response to bespokelabs.ai when set.
    os.environ.pop("CURATOR_VIEWER", None)
    os.environ.pop("BESPOKE_API_KEY", None)


def read_abstracts(path: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record.get("abstract"), str):
                raise SystemExit(f"{path}:{number}: no string `abstract`")
            rows.append({"title": str(record.get("title") or ""), "abstract": record["abstract"]})
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8765/v1")
    parser.add_argument("--input", required=True, type=Path, help="JSONL with title, abstract")
    parser.add_argument("--rpm", type=int, default=None, help="max_requests_per_minute")
    parser.add_argument(
        "--concurrency-hint", type=int, default=None, help="max_concurrent_requests"
    )
    parser.add_argument("--tpm", type=int, default=DEFAULT_TPM, help="max_tokens_per_minute")
    parser.add_argument("--model", default=os.environ.get("SUMMARIZE_MODEL", "fake-model"))
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", "sk-test"))
    parser.add_argument("--max-retries", type=int, default=None, help="curator's default: 10")
    parser.add_argument(
        "--structured-probe",
        action="store_true",
        help=(
            "keep curator's structured-output probe (a `beta.chat.completions.parse` call "
            "with a test `User{name, age}` model, made when base_url is set); the fake "
            "server answers it with a Summary, so curator then refuses to run"
        ),
    )
    parser.add_argument("--keep-workdir", action="store_true", help="for debugging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="curator-peer-"))
    quiet_environment(workdir)

    # Only the JSON line goes to stdout: anything else written to fd 1 (by curator,
    # litellm, rich, tqdm or C code) lands on stderr.
    stdout_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        result = run(args, workdir)
    finally:
        sys.stdout.flush()
        os.dup2(stdout_fd, 1)
        os.close(stdout_fd)
        sys.stdout = sys.__stdout__
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"curator_peer: work directory kept: {workdir}", file=sys.stderr)
    print(json.dumps(result), flush=True)
    return 0


# Imports inside: the environment that keeps curator off the network is set first,
# and their seconds are measured apart from the run's.
def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    import_start = time.perf_counter()
    from bespokelabs import curator  # noqa: PLC0415

    # Imported lazily by LLM() (litellm with it, seconds): kept out of the timed window.
    from bespokelabs.curator.request_processor.online import (  # noqa: F401, PLC0415
        openai_online_request_processor,
    )
    from datasets import Dataset  # noqa: PLC0415
    from pydantic import ValidationError  # noqa: PLC0415

    from summarize._prompt import DEFAULT_PROMPT, load_prompt  # noqa: PLC0415
    from summarize._schema import Summary  # noqa: PLC0415

    import_s = time.perf_counter() - import_start
    template = load_prompt(DEFAULT_PROMPT)
    abstracts = read_abstracts(args.input)

    class Summarizer(curator.LLM):
        response_format = Summary

        def prompt(self, input: dict[str, Any]) -> list[dict[str, str]]:
            return template.messages(title=input["title"], abstract=input["abstract"])

        def parse(self, input: dict[str, Any], response: Summary) -> dict[str, Any]:
            return {
                "title": input["title"],
                "abstract": input["abstract"],
                "summary": response.model_dump_json(),
            }

    backend_params: dict[str, Any] = {
        "base_url": args.base_url,
        "api_key": args.api_key,
        "max_requests_per_minute": args.rpm or UNLIMITED_RPM,
        "max_tokens_per_minute": args.tpm,
        # Report failed rows instead of raising at the end.
        "require_all_responses": False,
    }
    if args.concurrency_hint:
        backend_params["max_concurrent_requests"] = args.concurrency_hint
    if args.max_retries is not None:
        backend_params["max_retries"] = args.max_retries

    wall_start = time.perf_counter()
    cpu_start = cpu_seconds()
    llm = Summarizer(
        model_name=args.model,
        response_format=Summary,
        backend="openai",
        backend_params=backend_params,
        generation_params={"temperature": 0.0},
    )
    processor = llm._request_processor
    if not args.structured_probe:
        # Curator's only switch for this probe is the processor's method.
        processor.check_structured_output_support = lambda: True
    built_s = time.perf_counter() - wall_start

    response = llm(Dataset.from_list(abstracts), working_dir=str(workdir / "run"))

    valid = 0
    for row in response.dataset:
        try:
            Summary.model_validate_json(
                row["summary"], context={"abstract": row["abstract"], "title": row["title"]}
            )
        except ValidationError:
            continue
        valid += 1
    wall_s = time.perf_counter() - wall_start
    cpu_s = cpu_seconds() - cpu_start

    tracker = processor.tracker
    requests = (
        tracker.num_tasks_succeeded + tracker.num_other_errors + tracker.num_rate_limit_errors
    )
    print(
        f"curator_peer: import {import_s:.2f}s, LLM() {built_s:.2f}s, rows {len(response.dataset)}"
        f", succeeded {tracker.num_tasks_succeeded}, failed {tracker.num_tasks_failed}"
        f", failed attempts {tracker.num_other_errors + tracker.num_rate_limit_errors}"
        f", max in flight {tracker.max_concurrent_requests_seen}"
        f", process CPU incl. imports {cpu_seconds():.2f}s",
        file=sys.stderr,
    )
    return {
        "peer": "curator",
        "n": len(abstracts),
        "valid": valid,
        "wall_s": round(wall_s, 3),
        "cpu_s": round(cpu_s, 3),
        "requests": requests,
    }


if __name__ == "__main__":
    sys.exit(main())
