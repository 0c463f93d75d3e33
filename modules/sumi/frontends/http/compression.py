"""Compressed responses, as A1111 serves them (its `setup_middleware` adds Starlette's GZipMiddleware).

A client that sends `Accept-Encoding: gzip` (browsers, `requests`, `httpx`) gets bodies over 1000 bytes
compressed: the UI's 1.8 MB `/config` becomes about 150 KB, an API reply's base64 images about a quarter
smaller. That matters on a LAN or behind `--listen`/`--share`; on 127.0.0.1 it costs ~16 ms for the
config. Starlette leaves alone what is compressed already or streamed (PNG/JPEG/WebP, fonts, video,
`text/event-stream` for Gradio's queue) and compresses large bodies on a worker thread.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

MINIMUM_SIZE = 1000  # A1111's threshold, in bytes
LEVEL = 6  # zlib's default: the config at level 9 is 2 % smaller and takes twice as long (30 vs 16 ms)


def compress_responses(server: FastAPI) -> None:
    """Gzip what `server` answers to clients that accept it (the outermost middleware when added last)."""
    server.add_middleware(GZipMiddleware, minimum_size=MINIMUM_SIZE, compresslevel=LEVEL)  # type: ignore[arg-type]
