"""Sumi: start the web UI and/or the A1111 HTTP API.

python webui.py                 # web UI on http://127.0.0.1:7860
python webui.py --api           # web UI plus /sdapi/v1/... on the same port
python webui.py --nowebui       # API only, on port 7861
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# Nothing may reach a model hub: configs and the tokenizer ship with Sumi.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parent


def build_server(app):
    """The FastAPI application serving the UI at / and, when asked, the API at /sdapi/v1."""
    from fastapi import FastAPI

    from modules.api import api

    server = FastAPI(title="Sumi", docs_url="/docs", redoc_url="/redoc")
    if app.args.api or app.args.nowebui:
        api.mount(server, app)
    if not app.args.nowebui:
        import gradio as gr

        from modules.ui import build_ui

        auth = _credentials(app.args.gradio_auth)
        server = gr.mount_gradio_app(server, build_ui(app), path="/", auth=auth or None)
    return server


def _credentials(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    return [tuple(pair.strip().split(":", 1)) for pair in text.split(",") if ":" in pair]


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from modules.cmd_args import build_parser, server_host, server_port

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    from modules import shared
    from modules.app import App

    app = App(args, REPO_ROOT)
    shared.set_app(app)
    app.startup()
    server = build_server(app)
    host, port = server_host(args), server_port(args)

    import uvicorn

    print(f"Sumi is running on http://{host}:{port}", flush=True)
    try:
        uvicorn.run(server, host=host, port=port, log_level="warning")
    finally:
        app.shutdown()


if __name__ == "__main__":
    main()
