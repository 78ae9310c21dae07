"""Who gets into the explorer, and what a request may carry.

:class:`Guard` lets in only the page of the URL the command printed (a
random token, this machine's Host while listening on loopback, the page's
own Origin on every request that changes something), as Jupyter Server does
for the same situation. :func:`read_json` reads a request's body bounded
and refuses text no file name or number holds. Every refusal is a 4xx JSON
answer whose ``error`` is the CLI's one line.
"""

from __future__ import annotations

import hmac
import json
import secrets
from decimal import Decimal
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import UserError

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def loopback_hosts(port: int) -> set[str]:
    """The Host headers of this machine's loopback addresses at ``port``."""
    return {f"{h}:{port}" for h in ("localhost", "127.0.0.1", "[::1]")}


class Refused(Exception):
    """A request answered with ``status`` and the error's line."""

    def __init__(self, status: int, error: UserError):
        super().__init__(error.line())
        self.status, self.error = status, error


def error_body(e: UserError) -> dict:
    return {"error": e.line(), "what": e.what, "where": e.where, "fix": e.fix}


def error_response(e: UserError, status: int = 400) -> JSONResponse:
    return JSONResponse(error_body(e), status_code=status)


def _check_text(doc, where: str) -> None:
    """Refuse strings no file name or number holds: control characters, lone surrogates."""
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in v):
            raise UserError("the request holds a control character or a lone surrogate", where, "send plain text")


def parse_body(data: bytes, where: str) -> dict:
    """A request body as a JSON object (decimals kept exact)."""
    try:
        doc = json.loads(data or b"null", parse_float=Decimal)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, an integer too long
        doc = None
    if not isinstance(doc, dict):
        raise UserError("the request body is not a JSON object", where, 'send a JSON object such as {"span": "9"}')
    _check_text(doc, where)
    return doc


async def read_json(request: Request, where: str) -> dict:
    """The body of a state-changing request: JSON, at most ``max_body`` bytes, read no further."""
    limit = request.app.state.explorer.limits.max_body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise Refused(415, UserError(f"the request body is {kind or 'untyped'}, not JSON", where,
                                     "send it with Content-Type: application/json"))
    too_big = Refused(413, UserError(f"the request body is over {limit} bytes", where, "send a smaller request"))
    n = request.headers.get("content-length")
    if n is not None and (not n.isdigit() or int(n) > limit):
        raise too_big
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise too_big
    return parse_body(bytes(buf), where)


class Guard:
    """ASGI middleware that lets in only the page of the printed URL.

    Every request but the page's static code needs the token (``?token=``, an
    ``Authorization: token ...`` header, or the cookie the first page load
    with the token sets: HttpOnly, SameSite=Strict). While the server listens
    on a loopback address, the Host header must name it (no DNS rebinding);
    every request that is not GET/HEAD/OPTIONS must carry the page's own
    Origin (no cross-site form or text/plain posts). Refusals are 403 with the
    error line, as JSON."""

    def __init__(self, app, ex):  # ex: the server's Explorer (its token, cookie name and hosts)
        self.app, self.ex = app, ex

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        h = Headers(scope=scope)
        host = h.get("host", "")
        try:
            self._admit(scope, h, host)
            fresh = self._token(scope, h)
        except Refused as r:
            return await error_response(r.error, r.status)(scope, receive, send)
        if not fresh:
            return await self.app(scope, receive, send)

        async def with_cookie(message):  # the page's later requests carry the token as a cookie
            if message["type"] == "http.response.start":
                c = SimpleCookie()
                c[self.ex.cookie] = self.ex.token
                c[self.ex.cookie].update({"httponly": True, "samesite": "Strict", "path": "/"})
                message = dict(message, headers=list(message.get("headers", [])) + [(b"set-cookie", c.output(header="").strip().encode())])
            await send(message)

        await self.app(scope, receive, with_cookie)

    def _admit(self, scope, h: Headers, host: str) -> None:
        hosts = self.ex.hosts
        if hosts is not None and host.lower() not in hosts:
            raise Refused(403, UserError(f"the Host header {host[:100]!r} is not this explorer's address", "request",
                                         "open the URL zoomreel explore printed"))
        if scope["method"] not in SAFE_METHODS:
            origin = h.get("origin")
            if origin is None or origin != f"{scope.get('scheme', 'http')}://{host}":
                raise Refused(403, UserError(f"a request from another page (Origin {(origin or 'missing')[:100]!r})", "request",
                                             "use the explorer's own page"))

    def _token(self, scope, h: Headers) -> bool:
        """Check the token; True when it came in the URL (the cookie is then set)."""
        if scope["path"].startswith("/static/"):
            return False
        want = self.ex.token.encode()

        def good(t: str | None) -> bool:
            return t is not None and hmac.compare_digest(t.encode("utf-8", "replace"), want)

        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[-1]
        if good(query):
            return True
        auth = h.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("token", "bearer") and good(value.strip()):
            return False
        jar = SimpleCookie()
        try:
            jar.load(h.get("cookie", ""))
        except Exception:  # a malformed cookie header holds no token
            jar = SimpleCookie()
        if self.ex.cookie in jar and good(jar[self.ex.cookie].value):
            return False
        raise Refused(403, UserError("this request carries no valid token", "request",
                                     "open the URL zoomreel explore printed (with its ?token=...)"))


# -- the handlers, functions of the app's state
