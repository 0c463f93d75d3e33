"""The per-extension parts of tools/try_extensions.py: files a user would add (`prepare`), what must
appear in the page (`ui`) and one scripted check of what the extension is for (`core`).

A check returns (ok, detail): ok True/False, or None when it cannot be checked here (it needs a
download, a service on the internet or a GPU), with the reason as detail. Checks run in the order of
the list against one page of one server; `LATE` ones (they change the whole page: the UI language)
run after all others.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

Check = Callable[["Context"], "tuple[bool | None, str]"]
UI: dict[str, Check] = {}
CORE: dict[str, Check] = {}
PREPARE: dict[str, Callable[[Path, Path], None]] = {}
SERVER_PYTHON: Path | None = None  # the Python the server runs with (its packages: what install.py installed)
LATE = {"stable-diffusion-webui-localization-zh_CN", "sd-webui-bilingual-localization"}
TIMEOUT_MS = 20_000
PAGE_LOAD_TIMEOUT_MS = 180_000  # the whole UI with every extension, on a busy 2-core machine
SMALL = {"steps": 2, "width": 64, "height": 64, "seed": 1234, "sampler_name": "Euler", "cfg_scale": 7}


class PageUnavailable(RuntimeError):
    """The UI page could not be opened; a check that needs it fails with this reason."""


class Context:
    """The server, its data folder, the extensions' folders and one Chromium page on the UI."""

    def __init__(self, url: str, data_dir: Path, dirs: dict[str, Path]) -> None:
        self.url, self.data_dir, self.dirs = url, data_dir, dirs
        self.http = httpx.Client(base_url=url, timeout=300)
        self.browser: Any = None
        self._page: Any = None
        self.page_problem = "no browser"  # why there is no page, while there is none
        self.page_errors: list[str] = []  # uncaught script errors and failed requests, with their URLs
        self.memo: dict[str, Any] = {}  # what a ui check leaves for its core check

    # -- the API -------------------------------------------------------------------------------------
    def txt2img(self, **payload: Any) -> tuple[list[str], dict[str, Any]]:
        response = self.http.post("/sdapi/v1/txt2img", json={**SMALL, **payload})
        if response.status_code != 200:
            raise AssertionError(f"txt2img answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        return body["images"], json.loads(body["info"])

    # -- the page ------------------------------------------------------------------------------------
    @property
    def page(self) -> Any:
        if self._page is None:
            raise PageUnavailable(self.page_problem)
        return self._page

    def open_browser(self, browser: Any) -> None:
        self.browser = browser
        try:
            self._page = self.new_page()
        except Exception as exc:  # the page never became usable: every page check fails with this reason
            self.page_problem = (
                f"the page did not load ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            )

    def new_page(self) -> Any:
        if self.browser is None:
            raise PageUnavailable(self.page_problem)
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: self.page_errors.append(f"{exc} {getattr(exc, 'stack', '') or ''}"))
        page.on(
            "response",
            lambda r: (
                r.status >= 400 and self.page_errors.append(f"HTTP {r.status} {r.request.method} {r.url}")
            ),
        )
        try:
            page.goto(self.url)
            page.wait_for_selector("#txt2img_prompt textarea", timeout=PAGE_LOAD_TIMEOUT_MS)
        except Exception:
            context.close()
            raise
        return page

    def reload(self) -> None:
        self.page.reload()
        self.page.wait_for_selector("#txt2img_prompt textarea", timeout=PAGE_LOAD_TIMEOUT_MS)

    def page_errors_of(self, name: str) -> list[str]:
        folder = self.dirs[name].name
        return [e for e in self.page_errors if folder in e or folder.replace("-", "_") in e]

    def unattributed_page_errors(self) -> list[str]:
        folders = [d.name for d in self.dirs.values()]
        return [e for e in self.page_errors if not any(f in e for f in folders)][:20]

    def tab(self, elem_id: str, title: str) -> Any:
        """Select the top-level tab titled `title` (its button may sit in Gradio's overflow menu when
        there are many); the tab's content, #tab_<elem_id> (Gradio renders it once selected)."""
        page = self.page
        button = page.locator("#tabs button[role=tab]", has_text=title).first
        if not button.is_visible():
            more = page.locator("#tabs .overflow-menu button").first
            if more.count():
                more.click()
            button = page.locator("#tabs button", has_text=title).last
        button.click()
        content = page.locator(f"#tab_{elem_id}")
        content.wait_for(state="visible")
        return content

    def back_to_txt2img(self) -> None:
        """txt2img, with its "Generation" tab (not a card tab a check opened) in front."""
        self.page.locator("#tabs button[role=tab]", has_text="txt2img").first.click()
        generation = self.page.locator("#txt2img_extra_tabs").get_by_role(
            "tab", name="Generation", exact=True
        )
        if generation.count():
            generation.first.click()

    def text_visible(self, where: str, text: str) -> bool:
        # the first visible one: a hidden element can carry the same text (InputAccordion's checkbox label)
        locator = self.page.locator(where).get_by_text(text, exact=False).filter(visible=True).first
        try:
            locator.wait_for(state="visible", timeout=TIMEOUT_MS)
            return True
        except Exception:
            return False


def run(kind: str, name: str, ctx: Context) -> tuple[bool | None, str]:
    table = UI if kind == "ui" else CORE
    if name not in table:
        return None, "no scripted check"
    ok, detail = table[name](ctx)
    return ok, ("ok " + detail if ok and detail else detail)


def prepare(name: str, ext_dir: Path, data_dir: Path) -> None:
    if name in PREPARE:
        PREPARE[name](ext_dir, data_dir)


def prepare_for(name: str) -> Callable[[Callable[[Path, Path], None]], Callable[[Path, Path], None]]:
    return lambda f: PREPARE.setdefault(name, f)


def ui(name: str) -> Callable[[Check], Check]:
    return lambda f: UI.setdefault(name, f)


def core(name: str) -> Callable[[Check], Check]:
    return lambda f: CORE.setdefault(name, f)


def _settings(data_dir: Path, values: dict[str, Any]) -> None:
    path = data_dir / "config.json"
    current = json.loads(path.read_text()) if path.is_file() else {}
    path.write_text(json.dumps({**current, **values}, indent=1))


def _png_size(b64: str) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(b64))).size


def _option_exists(ctx: Context, key: str) -> tuple[bool, str]:
    options = ctx.http.get("/sdapi/v1/options").json()
    return key in options, f"setting {key} {'present' if key in options else 'missing'} in /sdapi/v1/options"


def _accordion(ctx: Context, text: str, tab: str = "txt2img") -> tuple[bool, str]:
    ok = ctx.text_visible(f"#tab_{tab}", text)
    return ok, f"'{text}' {'shown' if ok else 'not shown'} on {tab}"


def _script_listed(ctx: Context, title: str, tab: str = "txt2img") -> tuple[bool, str]:
    scripts = ctx.http.get("/sdapi/v1/scripts").json()[tab]
    ok = title.lower() in scripts
    ok_page = ctx.page.evaluate(
        """([tab, title]) => [...document.querySelectorAll('#' + tab + '_script_container, #script_list, #tab_' + tab)]
            .some(e => e.textContent.includes(title) || [...e.querySelectorAll('input')].some(i => (i.value||'') === 'None'))""",
        [tab, title],
    )
    return ok and ok_page, f"script '{title}' {'in' if ok else 'not in'} /sdapi/v1/scripts {tab}"


def sumi_txt2img(ctx: Context) -> bool:
    try:
        images, info = ctx.txt2img(prompt="a red circle", save_images=True)  # outputs for the image browsers
        return len(images) == 1 and info.get("prompt") == "a red circle"
    except Exception:
        return False


