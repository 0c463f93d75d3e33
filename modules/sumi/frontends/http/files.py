"""A1111's `/file=PATH` route (GET and HEAD): the files of the allow-list in `services/files/allowlist.py`;
and A1111's `/sd_extra_networks/thumb?filename=PATH&mtime=N`, the cards' preview pictures (only those in
the model folders), sent as small JPEG thumbnails; and `notification.mp3` (the data folder's, else Sumi's
own folder's, as A1111 reads it), the sound the page plays when a job's images arrive; and A1111's
`/sd_extra_networks/metadata?page=lora&item=NAME`, the metadata of a card's .safetensors file; and
`/sd_extra_networks/cover-images?page=lora&item=NAME&index=0`, a cover picture stored in that metadata.

Extensions' page scripts load their data this way (tagcomplete's tag lists, bilingual-localization's
JSON, images-browser's pictures): `fetch("file=extensions/x/tags/danbooru.csv?123")`, relative to the
page. The query string (A1111 adds the file's mtime to defeat caches) is ignored. The login is checked
by `guard.AccessGuard` in front of every route; this route only decides which file, with Gradio 3's
statuses (403 not allowed, 404 allowed but missing) and `{"detail": ...}` bodies.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse
from starlette.responses import Response

from modules.sumi.services.files.allowlist import FileAllowList, allow_list
from modules.sumi.services.files.cover_images import CoverImageError, cover_picture
from modules.sumi.services.files.thumbnails import thumbnail_jpeg
from modules.sumi.services.networks.training_info import file_metadata, parsed_metadata

if TYPE_CHECKING:
    from modules.sumi.app import App

log = logging.getLogger(__name__)

PREFIX = "/file="
ROUTE = PREFIX + "{name:path}"
THUMB_ROUTE = "/sd_extra_networks/thumb"  # the URL carries the mtime: a changed picture is a new URL
THUMB_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"}
SOUND_ROUTE = "/sumi/notification.mp3"
METADATA_ROUTE = "/sd_extra_networks/metadata"
COVER_ROUTE = "/sd_extra_networks/cover-images"


def is_file_route(path: str) -> bool:
    """The request path is one of `/file=`'s or the cards' thumbnails (the page's files, behind the UI's
    login)."""
    return path.startswith(PREFIX) or path in (THUMB_ROUTE, COVER_ROUTE, SOUND_ROUTE)


def file_response(rules: FileAllowList, name: str) -> Response:
    """The file `name` names, or the refusal, with a type the browser may use and no sniffing."""
    verdict = rules.check(name)
    if verdict.status != 200 or verdict.path is None:
        return JSONResponse({"detail": verdict.reason}, status_code=verdict.status)
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if verdict.download:
        return FileResponse(
            verdict.path,
            media_type="application/octet-stream",
            filename=verdict.path.name,
            headers=headers,
        )
    return FileResponse(verdict.path, media_type=verdict.media_type, headers=headers)


def network_file(app: App, page: str, item: str) -> Path | None:
    """The file of card `item` on extra-networks page `page` (A1111's page names), or None."""
    if page == "lora":
        found = app.loras.find(item)
        return found.path if found is not None else None
    if page == "hypernetworks":
        found = app.hypernetworks.find(item)
        return found.path if found is not None else None
    if page == "checkpoints":
        info = app.checkpoints.lookup(item)
        return Path(info.filename) if info is not None else None
    if page == "textual_inversion":
        embedding = app.embeddings.embeddings.get(item)
        return Path(embedding.filename) if embedding is not None and embedding.filename else None
    return None


def cover_response(app: App, page: str, item: str, index: int, thumbnail: bool) -> Response:
    """Cover picture `index` stored in the metadata of card `item`'s file (A1111's route; 404 when the
    card, the file or the picture is not there, or it cannot be read)."""
    path = network_file(app, page, item)
    if path is None:
        return JSONResponse({"detail": f"No {page or 'extra network'} card named {item!r}."}, status_code=404)
    try:
        data, media_type = cover_picture(path, index, thumbnail=thumbnail)
    except CoverImageError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=404)
    return Response(data, media_type=media_type, headers=THUMB_HEADERS)


def thumbnail_response(previews: FileAllowList, filename: str) -> Response:
    """The thumbnail of the preview picture `filename` names, or the refusal (403 outside the model
    folders or not a picture type, 404 missing or unreadable)."""
    verdict = previews.check(filename)
    if verdict.status != 200 or verdict.path is None:
        return JSONResponse({"detail": verdict.reason}, status_code=verdict.status)
    data = thumbnail_jpeg(verdict.path)
    if not data:
        return JSONResponse({"detail": f"Not a readable picture: {filename}."}, status_code=404)
    return Response(data, media_type="image/jpeg", headers=THUMB_HEADERS)


def page_preview_dirs(app: App) -> list[Path]:
    """The folders the extensions' extra networks pages keep their previews in (A1111's
    `allowed_directories_for_previews()`, read per request); a page that fails names none."""
    folders: list[Path] = []
    for page in list(getattr(app, "card_pages", [])):
        try:
            folders += [Path(str(f)) for f in page.allowed_directories_for_previews() or [] if f]
        except Exception:
            log.warning(
                "extra networks page %r: allowed_directories_for_previews() failed", page, exc_info=True
            )
    return folders


def mount(server: FastAPI, app: App) -> FileAllowList:
    """Add `/file=` and the cards' thumbnails to `server` with the App's allow-list (its settings and
    extensions read per request)."""
    extensions = lambda: [e.path for e in app.extensions.active()]  # noqa: E731
    rules = allow_list(app.paths, app.options, app.args, extensions)
    previews = allow_list(
        app.paths,
        app.options,
        app.args,
        extensions,
        kinds=frozenset({"previews"}),
        preview_dirs=partial(page_preview_dirs, app),
    )

    @server.api_route(ROUTE, methods=["GET", "HEAD"], include_in_schema=False)
    def serve_file(name: str) -> Response:
        return file_response(rules, name)

    @server.api_route(THUMB_ROUTE, methods=["GET", "HEAD"], include_in_schema=False)
    def serve_thumbnail(filename: str = "") -> Response:
        return thumbnail_response(previews, filename)

    @server.get(METADATA_ROUTE, include_in_schema=False)
    def extra_network_metadata(page: str = "", item: str = "") -> JSONResponse:
        """A1111's: the metadata of a card's file ({"metadata": JSON text}), {} when it has none."""
        path = network_file(app, page, item)
        metadata = parsed_metadata(file_metadata(path)) if path is not None else {}
        if not metadata:
            return JSONResponse({})
        return JSONResponse({"metadata": json.dumps(metadata, indent=4, ensure_ascii=False)})

    @server.api_route(COVER_ROUTE, methods=["GET", "HEAD"], include_in_schema=False)
    def serve_cover_image(
        page: str = "",
        item: str = "",
        index: int = 0,
        extra_networks_tabname: str = "",
        thumbnail: bool = False,
    ) -> Response:
        """A1111's (`page`, or `extra_networks_tabname` as its later versions name it)."""
        return cover_response(app, page or extra_networks_tabname, item, index, thumbnail)

    @server.api_route(SOUND_ROUTE, methods=["GET", "HEAD"], include_in_schema=False)
    def serve_notification_sound() -> Response:
        """The sound the page plays when a job's images arrive (notification.js)."""
        path = app.paths.notification_sound()
        if path is None:
            return JSONResponse({"detail": "No notification.mp3 in the data folder."}, status_code=404)
        return FileResponse(path, media_type="audio/mpeg", headers={"X-Content-Type-Options": "nosniff"})

    return rules
