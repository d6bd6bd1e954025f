"""`/v1/files`: uploads, as the Batch API takes them, and their content."""

from __future__ import annotations

import copy
import json
import time
from typing import Final

from aiohttp import BodyPartReader, web

from .._answers import JSON
from ._faults import _error
from ._state import _ServerState

_UPLOAD_PURPOSES: Final = frozenset(
    {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}
)


def _jsonl(records: list[JSON]) -> bytes:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode()


class FileRoutes(_ServerState):
    """The Files API of `FakeOpenAI`: upload, retrieve, content."""

    def _invalid(
        self, message: str, param: str | None, code: str | None = None, status: int = 400
    ) -> web.Response:
        return self._respond(status, _error(message, "invalid_request_error", code, param))

    def _no_file(self, file_id: str) -> web.Response:
        return self._invalid(f"No such File object: {file_id}", "id", status=404)

    def _add_file(self, data: bytes, filename: str, purpose: str) -> JSON:
        file: JSON = {
            "id": f"file-fake{self._next_id():08d}",
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        with self._lock:
            self._files[file["id"]] = file
            self._file_data[file["id"]] = data
        return copy.deepcopy(file)

    async def _upload_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        if not request.content_type.startswith("multipart/"):
            return self._invalid("Uploads must be multipart/form-data.", None)
        fields: dict[str, str] = {}
        data: bytes | None = None
        filename = "upload"
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart: OpenAI's client never sends one
            if part.name == "file":
                filename = part.filename or filename
                data = bytes(await part.read())
            elif part.name:
                fields[part.name] = await part.text()
        purpose = fields.get("purpose")
        if data is None or purpose is None:
            missing = "file" if data is None else "purpose"
            message = f"Missing required parameter: '{missing}'."
            return self._invalid(message, missing, "missing_required_parameter")
        if purpose not in _UPLOAD_PURPOSES:
            allowed = ", ".join(sorted(_UPLOAD_PURPOSES))
            return self._invalid(
                f"Invalid purpose {purpose!r}; expected one of {allowed}.", "purpose"
            )
        if purpose == "batch" and not filename.endswith(".jsonl"):
            # OpenAI's own words: a batch input named otherwise is refused.
            return self._invalid("Invalid file format for Batch API. Must be .jsonl", "file")
        file = self._add_file(data, filename, purpose)
        with self._lock:
            self._stats.files_uploaded += 1
        return self._respond(200, file)

    async def _retrieve_file(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        file_id = request.match_info["file_id"]
        with self._lock:
            file = copy.deepcopy(self._files.get(file_id))
        if file is None:
            return self._no_file(file_id)
        return self._respond(200, file)

    async def _file_content(self, request: web.Request) -> web.Response:
        if not self._authorized(request.headers):
            return self._unauthorized(request)
        file_id = request.match_info["file_id"]
        with self._lock:
            data = self._file_data.get(file_id)
            if data is not None:
                self._stats.statuses[200] += 1
        if data is None:
            return self._no_file(file_id)
        return web.Response(status=200, body=data, content_type="application/octet-stream")