def sumi_generate_in_page(ctx: Context) -> bool:
    try:
        page = ctx.page
        page.fill("#txt2img_prompt textarea", "a blue square")
        for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
            number = page.locator(f"#{elem_id} input[type=number]").first
            number.fill(str(value))
            number.press("Enter")
        page.click("#txt2img_generate")
        page.locator("#html_info_txt2img").get_by_text("Steps: 2").wait_for(timeout=120_000)
        return True
    except Exception:
        return False


# -- A: script / callback extensions --------------------------------------------------------------------


@prepare_for("stable-diffusion-webui-wildcards")
def _wildcards_files(ext_dir: Path, data_dir: Path) -> None:
    (ext_dir / "wildcards" / "trycolor.txt").write_text("vermilionword\n")


@ui("stable-diffusion-webui-wildcards")
def _wildcards_ui(ctx: Context) -> tuple[bool | None, str]:
    return _option_exists(ctx, "wildcards_same_seed")


@core("stable-diffusion-webui-wildcards")
def _wildcards_core(ctx: Context) -> tuple[bool | None, str]:
    _, info = ctx.txt2img(prompt="a __trycolor__ ball")
    return info["prompt"] == "a vermilionword ball", f"job prompt {info['prompt']!r}"


@ui("sd-dynamic-prompts")
def _dynprompts_ui(ctx: Context) -> tuple[bool | None, str]:
    ok, detail = _accordion(ctx, "Dynamic Prompts")
    tab = ctx.tab("sddp-wildcard-manager", "Wildcards Manager").is_visible()
    ctx.back_to_txt2img()
    return ok and tab, f"{detail}; Wildcards Manager tab {'shown' if tab else 'missing'}"


@core("sd-dynamic-prompts")
def _dynprompts_core(ctx: Context) -> tuple[bool | None, str]:
    _, info = ctx.txt2img(prompt="{alphaword|betaword} cat")
    return info["prompt"] in ("alphaword cat", "betaword cat"), f"job prompt {info['prompt']!r}"


@ui("OneButtonPrompt")
def _obp_ui(ctx: Context) -> tuple[bool | None, str]:
    return _script_listed(ctx, "One Button Prompt")


@core("OneButtonPrompt")
def _obp_core(ctx: Context) -> tuple[bool | None, str]:
    _, info = ctx.txt2img(prompt="", script_name="One Button Prompt", script_args=[])
    prompt = info.get("prompt") or ""
    return len(prompt.split()) >= 3, f"generated prompt {prompt[:80]!r}"


AGENT_PAGE_PROMPT = "enqueued from the page"


@ui("sd-webui-agent-scheduler")
def _agent_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("agent_scheduler", "Agent Scheduler").is_visible()
    ctx.back_to_txt2img()
    button = ctx.page.locator("#txt2img_enqueue")
    if not (shown and button.count()):
        return (
            False,
            f"tab {'shown' if shown else 'missing'}, Enqueue button {'present' if button.count() else 'missing'}",
        )
    # Enqueue from the page: the typed prompt and settings become a queued task (the core check waits
    # for it to run)
    _small_page_job(ctx, AGENT_PAGE_PROMPT, seed=4321)
    button.click()
    task = None
    deadline = time.monotonic() + 30
    while task is None and time.monotonic() < deadline:
        pending = ctx.http.get("/agent-scheduler/v1/queue").json().get("pending_tasks", [])
        history = ctx.http.get("/agent-scheduler/v1/history").json().get("tasks", [])
        task = next(
            (t for t in pending + history if (t.get("params") or {}).get("prompt") == AGENT_PAGE_PROMPT), None
        )
        time.sleep(0.5)
    if task is None:
        return False, "tab shown, Enqueue button present; clicking it queued no task with the typed prompt"
    ctx.memo["agent_page_task"] = task["id"]
    return True, "tab shown; Enqueue with a typed prompt queued a task"


def _agent_task_end(ctx: Context, task_id: str, seconds: float = 120) -> str | None:
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        status = ctx.http.get(f"/agent-scheduler/v1/task/{task_id}").json().get("data", {}).get("status")
        if status in ("done", "failed", "interrupted"):
            break
        time.sleep(1)
    return status


@core("sd-webui-agent-scheduler")
def _agent_core(ctx: Context) -> tuple[bool | None, str]:
    detail = ""
    page_ok = False
    page_task = ctx.memo.get("agent_page_task")
    if page_task is None:
        detail = "no task was queued from the page"
    else:
        page_status = _agent_task_end(ctx, page_task)
        results = ctx.http.get(f"/agent-scheduler/v1/task/{page_task}/results").json()
        infotexts = [item.get("infotext") or "" for item in results.get("data") or []]
        wanted = (AGENT_PAGE_PROMPT, "Steps: 2", "Seed: 4321", "Size: 64x64")
        page_ok = page_status == "done" and bool(infotexts) and all(w in infotexts[0] for w in wanted)
        detail = f"page task ended {page_status!r} with {len(infotexts)} image(s)"
        detail += ", the typed prompt, steps, seed and size" if page_ok else f", infotext {infotexts[:1]!r}"
        # its runner thread idles a second after the queue empties and does not see a task queued then
        # (in A1111 too): queue the next one after that
        time.sleep(2.5)
    response = ctx.http.post("/agent-scheduler/v1/queue/txt2img", json={**SMALL, "prompt": "queued green"})
    if response.status_code != 200:
        return False, f"{detail}; queue/txt2img answered {response.status_code}: {response.text[:200]}"
    status = _agent_task_end(ctx, response.json()["task_id"])
    return page_ok and status == "done", f"{detail}; API task ended {status!r}"


def _small_page_job(ctx: Context, prompt: str, seed: int) -> None:
    """Type `prompt` and a small job (2 steps, 64x64, `seed`) into the txt2img tab."""
    page = ctx.page
    page.fill("#txt2img_prompt textarea", prompt)
    for elem_id, value in (("txt2img_steps", 2), ("txt2img_width", 64), ("txt2img_height", 64)):
        number = page.locator(f"#{elem_id} input[type=number]").first
        number.fill(str(value))
        number.press("Enter")
    seed_box = page.locator("#txt2img_seed input").first
    seed_box.fill(str(seed))
    seed_box.press("Tab")


@ui("stable-diffusion-webui-two-shot")
def _twoshot_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Latent Couple")


@core("stable-diffusion-webui-two-shot")
def _twoshot_core(ctx: Context) -> tuple[bool | None, str]:
    # This commit applies its rectangles only after the "Rectangular" tab was selected in the page (the
    # tab's select event sets the mode on the script; the default mask mode with no sketch does nothing,
    # in A1111 too), and writes no infotext (that line is commented out in it).
    prompt = "a red circle AND a blue square AND a green triangle"
    args = [True, "1:1,1:2,1:2", "0:0,0:0,0:1", "0.2,0.8,0.8", 150, 0.0]
    scripts = {"Latent Couple extension": {"args": args}}
    before, _ = ctx.txt2img(prompt=prompt, alwayson_scripts=scripts)
    page = ctx.page
    root = page.locator("#tab_txt2img")
    if not root.locator("#tab_twoshot_rect").first.is_visible():
        root.get_by_text("Latent Couple", exact=False).first.click()
    tab = root.locator("button[role=tab]", has_text="Rectangular").first
    tab.click()
    root.locator("#tab_twoshot_rect").first.wait_for(state="visible")
    page.wait_for_timeout(1000)  # the select event reaches the server
    coupled, _ = ctx.txt2img(prompt=prompt, alwayson_scripts=scripts)
    changed = coupled[0] != before[0]
    return changed, f"rectangles {'applied' if changed else 'not applied'} after selecting Rectangular"


@ui("ultimate-upscale-for-automatic1111")
def _usdu_ui(ctx: Context) -> tuple[bool | None, str]:
    return _script_listed(ctx, "Ultimate SD upscale", "img2img")


