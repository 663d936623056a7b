"""The web pages besides the inbox (``/``): the user's settings and greetings, the administrator's
section, and the two files they share. Plain HTML and JavaScript on the REST API: no
framework, no build step; each page is read once at import."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
_STATIC = resources.files("sipum_web_api").joinpath("static")


def _read(name: str) -> str:
    return _STATIC.joinpath(name).read_text("utf-8")


PAGES = {name: _read(f"{name}.html") for name in ("settings", "greetings", "admin")}
ASSETS = {
    "pages.js": ("text/javascript; charset=utf-8", _read("pages.js")),
    "pages.css": ("text/css; charset=utf-8", _read("pages.css")),
}


@router.get("/settings", response_class=HTMLResponse)
async def settings_page() -> HTMLResponse:
    return HTMLResponse(PAGES["settings"])


@router.get("/greetings", response_class=HTMLResponse)
async def greetings_page() -> HTMLResponse:
    return HTMLResponse(PAGES["greetings"])


@router.get("/admin", response_class=HTMLResponse)
async def admin_page() -> HTMLResponse:
    return HTMLResponse(PAGES["admin"])


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    found = ASSETS.get(name)
    if found is None:
        return Response(status_code=404)
    media_type, text = found
    return Response(text, media_type=media_type)
