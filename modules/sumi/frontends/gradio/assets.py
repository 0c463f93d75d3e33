"""Sumi's own page CSS and script, read from `style.css`, `script.js` and `edit_attention.js` beside this
file. A1111's page scripts and what extensions add to the page: `page_head.py`.
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).parent
CSS = (_HERE / "style.css").read_text(encoding="utf-8")
JS = "\n".join((_HERE / name).read_text(encoding="utf-8") for name in ("script.js", "edit_attention.js"))
# Injected into the document <head> by an always-visible component (gr.HTML's `head`).
HEAD = f'<style id="sumi-style">{CSS}</style><script id="sumi-script">{JS}</script>'