@core("ultimate-upscale-for-automatic1111")
def _usdu_core(ctx: Context) -> tuple[bool | None, str]:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    init = base64.b64encode(buffer.getvalue()).decode()
    args = [None, 64, 64, 8, 32, 64, 0.35, 16, 1, False, 0, False, 4, 0, 2, 128, 128, 2]
    response = ctx.http.post(
        "/sdapi/v1/img2img",
        json={**SMALL, "prompt": "a red field", "init_images": [init], "denoising_strength": 0.3,
              "script_name": "Ultimate SD upscale", "script_args": args},
    )  # fmt: skip
    if response.status_code != 200:
        return False, f"img2img answered {response.status_code}: {response.text[:200]}"
    size = _png_size(response.json()["images"][0])
    return size == (128, 128), f"output {size[0]}x{size[1]} from a 64x64 image at scale 2"


@ui("stable-diffusion-webui-rembg")
def _rembg_ui(ctx: Context) -> tuple[bool | None, str]:
    ctx.tab("extras", "Extras")
    ok, detail = _accordion(ctx, "Remove background", "extras")
    ctx.back_to_txt2img()
    return ok, detail


@core("stable-diffusion-webui-rembg")
def _rembg_core(ctx: Context) -> tuple[bool | None, str]:
    return None, "needs the rembg package and its u2net model download (network)"


@ui("sd-webui-oldsix-prompt")
def _oldsix_ui(ctx: Context) -> tuple[bool | None, str]:
    try:
        ctx.page.locator("#six_god_k .float").wait_for(state="visible")
        return True, "its floating button is shown"
    except Exception:
        return False, "#six_god_k (its Vue app) not mounted"


def _oldsix_pick(ctx: Context, tab: str) -> tuple[str, str]:
    """Open its picker on the tab on screen, click its first prompt, close it: the prompt clicked, and what
    `tab`'s prompt box holds then (it writes there through A1111's updateInput half a second later)."""
    page = ctx.page
    box = f"#{tab}_prompt textarea"
    page.fill(box, "")
    page.locator("#six_god_k .float").click()
    home = page.locator("#six_god_k .home").filter(visible=True).first
    item = home.locator("[data-en]").filter(visible=True).first
    text = item.get_attribute("data-en") or ""
    item.click()
    with contextlib.suppress(Exception):  # the caller names what the box holds instead
        page.wait_for_function(
            "([box, text]) => document.querySelector(box).value.includes(text)", arg=[box, text]
        )
    value = page.input_value(box)
    home.locator(".onoff").click()
    page.fill(box, "")
    return text, value


@core("sd-webui-oldsix-prompt")
def _oldsix_core(ctx: Context) -> tuple[bool | None, str]:
    response = ctx.http.get("/api/sixgod/getJsonFiles")
    if response.status_code != 200:
        return False, f"getJsonFiles answered {response.status_code}"
    groups = json.loads(response.json())
    if not groups:
        return False, "no prompt groups served"
    text, value = _oldsix_pick(ctx, "txt2img")
    if text not in value:
        return False, f"its picker did not put {text[:40]!r} into txt2img's prompt (it holds {value[:60]!r})"
    ctx.tab("img2img", "img2img")  # it follows the tab shown (#tab_img2img's display turning "block")
    try:
        text, value = _oldsix_pick(ctx, "img2img")
    finally:
        ctx.back_to_txt2img()
    if text not in value:
        return False, f"on img2img its picker did not put {text[:40]!r} into img2img's prompt"
    return (
        True,
        f"{len(groups)} prompt groups served; its picker puts a prompt into txt2img's prompt, img2img's on img2img",
    )


# -- C: tabs, page scripts, tools -------------------------------------------------------------------------


@ui("sd-webui-mov2mov")
def _m2m_ui(ctx: Context) -> tuple[bool | None, str]:
    content = ctx.tab("mov2mov", "mov2mov")
    try:
        for part in ("#mov2mov_prompt textarea", "#mov2mov_generate", "#mov2mov_styles", "#mov2mov_mov"):
            content.locator(part).first.wait_for(state="visible")
        return True, "tab shown with A1111's prompt row (ui_toprow.Toprow) and its video box"
    except Exception as exc:
        return False, f"its tab lacks a part ({str(exc).splitlines()[0][:120]})"
    finally:
        ctx.back_to_txt2img()


def _tiny_video(path: Path, frames: int = 4, size: int = 64, fps: int = 10) -> Path:
    """A clip of `frames` frames (a square moving right) written with OpenCV, as mov2mov reads one."""
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    for i in range(frames):
        frame = np.full((size, size, 3), 40, np.uint8)
        frame[20:40, 8 + 8 * i : 28 + 8 * i] = (30, 30, 220)  # BGR: red
        writer.write(frame)
    writer.release()
    return path


def _video_frames(path: Path) -> tuple[int, int, int]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    size = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    capture.release()
    return count, *size


@core("sd-webui-mov2mov")
def _m2m_core(ctx: Context) -> tuple[bool | None, str]:
    clip = _tiny_video(ctx.data_dir / "tmp" / "mov2mov-input.mp4")
    videos = ctx.data_dir / "outputs" / "mov2mov-videos"  # its setting's default, under the working folder
    before = set(videos.glob("*.mp4"))
    page = ctx.page
    content = ctx.tab("mov2mov", "mov2mov")
    try:
        content.locator("#mov2mov_mov input[type=file]").set_input_files(str(clip))
        content.locator("#mov2mov_mov video").first.wait_for(state="attached")
        content.locator("#mov2mov_prompt textarea").fill("a red square")
        for elem_id, value in (
            ("mov2mov_width", 64),
            ("mov2mov_height", 64),
            ("mov2mov_denoising_strength", 0.3),
            ("mov2mov_movie_frames", 10),
            ("mov2mov_max_frames", 2),
        ):
            number = content.locator(f"#{elem_id} input[type=number]").first
            number.fill(str(value))
            number.press("Enter")
        page.click("#mov2mov_generate")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not set(videos.glob("*.mp4")) - before:
            time.sleep(1)
        made = sorted(set(videos.glob("*.mp4")) - before)
        if not made:
            log = content.locator("#html_log_mov2mov").inner_text()
            return False, f"no video in {videos} after Generate; log: {log[:200]!r}"
        time.sleep(2)  # written at the end of the job; let the writer close it
        count, width, height = _video_frames(made[-1])
        ok = count == 2 and (width, height) == (64, 64)
        return (
            ok,
            f"a 4-frame clip gave {made[-1].name}: {count} frames of {width}x{height} (asked: 2 of 64x64)",
        )
    finally:
        ctx.back_to_txt2img()


@ui("stable-diffusion-webui-images-browser")
def _ib_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("image_browser", "Image Browser").is_visible()
    return shown, "tab shown" if shown else "tab missing"


@core("stable-diffusion-webui-images-browser")
def _ib_core(ctx: Context) -> tuple[bool | None, str]:
    content = ctx.tab("image_browser", "Image Browser")
    first = content.locator("button", has_text="First Page").first
    first.click()
    thumbs = content.locator("[id$='_image_browser_gallery'] img")
    try:
        thumbs.first.wait_for(state="visible")
        return True, f"{thumbs.count()} output images listed"
    except Exception:
        return False, "no output image listed after First Page"
    finally:
        ctx.back_to_txt2img()


@ui("sd-webui-aspect-ratio-helper")
def _arh_ui(ctx: Context) -> tuple[bool | None, str]:
    try:
        ctx.page.locator("#txt2img_select_aspect_ratio").wait_for(state="visible")
        return True, "aspect ratio dropdown next to width/height"
    except Exception:
        return False, "#txt2img_select_aspect_ratio (made by its page script) missing"


@core("sd-webui-aspect-ratio-helper")
def _arh_core(ctx: Context) -> tuple[bool | None, str]:
    page = ctx.page
    page.select_option("#txt2img_select_aspect_ratio", "16:9")
    width = page.locator("#txt2img_width input[type=number]").first
    width.fill("512")
    width.press("Enter")
    time.sleep(0.5)
    w = float(page.input_value("#txt2img_width input[type=number]"))
    h = float(page.input_value("#txt2img_height input[type=number]"))
    page.select_option("#txt2img_select_aspect_ratio", "Off")
    return abs(w / h - 16 / 9) < 0.1, f"16:9 picked, width 512 -> height {h:g}"


