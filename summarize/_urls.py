"""What a URL may show, and where it leads: credentials kept out of files and messages,
this machine told from another.

A key can ride in a URL (`https://user:key@host`, `?api_key=...`); a state file, a
manifest, an error message or a log line gets the URL without it. A loopback host is
reached without a network or a proxy, so a key sent there over plain http crosses
nothing.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

# Query parameter names that carry secrets: key, api_key, apikey, token, access_token,
# secret, password, auth, sig/signature (signed URLs), credential, session.
_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|sig|credential|session", re.IGNORECASE)
_USERINFO = re.compile(r"//[^/?#]*@")
_CREDENTIAL_TAIL = re.compile(r"[?#].*", re.DOTALL)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def is_loopback(host: str | None) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1: this machine, reached without a network or a proxy."""
    if not host:
        return False
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def without_credentials(url: str | None) -> str | None:
    """The URL with no secret left in it, for files and messages: no `user:secret@`,
    no query parameter that looks like a credential (`?key=`, `api_key=`, `token=`,
    `sig=`...), no fragment. `https://u:s@host/v1?key=k&v=1` -> `https://host/v1?v=1`."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # not parsed (a bad IPv6 host): keep only what cannot be a secret
        return _CREDENTIAL_TAIL.sub("", _USERINFO.sub("//", url))
    query = "&".join(
        pair for pair in parts.query.split("&")
        if pair and not _SECRET_PARAM.search(unquote_plus(pair.split("=", 1)[0]))
    )  # fmt: skip
    if "@" not in parts.netloc and query == parts.query and not parts.fragment:
        return url  # as given: a state file names its endpoint the same way as before
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))


def urls_without_credentials(text: str) -> str:
    """`text` with every URL in it passed through `without_credentials`."""
    return _URL.sub(lambda found: without_credentials(found.group()) or "", text)
