#!/usr/bin/env bash
# A separate venv for the curator peer of the throughput benchmark:
#
#     bash bench/setup_curator.sh
#     bench/.venv-curator/bin/python bench/curator_peer.py --base-url URL --input ABSTRACTS.jsonl
#
# bespokelabs-curator pins its own litellm/pandas/instructor, so it lives apart from
# .venv. `summarize` is put on the venv's path by a .pth file naming the repo root (the
# same effect as `pip install --no-deps -e .`, without building into the work tree);
# summarize's runtime dependencies are resolved together with curator in one install,
# plus aiohttp for running summarize.testing.server from this venv. Idempotent and quiet.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/bench/.venv-curator"
PY="$VENV/bin/python"
CURATOR_VERSION="0.1.31"

if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV"
fi

# --quiet still lets through this machine's warnings about absent local index folders.
pip_q() {
    "$PY" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
        | { grep -vE "^WARNING: (Location 'file:|.* does not provide the extra)" || true; } >&2
    return "${PIPESTATUS[0]}"
}

if ! "$PY" - "$CURATOR_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
assert version("bespokelabs-curator") == sys.argv[1]
import bespokelabs.curator, summarize._schema, summarize._prompt, aiohttp  # noqa: F401
EOF
then
    # curator, and summarize's own runtime deps that `import summarize` needs (summarize/__init__
    # imports client, output, progress, report...); pins follow pyproject.toml, except
    # instructor: curator's litellm==1.83.7 pins aiohttp==3.13.5 and click==8.1.8, and
    # instructor>=1.17 needs aiohttp>=3.14.3 and click>=8.3.3, so this venv keeps the
    # instructor curator resolves (1.16.x), which `import summarize` accepts.
    pip_q "openai>=2.0,<4" "httpx2>=2.7,<3" "instructor>=1.6.3,<2" "pydantic>=2.8,<3" "tenacity>=9,<10" \
        "jsonlines>=4,<5" "click>=8.1" "rich>=13.7" "filelock>=3.12" jinja2 markupsafe \
        "aiohttp>=3.9" "bespokelabs-curator==$CURATOR_VERSION"
    SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$ROOT" > "$SITE/summarize-repo.pth"
    "$PY" -m pip check >/dev/null || { "$PY" -m pip check >&2; echo "setup_curator: pip check failed" >&2; }
    "$PY" -c "import bespokelabs.curator, summarize._schema, summarize._prompt, aiohttp"
fi