@ui("sd-webui-diffusion-cg")
def _cg_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Diffusion CG")


def _script_changes_the_image(
    ctx: Context, job: dict[str, Any], script: str, args: list[Any], marks: tuple[str, ...], what: str
) -> tuple[bool, str]:
    """A job with the always-on `script` at `args` against the same job without it: the picture must
    change and the infotext carry `marks`."""
    plain, _ = ctx.txt2img(**job)
    changed, info = ctx.txt2img(**job, alwayson_scripts={script: {"args": args}})
    infotext = info["infotexts"][0]
    noted = all(mark in infotext for mark in marks)
    return changed[0] != plain[0] and noted, (
        f"{what} {'changed' if changed[0] != plain[0] else 'did not change'} the image; infotext "
        f"{'has' if noted else 'lacks'} its parameters"
    )


@core("sd-webui-diffusion-cg")
def _cg_core(ctx: Context) -> tuple[bool | None, str]:
    """Its `on_cfg_after_cfg` recentres and stretches the guided latents."""
    job = {"prompt": "a red circle", "steps": 6}
    marks = ("CG Recenter: 1", "CG Normalization: 1")
    return _script_changes_the_image(
        ctx, job, "Diffusion CG", [True, 1.0, 1.0], marks, "recenter and normalization 1"
    )


@ui("sd-webui-vectorscope-cc")
def _vec_cc_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Vectorscope CC")


@core("sd-webui-vectorscope-cc")
def _vec_cc_core(ctx: Context) -> tuple[bool | None, str]:
    """It replaces `KDiffusionSampler.callback_state` and offsets the latents at every step."""
    args = [True, False, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, False, False, False, "Straight Abs.", "Flat"]
    job = {"prompt": "a red circle", "steps": 6, "sampler_name": "Euler a"}
    marks = ("Vec CC Enabled: True", "Vec CC Brightness: 2")
    return _script_changes_the_image(ctx, job, "Vectorscope CC", args, marks, "brightness 2")


@ui("sd-webui-resharpen")
def _resharpen_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "ReSharpen")


@core("sd-webui-resharpen")
def _resharpen_core(ctx: Context) -> tuple[bool | None, str]:
    """It replaces `KDiffusionSampler.callback_state` and pushes each step's latents further along their
    change from the step before (with Euler)."""
    job = {"prompt": "a red circle", "steps": 6, "sampler_name": "Euler"}
    marks = ("Resharpen Enabled: True", "Resharpen Sharpness: 1")
    args = [True, 1.0, "Flat", 0.0, "Flat"]
    return _script_changes_the_image(ctx, job, "ReSharpen", args, marks, "sharpness 1")


@ui("sd-webui-easy-tag-insert")
def _ez_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = (
        ctx.page.locator("#txt2img_extra_tabs").get_by_role("tab", name="EZ-Tags", exact=True).is_visible()
    )
    return shown, "its EZ-Tags card tab beside Generation" if shown else "no EZ-Tags card tab"


@core("sd-webui-easy-tag-insert")
def _ez_core(ctx: Context) -> tuple[bool | None, str]:
    """Its cards (one per .tag file of its examples) insert their tags; its page script groups them by
    folder, looking its tab up by A1111's ids and the cards' `data-sort-*` keys."""
    page = ctx.page
    page.fill("#txt2img_prompt textarea", "")
    page.locator("#txt2img_extra_tabs").get_by_role("tab", name="EZ-Tags", exact=True).click()
    card = page.locator("#txt2img_ez-tags_cards .card[data-name='Anime']")
    try:
        card.wait_for(state="visible", timeout=10000)
        card.click()
        page.wait_for_function(
            "() => document.querySelector('#txt2img_prompt textarea').value.includes('official_art')",
            timeout=10000,
        )
        page.locator("#txt2img_ez-tags_cards_html .style-bracket").first.wait_for(
            state="attached", timeout=10000
        )
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    finally:
        ctx.back_to_txt2img()
    return True, "the Anime card inserted its tags; its script grouped the cards by folder"


@ui("sd-webui-ar")
def _ar_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.page.locator("#txt2img_row_aspect_ratio button", has_text="1:1").first.is_visible()
    return (
        shown,
        "aspect ratio buttons under width/height" if shown else "#txt2img_row_aspect_ratio 1:1 missing",
    )


@core("sd-webui-ar")
def _ar_core(ctx: Context) -> tuple[bool | None, str]:
    """Its 1:1 button sets both sides to the shorter one (its buttons are wired to the width and height
    sliders it caught in `after_component`)."""
    page = ctx.page
    for side, value in (("width", "512"), ("height", "768")):
        box = page.locator(f"#txt2img_{side} input[type=number]").first
        box.fill(value)
        box.press("Enter")
    page.locator("#txt2img_row_aspect_ratio button", has_text="1:1").first.click()
    time.sleep(1.0)
    w = float(page.input_value("#txt2img_width input[type=number]"))
    h = float(page.input_value("#txt2img_height input[type=number]"))
    return (w, h) == (512, 512), f"512x768, then 1:1 -> {w:g}x{h:g}"


@ui("Stable-Diffusion-Webui-Civitai-Helper")
def _civitai_helper_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.page.locator("button[role=tab]", has_text="Civitai Helper").first.is_visible()
    return shown, "tab shown" if shown else "tab missing"


@core("Stable-Diffusion-Webui-Civitai-Helper")
def _civitai_helper_core(ctx: Context) -> tuple[bool | None, str]:
    """Offline, from a model's `.civitai.info` beside it (what its scan downloads): its 🔁 adds its buttons
    to the Lora cards (A1111 1.8+'s toolbar, read from the page's version link), and its 💡 writes the
    model's trained words into the prompt through its hidden Gradio textbox and button."""
    import json

    import torch
    from safetensors.torch import save_file

    lora_dir = ctx.data_dir / "models" / "Lora"
    lora_dir.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(1)}, str(lora_dir / "chtest.safetensors"))
    info = {"modelId": 1, "trainedWords": ["sumiword"], "images": []}
    (lora_dir / "chtest.civitai.info").write_text(json.dumps(info), encoding="utf-8")
    ctx.http.post("/sdapi/v1/refresh-loras")
    page = ctx.page
    page.fill("#txt2img_prompt textarea", "a cat")
    page.locator("#txt2img_extra_tabs").get_by_role("tab", name="Lora", exact=True).click()
    page.click("#txt2img_lora_extra_refresh")
    card = page.locator("#txt2img_lora_cards .card[data-name=chtest]")
    card.wait_for(state="attached")
    page.locator('#txt2img_lora_controls button[title^="Refresh Civitai Helper"]').click()
    words = card.locator('.button-row a[title="Add trigger words to prompt"]')
    try:
        words.wait_for(state="attached", timeout=10000)
    except Exception:
        return False, "its 🔁 added no buttons to the Lora card"
    card.hover()
    words.click()
    try:
        page.wait_for_function(
            "() => document.querySelector('#txt2img_prompt textarea').value.includes('sumiword')",
            timeout=10000,
        )
    except Exception:
        return False, "💡 on the card did not add the trained words to the prompt"
    finally:
        ctx.back_to_txt2img()
    return (
        True,
        "its buttons on a Lora card; 💡 added the trained word from chtest.civitai.info to the prompt",
    )


@ui("sd-webui-supermerger")
def _supermerger_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.page.locator("#tabs button[role=tab]", has_text="SuperMerger").first.is_visible()
    return shown, "its SuperMerger tab shown" if shown else "no SuperMerger tab"


