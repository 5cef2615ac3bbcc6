"""The agent's security rules: a bearer token compared in constant time, no open bind without one, and
request bodies read with a size limit before anything is parsed or stored."""
from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from pathlib import Path

from fastapi import HTTPException, Request

from edgeopt.core.errors import InvalidInput

MIN_TOKEN_CHARS = 16


def read_token(path: Path) -> str:
    """The token from a file (its first line); refused when short, and when other users may read it."""
    path = Path(path)
    try:
        words = path.read_text().split()
        mode = path.stat().st_mode
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read the token file: {error}") from None
    token = words[0] if words else ""
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidInput(f"{path}: the token must be at least {MIN_TOKEN_CHARS} characters "
                           "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(f"{path}: the token file is readable by other users; `chmod 600 {path}`")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Without a token the agent only listens on loopback: anyone who reaches it could run measurements."""
    if token is None and not is_loopback(host):
        raise InvalidInput(f"--host {host}: refusing to listen on a non-loopback address without --token-file")


def token_from_env(variable: str) -> str | None:
    """The host side's token: the value of the environment variable a remote profile names."""
    return os.environ.get(variable) or None


class BearerAuth:
    """FastAPI dependency: 401 unless the request carries `Authorization: Bearer <token>`."""

    def __init__(self, token: str | None):
        self.token = token.encode() if token else None

    def __call__(self, request: Request) -> None:
        if self.token is None:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is longer than `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body of {int(declared)} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