@core("sd-webui-supermerger")
def _supermerger_core(ctx: Context) -> tuple[bool | None, str]:
    """Merge&Gen: it merges model A and B by weight sum in its own code (state dicts from the files),
    loads the merge with `sd_models.load_model(info, already_loaded_state_dict=...)` (Sumi's in-memory
    model) and generates with the txt2img tab's values, which it finds among A1111's Generate inputs."""
    page = ctx.page
    page.fill("#txt2img_prompt textarea", "a red circle")
    page.locator("#tabs button[role=tab]", has_text="SuperMerger").first.click()
    try:
        button = page.get_by_role("button", name="Merge&Gen").first
        button.wait_for(state="visible", timeout=30000)
        time.sleep(2.0)  # a tab's controls are drawn when it is first opened: a user sees them first
        button.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('textarea, input')].some(e => "
            "(e.value || '').startsWith('Merged model loaded'))",
            timeout=120000,
        )
        info = page.wait_for_function(  # the merge's infotext under its output image (not txt2img's)
            "() => [...document.querySelectorAll('p, div')].filter(e => e.offsetParent !== null"
            " && e.innerText.includes('Steps: ') && e.innerText.includes(' x 0.5')).pop()?.innerText",
            timeout=120000,
        ).json_value()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    finally:
        ctx.back_to_txt2img()
    merged = " x 0.5" in info
    ctx.http.post("/sdapi/v1/reload-checkpoint")  # the next checks on the demo model again
    return merged, f"Merge&Gen: merged in memory, generated with it ({info.splitlines()[-1][:120]!r})"


@ui("sd-civitai-browser-plus")
def _civitai_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("civitai_interface", "CivitAI Browser+").is_visible()
    ctx.back_to_txt2img()
    return shown, "tab shown" if shown else "tab missing"


@core("sd-civitai-browser-plus")
def _civitai_core(ctx: Context) -> tuple[bool | None, str]:
    return None, "browses and downloads from civitai.com (network)"


@ui("canvas-zoom")
def _canvas_zoom_ui(ctx: Context) -> tuple[bool | None, str]:
    # inlined in the page head, named by their sourceURL (A1111 links them: src)
    loaded = ctx.page.evaluate(
        """() => [...document.scripts].some(s => (s.src || '').includes('/canvas-zoom/')
            || s.text.includes('sourceURL=extensions/canvas-zoom/'))"""
    )
    return loaded, "its page scripts are in the page" if loaded else "its page scripts are not in the page"


@ui("stable-diffusion-webui-state")
def _state_ui(ctx: Context) -> tuple[bool | None, str]:
    return _option_exists(ctx, "state_txt2img")


PREPARE["stable-diffusion-webui-state"] = lambda ext, data: _settings(data, {"state_txt2img": ["prompt"]})


def kept(value: str) -> bool:
    """The prompt came back; prompt-all-in-one (also installed) ends a typed prompt with ", " on blur."""
    return value.rstrip(", ") == "kept across reloads"


@core("stable-diffusion-webui-state")
def _state_core(ctx: Context) -> tuple[bool | None, str]:
    page = ctx.new_page()
    try:
        page.fill("#txt2img_prompt textarea", "kept across reloads")
        page.locator("#txt2img_prompt textarea").press("Tab")
        time.sleep(1)
        page.reload()
        page.wait_for_selector("#txt2img_prompt textarea", timeout=PAGE_LOAD_TIMEOUT_MS)
        deadline = time.monotonic() + 15
        value = ""
        while time.monotonic() < deadline:
            value = page.input_value("#txt2img_prompt textarea")
            if kept(value):
                break
            time.sleep(0.5)
        return kept(value), f"prompt after reload {value!r}"
    finally:
        page.context.close()


@ui("sd-webui-model-converter")
def _converter_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("model_converter", "Model Converter").is_visible()
    ctx.back_to_txt2img()
    return shown, "tab shown" if shown else "tab missing"


# A preset a user saved with the extension's save button: sampler, steps, CFG scale and size.
PRESET = "Sumi check"
PRESET_FIELDS = {
    "txt2img_sampling": "DPM++ 2M",
    "txt2img_steps": 13,
    "txt2img_cfg_scale": 4.5,
    "txt2img_width": 384,
    "txt2img_height": 448,
}


@prepare_for("Config-Presets")
def _presets_file(ext_dir: Path, data_dir: Path) -> None:
    presets = {"None": {}, PRESET: PRESET_FIELDS}
    (ext_dir / "config-txt2img.json").write_text(json.dumps(presets, indent=4))


@ui("Config-Presets")
def _presets_ui(ctx: Context) -> tuple[bool | None, str]:
    wrapper = ctx.page.locator("#config_preset_wrapper_txt2img")  # strict: one element, as in A1111
    try:
        wrapper.wait_for(state="visible")
    except Exception as exc:
        return False, f"#config_preset_wrapper_txt2img missing ({str(exc).splitlines()[0][:120]})"
    inside = wrapper.evaluate("e => e.closest('#txt2img_results') !== null")
    return inside, "preset dropdown shown" if inside else "preset box outside #txt2img_results"


@core("Config-Presets")
def _presets_core(ctx: Context) -> tuple[bool | None, str]:
    """Choosing the saved preset writes its values into txt2img's fields (a page of its own: the shared
    page keeps its values for the other checks)."""
    page = ctx.new_page()
    try:
        page.locator("#config_preset_txt2img_dropdown input").click()
        page.get_by_role("option", name=PRESET).click()
        numbers = {k: str(v) for k, v in PRESET_FIELDS.items() if k != "txt2img_sampling"}
        read = (
            "(ids) => Object.fromEntries(ids.map(id => "
            "[id, document.querySelector(`#${id} input[type=number]`)?.value]))"
        )
        deadline = time.monotonic() + 15
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = page.evaluate(read, list(numbers))
            shown["txt2img_sampling"] = page.input_value("#txt2img_sampling input")
            if shown == {**numbers, "txt2img_sampling": PRESET_FIELDS["txt2img_sampling"]}:
                return True, f"preset {PRESET!r} set steps, CFG, size and sampler"
            time.sleep(0.5)
        return False, f"after choosing {PRESET!r} the fields show {shown}"
    finally:
        page.context.close()


@ui("sd-webui-cleaner")
def _cleaner_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("cleaner_tab", "Cleaner").is_visible()
    ctx.back_to_txt2img()
    return shown, "tab shown" if shown else "tab missing"


@core("sd-webui-cleaner")
def _cleaner_core(ctx: Context) -> tuple[bool | None, str]:
    return None, "needs the LaMa model download (network)"


@ui("openpose-editor")
def _openpose_ui(ctx: Context) -> tuple[bool | None, str]:
    content = ctx.tab("openpose_editor", "OpenPose Editor")
    try:
        content.locator("canvas").first.wait_for(state="visible")
        return True, "editor canvas shown"
    except Exception:
        return False, "no canvas in its tab"
    finally:
        ctx.back_to_txt2img()


@core("sd-webui-openpose-editor")
def _openpose3d_core(ctx: Context) -> tuple[bool | None, str]:
    response = ctx.http.get("/openpose_editor_index")
    return response.status_code == 200 and "<html" in response.text.lower(), (
        f"/openpose_editor_index answered {response.status_code}"
    )


@ui("sd-webui-infinite-image-browsing")
def _iib_ui(ctx: Context) -> tuple[bool | None, str]:
    shown = ctx.tab("infinite-image-browsing", "Infinite image browsing").is_visible()
    ctx.back_to_txt2img()
    return shown, "tab shown" if shown else "tab missing"


@core("sd-webui-infinite-image-browsing")
def _iib_core(ctx: Context) -> tuple[bool | None, str]:
    folder = ctx.data_dir / "outputs" / "txt2img-images"
    day = sorted(folder.iterdir())[-1] if folder.is_dir() else folder
    response = ctx.http.get("/infinite_image_browsing/files", params={"folder_path": str(day)})
    if response.status_code != 200:
        return False, f"/infinite_image_browsing/files answered {response.status_code}: {response.text[:200]}"
    files = [f for f in response.json().get("files", []) if str(f.get("name", "")).endswith(".png")]
    return len(files) > 0, f"{len(files)} output images listed"


@ui("a1111-sd-webui-tagcomplete")
def _tac_ui(ctx: Context) -> tuple[bool | None, str]:
    return _option_exists(ctx, "tac_tagFile")


@core("a1111-sd-webui-tagcomplete")
def _tac_core(ctx: Context) -> tuple[bool | None, str]:
    page = ctx.page
    box = page.locator("#txt2img_prompt textarea")
    box.fill("")
    box.press_sequentially("1gir", delay=80)
    results = page.locator(".autocompleteResults").first
    try:
        results.get_by_text("1girl").first.wait_for(state="visible")
        return True, "typing '1gir' offers 1girl"
    except Exception:
        return False, "no completion for '1gir' (tag list not loaded?)"
    finally:
        box.fill("")


@ui("sd-webui-prompt-all-in-one")
def _paio_ui(ctx: Context) -> tuple[bool | None, str]:
    try:
        ctx.page.locator("[id^='physton-prompt'], .physton-prompt").first.wait_for(state="visible")
        return True, "its prompt panel is shown"
    except Exception:
        return False, "its prompt panel is not shown"


@core("sd-webui-prompt-all-in-one")
def _paio_core(ctx: Context) -> tuple[bool | None, str]:
    response = ctx.http.post(
        "/physton_prompt/token_counter", json={"text": "a red circle, blue", "steps": 20}
    )
    if response.status_code != 200:
        return False, f"token_counter answered {response.status_code}: {response.text[:200]}"
    return "token_count" in response.text, f"token_counter: {response.text[:100]}"


# A short 2D animation as a Deforum user saves one (its Run/Keyframes/Prompts/Output tabs), read back with
# "Load All Settings" from the settings file the tab names by default (relative to the webui folder).
DEFORUM_BATCH = "sumi_try_check"
DEFORUM_FRAMES = 3
DEFORUM_SETTINGS = {
    "W": 128, "H": 128, "steps": 4, "sampler": "Euler", "seed": 1234, "animation_mode": "2D",
    "max_frames": DEFORUM_FRAMES, "diffusion_cadence": 1, "batch_name": DEFORUM_BATCH,
    "prompts": {"0": "a red circle on the left, blue background"},
    "animation_prompts_positive": "", "animation_prompts_negative": "",
    "zoom": "0: (1.02)", "translation_x": "0: (1)", "color_coherence": "None", "noise_type": "uniform",
    "use_depth_warping": False, "skip_video_creation": False,
}  # fmt: skip


@prepare_for("sd-webui-deforum")
def _deforum_settings(ext_dir: Path, data_dir: Path) -> None:
    defaults = json.loads((ext_dir / "scripts" / "default_settings.txt").read_text(encoding="utf-8"))
    (data_dir / "deforum_settings.txt").write_text(json.dumps({**defaults, **DEFORUM_SETTINGS}, indent=1))


@ui("sd-webui-deforum")
def _deforum_ui(ctx: Context) -> tuple[bool | None, str]:
    content = ctx.tab("deforum_interface", "Deforum")
    shown = content.is_visible() and content.locator("#deforum_generate").count() == 1
    ctx.back_to_txt2img()
    return shown, "tab with its Generate button shown" if shown else "tab or its Generate button missing"


@core("sd-webui-deforum")
def _deforum_core(ctx: Context) -> tuple[bool | None, str]:
    """Load the saved settings, press the tab's Generate: the frames are rendered through Sumi's txt2img
    (first frame) and img2img (the warped ones) and written to the img2img outputs folder."""
    page = ctx.page
    content = ctx.tab("deforum_interface", "Deforum")
    try:
        content.locator("#deforum_load_settings_btn").click()
        page.wait_for_function(
            "(batch) => [...document.querySelectorAll('#tab_deforum_interface input, #tab_deforum_interface textarea')]"
            ".some(e => e.value === batch)",
            arg=DEFORUM_BATCH,
        )
        content.locator("#deforum_generate").click()
        info = page.locator("#html_info_deforum").get_by_text("The animation is stored in", exact=False)
        info.wait_for(timeout=300_000)
    except Exception as exc:
        return False, f"no animation after Generate ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    finally:
        ctx.back_to_txt2img()
    folder = ctx.data_dir / "outputs" / "img2img-images" / DEFORUM_BATCH
    frames = sorted(folder.glob("*.png")) if folder.is_dir() else []
    videos = sorted(folder.glob("*.mp4")) if folder.is_dir() else []
    video = f", video {videos[0].name}" if videos else ", no video (ffmpeg not found)"
    return len(frames) == DEFORUM_FRAMES, f"{len(frames)} of {DEFORUM_FRAMES} frames in {folder.name}/{video}"


# -- B-deep named in the issue ------------------------------------------------------------------------------


@ui("sd-webui-neutral-prompt")
def _neutral_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Neutral Prompt")


@core("sd-webui-neutral-prompt")
def _neutral_core(ctx: Context) -> tuple[bool | None, str]:
    prompt = "a red circle AND_PERP a blue square"
    plain, _ = ctx.txt2img(prompt=prompt, alwayson_scripts={"Neutral Prompt": {"args": [0.0]}})
    rescaled, info = ctx.txt2img(prompt=prompt, alwayson_scripts={"Neutral Prompt": {"args": [0.7]}})
    infotext = info["infotexts"][0]
    return rescaled[0] != plain[0] and "CFG Rescale phi: 0.7" in infotext, (
        f"CFG rescale 0.7 {'changed' if rescaled[0] != plain[0] else 'did not change'} the image; infotext "
        f"{'has' if 'CFG Rescale phi' in infotext else 'lacks'} it"
    )


@ui("sd-webui-freeu")
def _freeu_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "FreeU")


SD15_SHAPED = "sd15-shaped-random"


def _sd15_shaped_checkpoint(ctx: Context) -> Path:
    """A random-weight checkpoint with SD1.5's architecture in the server's checkpoint folder (cached
    between runs). FreeU acts on the blocks 320, 640 and 1280 channels wide, as in SD1.5 and SDXL; the
    demo model's 32/64-wide blocks are not in its table, so it would leave the demo's images alone (in
    A1111 too)."""
    import sys

    import torch

    cached = Path.home() / ".cache" / "sumi-try-extensions" / f"{SD15_SHAPED}.safetensors"
    if not cached.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from modules.sumi.engine.tiny_models import full_size, write_checkpoint

        cached.parent.mkdir(parents=True, exist_ok=True)
        write_checkpoint(cached, full_size("SD1", seed=0), dtype=torch.float16)
    target = ctx.data_dir / "models" / "Stable-diffusion" / cached.name
    if not target.exists():
        target.symlink_to(cached)
    ctx.http.post("/sdapi/v1/refresh-checkpoints")
    return target


@core("sd-webui-freeu")
def _freeu_core(ctx: Context) -> tuple[bool | None, str]:
    checkpoint = _sd15_shaped_checkpoint(ctx)
    model = {"override_settings": {"sd_model_checkpoint": SD15_SHAPED}}
    try:
        plain, _ = ctx.txt2img(prompt="a red circle", **model)
        state = {"enable": True, "stage_infos": [{"backbone_factor": 1.6, "skip_factor": 0.5}] * 3}
        scripts = {"FreeU": {"args": [state]}}
        boosted, info = ctx.txt2img(prompt="a red circle", alwayson_scripts=scripts, **model)
    finally:
        checkpoint.unlink(missing_ok=True)
        ctx.http.post("/sdapi/v1/refresh-checkpoints")
    infotext = info["infotexts"][0]
    return boosted[0] != plain[0] and "FreeU" in infotext, (
        f"FreeU {'changed' if boosted[0] != plain[0] else 'did not change'} the image of an SD1.5-shaped "
        f"model; infotext {'has' if 'FreeU' in infotext else 'lacks'} its parameters"
    )


@ui("sd-webui-kohya-hiresfix")
def _kohya_hiresfix_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Kohya Hires.fix")


KOHYA_ARGS = [True, True, 3, 4, 0.15, 0.3, "bicubic", 0.5, 2.0, True, False]


@core("sd-webui-kohya-hiresfix")
def _kohya_hiresfix_core(ctx: Context) -> tuple[bool | None, str]:
    """Deep Shrink replaces items of `diffusion_model.input_blocks` / `output_blocks` for the first steps:
    the picture must change, the infotext carry its parameters, and the next plain job (its
    `postprocess` put the blocks back) draw the first plain picture again."""
    job = {"prompt": "a red circle", "steps": 8, "width": 128, "height": 128}
    plain, _ = ctx.txt2img(**job)
    shrunk, info = ctx.txt2img(**job, alwayson_scripts={"Kohya Hires.fix": {"args": KOHYA_ARGS}})
    again, _ = ctx.txt2img(**job)
    infotext = info["infotexts"][0]
    marked = "DSHF_s1: 0.15" in infotext and "DSHF_d1: 3" in infotext
    return shrunk[0] != plain[0] and marked and again[0] == plain[0], (
        f"Deep Shrink {'changed' if shrunk[0] != plain[0] else 'did not change'} the image; infotext "
        f"{'has' if marked else 'lacks'} its parameters; the next plain job "
        f"{'draws the plain image again' if again[0] == plain[0] else 'differs from the first'}"
    )


@ui("sd-webui-regional-prompter")
def _regional_prompter_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Regional Prompter")


# active, debug, tab, Matrix submode, Mask submode, Prompt submode, ratios, base ratios, use base, use common,
# use negative common, calc mode, options, LoRA te/unet ratios, threshold, mask, LoRA stop steps, flip
REGIONAL_ARGS = [True, False, "Matrix", "Columns", "Mask", "Prompt", "1,1", "0", False, False, False]
REGIONAL_ARGS += ["Attention", False, "0", "0", "0.4", "", "0", "0", False]


def _mean_rgb(image_b64: str, box: tuple[int, int, int, int]) -> tuple[float, float, float]:
    import base64
    import io

    import numpy as np
    from PIL import Image

    picture = Image.open(io.BytesIO(base64.b64decode(image_b64))).convert("RGB").crop(box)
    r, g, b = np.asarray(picture, dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return float(r), float(g), float(b)


@core("sd-webui-regional-prompter")
def _regional_prompter_core(ctx: Context) -> tuple[bool | None, str]:
    """Attention mode, two columns: the left half follows the first region's prompt (a red circle), the
    right half the second's (a blue square); without regions the demo model draws one shape anywhere."""
    prompt = "a red circle, white background BREAK a blue square, white background"
    job = {"prompt": prompt, "steps": 12, "width": 128, "height": 128, "seed": 2}
    job["sampler_name"] = "Euler a"
    plain, _ = ctx.txt2img(**job)
    regional, info = ctx.txt2img(**job, alwayson_scripts={"Regional Prompter": {"args": REGIONAL_ARGS}})
    left, right = _mean_rgb(regional[0], (0, 0, 48, 128)), _mean_rgb(regional[0], (80, 0, 128, 128))
    red_left = left[0] - left[2] > right[0] - right[2] + 40
    marked = "RP Active: True" in info["infotexts"][0]
    return regional[0] != plain[0] and red_left and marked, (
        f"regions {'changed' if regional[0] != plain[0] else 'did not change'} the image; left half "
        f"(r,g,b) {tuple(round(v) for v in left)}, right half {tuple(round(v) for v in right)}; infotext "
        f"{'has' if marked else 'lacks'} its parameters"
    )


@ui("sd-dynamic-thresholding")
def _dynthres_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "Dynamic Thresholding (CFG Scale Fix)")


DYNTHRES_ARGS = [True, 7.0, 100.0, "Constant", 0.0, "Constant", 0.0, 4.0, True, "MEAN", "AD", 1.0]


@core("sd-dynamic-thresholding")
def _dynthres_core(ctx: Context) -> tuple[bool | None, str]:
    """At CFG 20 its "Mimic CFG Scale" 7 must change the picture, and the infotext must name the user's
    sampler (it runs the batch under a sampler of its own it registers, then names the real one)."""
    job = {"prompt": "a red circle", "cfg_scale": 20, "sampler_name": "Euler a"}
    plain, _ = ctx.txt2img(**job)
    scripts = {"Dynamic Thresholding (CFG Scale Fix)": {"args": DYNTHRES_ARGS}}
    fixed, info = ctx.txt2img(**job, alwayson_scripts=scripts)
    infotext = info["infotexts"][0]
    marked = "Dynamic thresholding enabled: True" in infotext and "Mimic scale: 7" in infotext
    named = "Sampler: Euler a," in infotext
    info = {s["name"]: s for s in ctx.http.get("/sdapi/v1/script-info").json() if not s["is_img2img"]}
    axes = info.get("x/y/z plot", {}).get("args", [{}])[0].get("choices") or []
    plotted = "[DynThres] Mimic Scale" in axes
    return fixed[0] != plain[0] and marked and named and plotted, (
        f"mimic scale 7 at CFG 20 {'changed' if fixed[0] != plain[0] else 'did not change'} the image; "
        f"infotext {'has' if marked else 'lacks'} its parameters, "
        f"{'names' if named else 'does not name'} the sampler Euler a; its X/Y/Z axes "
        f"{'listed' if plotted else 'not listed'}"
    )


# -- late: the UI language ---------------------------------------------------------------------------------------


@core("stable-diffusion-webui-localization-zh_CN")
def _zh_core(ctx: Context) -> tuple[bool | None, str]:
    response = ctx.http.post("/sdapi/v1/options", json={"localization": "zh_CN"})
    if response.status_code != 200:
        return False, f"setting localization zh_CN answered {response.status_code}: {response.text[:200]}"
    ctx.reload()
    ctx.page.wait_for_timeout(2000)
    text = ctx.page.inner_text("#txt2img_generate")
    return "生成" in text, f"Generate button reads {text.strip()!r}"


@ui("stable-diffusion-webui-localization-zh_CN")
def _zh_ui(ctx: Context) -> tuple[bool | None, str]:
    choices = ctx.http.get("/sdapi/v1/options").json()
    return (
        None if "localization" in choices else False,
        "localization is a setting" if "localization" in choices else "no localization setting",
    )


@ui("sd-webui-bilingual-localization")
def _bl_ui(ctx: Context) -> tuple[bool | None, str]:
    return _option_exists(ctx, "bilingual_localization_file")


@core("sd-webui-bilingual-localization")
def _bl_core(ctx: Context) -> tuple[bool | None, str]:
    values = {
        "localization": "None",
        "bilingual_localization_enabled": True,
        "bilingual_localization_file": "zh_CN",
    }
    response = ctx.http.post("/sdapi/v1/options", json=values)
    if response.status_code != 200:
        return False, f"setting bilingual options answered {response.status_code}: {response.text[:200]}"
    ctx.reload()
    ctx.page.wait_for_timeout(3000)
    text = ctx.page.inner_text("#txt2img_generate")
    both = "生成" in text and re.search("generate", text, re.I) is not None
    return both, f"Generate button reads {text.strip()!r}"


@ui("sd-webui-lobe-theme")
def _lobe_ui(ctx: Context) -> tuple[bool | None, str]:
    """Its own page, with its start-up request to api.github.com (the latest release) answered as an
    online browser's would be: offline it waits on that request forever ("initializing, please wait"),
    as on A1111 (lobehub/sd-webui-lobe-theme#524). Then A1111 1.6+'s layout as the theme arranges it:
    the generation settings in the middle, the extra networks in its right sidebar."""
    page = ctx.new_page()
    try:
        page.route(
            re.compile(r"https://api\.github\.com/.*"),
            lambda route: route.fulfill(
                status=200, content_type="application/json", body='{"tag_name": "v3.5.4"}'
            ),
        )
        page.reload()
        page.get_by_text("Quick Setting").first.wait_for(state="visible", timeout=60_000)
        where = """() => {
            const settings = document.querySelector('#txt2img_settings');
            return settings ? (settings.closest('#tab_txt2img') ? 'main' : 'moved') : 'missing';
        }"""
        # the theme moves the Generation tab back to the middle after it has drawn its sidebars
        with contextlib.suppress(Exception):
            page.wait_for_function(f"() => ({where})() === 'main'", timeout=20_000)
        placed = page.evaluate(where)
        if placed != "main":
            return False, (
                "its frame and quick settings are drawn, but its Extra Network sidebar took #txt2img_extra_tabs "
                "with Sumi's generation settings in it (A1111 1.6+: the Tabs of Generation and the network "
                "tabs, whose Generation tab the theme moves back to the middle)"
            )
        return True, "its frame, quick settings and the generation settings in the middle"
    except Exception as exc:
        return False, f"the theme did not draw ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    finally:
        page.context.close()


# A YOLOv8 detector that finds a "face" at every place, all of one size (a random backbone, its head's last
# layers set): ADetailer's detection, crop, inpainting and paste-back run without downloading a model.
EVERYWHERE_YOLO = """
import sys, torch
from ultralytics import YOLO
m = YOLO("yolov8n.yaml")
head = m.model.model[-1]
with torch.no_grad():
    for seq in head.cv3:
        seq[-1].weight.zero_()
        seq[-1].bias.fill_(8.0)
    for seq in head.cv2:
        seq[-1].weight.zero_()
        bins = torch.full((4, head.reg_max), -8.0)
        bins[:, 3] = 8.0
        seq[-1].bias.copy_(bins.flatten())
m.model.names = {0: "face"}
m.save(sys.argv[1])
"""
YOLO_NAME = "sumi_everywhere.pt"


@prepare_for("adetailer")
def _adetailer_model(ext_dir: Path, data_dir: Path) -> None:
    """Its detector file in models/adetailer, made with the server's ultralytics (installed by its
    install.py on an earlier run; without it the core check says so)."""
    if SERVER_PYTHON is None:
        return
    folder = data_dir / "models" / "adetailer"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(SERVER_PYTHON), "-c", EVERYWHERE_YOLO, str(folder / YOLO_NAME)],
        cwd=folder,
        capture_output=True,
        timeout=300,
    )


@ui("adetailer")
def _adetailer_ui(ctx: Context) -> tuple[bool | None, str]:
    return _accordion(ctx, "ADetailer")


@core("adetailer")
def _adetailer_core(ctx: Context) -> tuple[bool | None, str]:
    """A job with ADetailer on (the API's alwayson_scripts, as its README shows): it must run and write its
    parameters. Whether it finds and redraws a face needs its detectors: YOLO files from Hugging Face
    (network) or mediapipe's bundled ones."""
    models = ctx.http.get("/adetailer/v1/ad_model").json().get("ad_model", [])
    if YOLO_NAME in models:
        return _adetailer_redraws_one_region(ctx)
    if not models:
        return None, "no detection model (its YOLO files are downloaded at start)"
    scripts = {"ADetailer": {"args": [True, False, {"ad_model": models[0]}]}}
    _, info = ctx.txt2img(prompt="a red circle, white background", alwayson_scripts=scripts)
    text = info["infotexts"][0]
    if "ADetailer model" not in text:
        return False, f"a job with ADetailer on ({models[0]}) wrote no ADetailer parameters: {text[-200:]!r}"
    return None, (
        f"a job with ADetailer on ({models[0]}, the only kind here) ran and wrote its parameters; finding and "
        "redrawing a face needs a YOLO file from Hugging Face (network) or a working mediapipe"
    )


def _adetailer_redraws_one_region(ctx: Context) -> tuple[bool | None, str]:
    """The same job without and with ADetailer (the "everywhere" detector, the largest region under a fifth
    of the picture kept, redrawn with a prompt of its own): the picture changes there, and only there."""
    import numpy as np
    from PIL import Image

    job = {"prompt": "a red circle, white background", "width": 128, "height": 128, "steps": 4}
    plain, _ = ctx.txt2img(**job)
    unit = {
        "ad_model": YOLO_NAME,
        "ad_mask_k": 1,
        "ad_mask_max_ratio": 0.2,
        "ad_denoising_strength": 1.0,
        "ad_prompt": "a blue square, black background",  # its own prompt for the region: a visible change
    }
    fixed, info = ctx.txt2img(**job, alwayson_scripts={"ADetailer": {"args": [True, False, unit]}})

    def pixels(b64: str) -> Any:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)

    changed = np.abs(pixels(fixed[0]) - pixels(plain[0])).max(axis=2) > 24
    if "ADetailer model" not in info["infotexts"][0]:
        return False, "no ADetailer parameters in the infotext"
    if not changed.any():
        return False, "ADetailer on and a region found: the picture did not change"
    rows, cols = np.nonzero(changed)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) / changed.size
    return bool(box < 0.5), (
        f"one region redrawn: {int(changed.sum())} pixels changed, within a box of {box:.0%} of the picture "
        "(a detector made here that finds a 'face' everywhere; its Hugging Face models need the network)"
    )


PHOTOSHOP = "/sdapi/auto-photoshop-sd"
# the A1111 routes its Photoshop panel reads when it connects (sdapi_py_re.js, typescripts/)
PHOTOSHOP_READS = [
    "/config",
    "/sdapi/v1/options",
    "/sdapi/v1/sd-models",
    "/sdapi/v1/samplers",
    "/sdapi/v1/upscalers",
    "/sdapi/v1/scripts",
    "/sdapi/v1/loras",
    "/sdapi/v1/embeddings",
    "/sdapi/v1/progress?skip_current_image=false",
    "/controlnet/version",
    "/controlnet/settings",
    "/controlnet/model_list",
    "/controlnet/module_list?alias_names=true",
]


@ui("Auto-Photoshop-SD-Plugin")
def _photoshop_ui(ctx: Context) -> tuple[bool | None, str]:
    """Its panel lives in Photoshop; here, what it mounts (with --api) and the A1111 routes it reads."""
    version = ctx.http.get(f"{PHOTOSHOP}/version")
    if version.status_code != 200:
        return False, f"its routes are not mounted: {PHOTOSHOP}/version answered {version.status_code}"
    failed = [
        f"{path} {r.status_code}" for path in PHOTOSHOP_READS if (r := ctx.http.get(path)).status_code != 200
    ]
    if failed:
        return False, f"routes its panel reads failed: {', '.join(failed)}"
    return (
        True,
        f"{PHOTOSHOP}/version answered {version.json()}; the {len(PHOTOSHOP_READS)} A1111 routes its panel reads answer",
    )


@core("Auto-Photoshop-SD-Plugin")
def _photoshop_core(ctx: Context) -> tuple[bool | None, str]:
    """Its mask expansion (inpainting from a Photoshop selection): a 16x16 square in a 64x64 mask, grown
    by 3 max-filter passes."""
    import numpy as np
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (24, 24, 40, 40))
    buffer = io.BytesIO()
    mask.convert("RGB").save(buffer, "PNG")
    payload = {"mask": base64.b64encode(buffer.getvalue()).decode(), "mask_expansion": 3, "blur": 0}
    response = ctx.http.post(f"{PHOTOSHOP}/mask/expansion/", json=payload)
    if response.status_code != 200:
        return False, f"mask expansion answered {response.status_code}: {response.text[:200]}"
    grown = Image.open(io.BytesIO(base64.b64decode(response.json()["mask"]))).convert("L")
    before, after = int((np.asarray(mask) > 127).sum()), int((np.asarray(grown) > 127).sum())
    return after > before, f"mask expansion grew a {before}-pixel selection to {after} pixels"
