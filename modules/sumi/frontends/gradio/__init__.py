"""Sumi's Gradio web UI: `build_ui(app)` returns the Blocks that `webui.py` mounts at "/".

The page's CSS and script travel inside the Blocks (in the `<head>` of the notices component), so
mounting needs no extra arguments; `CSS` and `JS` are exported for callers that prefer to pass them
to `gr.mount_gradio_app(..., css=CSS)` themselves.

Extensions take part as in A1111: their `on_ui_settings` options are registered before the Settings
tab is built. Each mode's page (txt2img, img2img, Extras, PNG Info, Checkpoint Merger, Train) is built in
its own Blocks and then placed in its tab, and the `on_ui_tabs` callbacks run after those pages and outside
the page (each makes its own `gr.Blocks`), as A1111 does: their tabs can wire to the prompts they caught
in `on_after_component`. Their tabs are placed after Train, before Settings and Extensions; their
`javascript/*.js` and `style.css` are added to the served page by `page_head` (webui.py installs it). A
callback that raises, a tab that is not a `(gr.Blocks, title, elem_id)` or whose id or title is taken,
and an event wired to something that is not a component are reported (notices, Extensions tab) and left
out; the rest of the page is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import gradio as gr
from gradio.context import set_render_context

from modules.sumi.frontends.gradio import hires_ui
from modules.sumi.frontends.gradio.a1111_classes import add_a1111_classes
from modules.sumi.frontends.gradio.a1111_generate import describe_generate
from modules.sumi.frontends.gradio.assets import CSS, JS
from modules.sumi.frontends.gradio.direct_page_loads import answer_page_loads_directly
from modules.sumi.frontends.gradio.event_guard import drop_broken_events
from modules.sumi.frontends.gradio.extensions_tab import create_extensions_tab, source_label
from modules.sumi.frontends.gradio.extras import ExtrasTab, create_extras_tab, wire_send_to_extras
from modules.sumi.frontends.gradio.footer import create_footer
from modules.sumi.frontends.gradio.img2img import (
    Img2ImgTab,
    create_img2img_tab,
    image_cfg_visible,
    wire_send_to,
)
from modules.sumi.frontends.gradio.login import current_login
from modules.sumi.frontends.gradio.merger_ui import create_merger_tab
from modules.sumi.frontends.gradio.native_size import loaded_model_size, wire_native_size
from modules.sumi.frontends.gradio.page_section import PageSection
from modules.sumi.frontends.gradio.paste_buttons import REGISTRY as PASTE_BUTTONS
from modules.sumi.frontends.gradio.paste_buttons import announcing_parser, readable_roots
from modules.sumi.frontends.gradio.pnginfo import create_pnginfo_tab
from modules.sumi.frontends.gradio.quicksettings import create_quicksettings, page_load
from modules.sumi.frontends.gradio.scripts_ui import outside_the_page
from modules.sumi.frontends.gradio.settings import SettingsTab, create_settings_tab
from modules.sumi.frontends.gradio.train_ui import create_train_tab
from modules.sumi.frontends.gradio.txt2img import Txt2ImgTab, create_txt2img_tab
from modules.sumi.frontends.gradio.ui_config import UiConfig, apply_to_tabs
from modules.sumi.frontends.gradio.ui_defaults import wire_defaults

if TYPE_CHECKING:
    from modules.sumi.app import App

__all__ = ["CSS", "JS", "build_ui"]

T = TypeVar("T")

# Sumi's own tabs: (id, title). Extension tabs may not reuse either.
SUMI_TABS = (
    ("txt2img", "txt2img"),
    ("img2img", "img2img"),
    ("extras", "Extras"),
    ("pnginfo", "PNG Info"),
    ("train", "Train"),
    ("settings", "Settings"),
    ("extensions", "Extensions"),
)

# Tabs whose inputs ui-config.json does not hold (their values live in config.json, as in A1111).
UI_CONFIG_SKIPPED = ("settings", "extensions")


@dataclass
class ExtensionTab:
    blocks: gr.Blocks
    title: str
    elem_id: str
    source: str  # the extension file that registered it


def build_ui(app: App) -> gr.Blocks:
    """The whole page: quick settings and notices on top, then one tab per mode."""
    app.settings.add_extension_options()
    app.queue.owner_of = current_login  # each job remembers the login that asked for it
    PASTE_BUTTONS.reset()  # extensions register "send to txt2img" buttons while their tabs are made
    timed = app.startup_timer.record  # the start-up profile's "create ui/<part>" rows
    with gr.Blocks(title="Sumi", analytics_enabled=False) as demo:
        quick = create_quicksettings(app)
        # every tab's button in the row (wrapping, as A1111's Gradio 3 drew it): with many extension tabs,
        # Gradio 6's default hides the last ones in a "..." menu, where users and page scripts
        # (`#tabs button` lookups) do not find them
        with gr.Tabs(elem_id="tabs", overflow_behavior="wrap") as tabs:
            timed("quicksettings")
            txt2img = _txt2img_tab(app)
            timed("txt2img")
            img2img = _img2img_tab(app)
            timed("img2img")
            extras = _extras_tab(app)
            _pnginfo_tab()
            _merger_tab(app)
            timed("extras, PNG Info, merger")
            _train_tab(app, txt2img)
            timed("train")
            with outside_the_page(), app.startup_timer.subcategory("extension tabs"):
                extension_tabs = collect_extension_tabs(app)  # A1111 calls them here: the tabs above exist
            for tab in extension_tabs:
                _extension_tab(app, tab)
            settings = _settings_tab(app, demo)
            timed("settings")
            _extensions_tab(app, demo)
        _left(tabs, demo)
        create_footer(app)
        for source in (txt2img.results, img2img.results, extras.results):
            wire_send_to(app, tabs, source, img2img)
            wire_send_to_extras(app, tabs, source, extras)
        _connect_paste_buttons(app)
        describe_generate(demo, txt2img, "txt2img")  # A1111's Generate wiring, for Gradio 3 code
        describe_generate(demo, img2img, "img2img")
        ui_config = _apply_ui_config(app, tabs)
        sizes = [(tab.controls["width"], tab.controls["height"]) for tab in (txt2img, img2img)]
        if settings.defaults is not None:
            wire_defaults(settings.defaults, ui_config, sizes, partial(loaded_model_size, app))
        wire_native_size(app, demo, quick, sizes)
        demo.load(
            partial(page_load, app),
            outputs=[quick.checkpoint, quick.notices],
            show_progress="hidden",
            api_visibility="undocumented",
        )
        drop_broken_events(demo.fns, partial(_problem, app))  # before Gradio writes the page's config
    add_a1111_classes(
        demo
    )  # after the `with`: Gradio adds its Forms then (mount_gradio_app writes the config)
    sliders_never_null(demo)
    textboxes_never_null(demo)
    answer_page_loads_directly(demo)
    ui_config.dump_defaults()
    demo.ui_loadsave = ui_config  # type: ignore[attr-defined]  # A1111's name
    timed("wiring")
    return demo


def _left(tabs: gr.Tabs, demo: gr.Blocks) -> None:
    """After the tab bar's `with`: the page again, whatever an extension did to the tab bar meanwhile.

    An extension may add its tab from inside the making of another tab (mov2mov patches Gradio's
    `BlockContext.__init__` and, for the tab `tab_img2img`, enters `tab.parent` - the tab bar, already
    open - to add its own tab next to it, as in A1111). Entering an open layout makes it its own parent
    in Gradio (3 and 6), so leaving the tab bar would leave the page inside it: the components and
    events made after the tabs would land in the tab bar."""
    if tabs.parent is not demo:
        tabs.parent = demo
        set_render_context(demo)


def sliders_never_null(demo: gr.Blocks) -> None:
    """Every slider of the page (Sumi's and the extensions') reads a missing value as its own value, and
    passes a text value on as it is.

    Page scripts of A1111 extensions set a slider's number and range boxes themselves (value, min, max)
    and fire `input` events; in some orders Gradio 6's slider sends `null` for that value. Gradio would
    then fail the whole event ("Could not preprocess input component ... Expected a float"), so the
    Generate of a page with such an extension never ran. Gradio 3 always had a number there.

    An extension may also give a slider a text value (Deforum: `gr.Slider(0, 50, value='0')`); the page
    sends it back as that text until the user moves the slider. Gradio 3's slider handed its value to the
    function unchecked, so the extension got '0' (and reads it with `int()`); Gradio 6 compares it with
    the bounds and fails the whole event ("'<' not supported between instances of 'str' and 'int'")."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Slider) and "preprocess" not in vars(block):
            block.preprocess = partial(_slider_preprocess, block, block.preprocess)  # type: ignore[method-assign]


def textboxes_never_null(demo: gr.Blocks) -> None:
    """Every text box of the page hands an empty text, not None, to the functions it feeds.

    Gradio 6 makes a `gr.Textbox()` without a value with the value None and the page sends null for it
    until the user types; Gradio 3 (A1111) always gave "". Extensions split and strip those values
    (supermerger's merge failed on `None.split` for its empty "Elements" box on a first start)."""
    for block in demo.blocks.values():
        if isinstance(block, gr.Textbox) and "preprocess" not in vars(block):
            block.preprocess = partial(_textbox_preprocess, block.preprocess)  # type: ignore[method-assign]


def _textbox_preprocess(original: Any, payload: Any) -> Any:
    return original("" if payload is None else payload)


def _slider_preprocess(slider: gr.Slider, original: Any, payload: Any) -> Any:
    if payload is None:
        payload = slider.value if isinstance(slider.value, int | float) else slider.minimum
    if isinstance(payload, str):
        return payload
    return original(payload)


def _apply_ui_config(app: App, tabs: gr.Tabs) -> UiConfig:
    """ui-config.json's defaults into every tab's inputs but Settings and Extensions (A1111's rule)."""
    config = UiConfig(app.paths.ui_config_file, app.notice)
    pages = [(t, str(t.id)) for t in tabs.children if isinstance(t, gr.Tab) and t.id not in UI_CONFIG_SKIPPED]
    apply_to_tabs(config, pages, tabs)
    return config


def _problem(app: App, message: str) -> None:
    app.settings.report_extension_problem(message)


def collect_extension_tabs(app: App) -> list[ExtensionTab]:
    """Call every `on_ui_tabs` callback (outside the page's Blocks, as A1111) and check what it gave."""
    registry = app.callbacks
    taken_ids = {tab_id for tab_id, _ in SUMI_TABS}
    taken_titles = {title.lower() for _, title in SUMI_TABS}
    tabs: list[ExtensionTab] = []
    for entry in list(registry.entries["ui_tabs"]):
        source = source_label(app, entry.script)
        try:
            given = entry.callback()
        except Exception as exc:  # recorded with its traceback; the other extensions' tabs still come
            registry.report("ui_tabs", entry, exc)
            _problem(app, f"{source}: on_ui_tabs failed ({type(exc).__name__}: {exc}); its tab is left out")
            continue
        finally:
            app.startup_timer.record(app.script_label(entry.script))
        for item in given or []:
            tab = _checked_tab(app, item, source, taken_ids, taken_titles)
            if tab is not None:
                taken_ids.add(tab.elem_id)
                taken_titles.add(tab.title.lower())
                tabs.append(tab)
    return tabs


def _checked_tab(
    app: App, item: Any, source: str, taken_ids: set[str], taken_titles: set[str]
) -> ExtensionTab | None:
    if not isinstance(item, (tuple, list)) or len(item) not in (2, 3) or not isinstance(item[0], gr.Blocks):
        _problem(app, f"{source}: on_ui_tabs returned {item!r}, not (gr.Blocks, title, elem_id); left out")
        return None
    blocks, title = item[0], str(item[1])
    elem_id = str(item[2]) if len(item) == 3 and item[2] else title.lower().replace(" ", "_")
    if elem_id in taken_ids or title.lower() in taken_titles:
        _problem(
            app,
            f"{source}: a tab with the id {elem_id!r} or the title {title!r} already exists; "
            "this one is left out",
        )
        return None
    return ExtensionTab(blocks, title, elem_id, source)


def _extension_tab(app: App, tab: ExtensionTab) -> None:
    with gr.Tab(tab.title, id=tab.elem_id, elem_id=f"tab_{tab.elem_id}"):
        try:
            tab.blocks.render()
        except Exception as exc:
            _problem(
                app, f"{tab.source}: its tab {tab.title!r} could not be shown ({type(exc).__name__}: {exc})"
            )


def _mode_tab(title: str, tab_id: str, build: Callable[[], T]) -> tuple[gr.Tab, T]:
    """A mode's page built as A1111 builds it: in its own Blocks, which is then placed in its tab.

    An extension that acts when a tab is made finds the mode's components already made, as in A1111:
    mov2mov adds its tab when `tab_img2img` is made and wires its scripts (neutral-prompt's "Apply to
    prompt") to img2img's prompt, which it caught in `on_after_component`."""
    with outside_the_page(), PageSection(analytics_enabled=False) as interface:
        built = build()
    with gr.Tab(title, id=tab_id, elem_id=f"tab_{tab_id}") as tab:
        interface.render()
    return tab, built


def _txt2img_tab(app: App) -> Txt2ImgTab:
    _, tab = _mode_tab("txt2img", "txt2img", partial(create_txt2img_tab, app))
    fields = paste_fields(tab.controls) + hires_ui.paste_fields(tab.controls)  # with the Hires. fix accordion
    PASTE_BUTTONS.add_paste_fields("txt2img", None, fields)
    return tab


def _img2img_tab(app: App) -> Img2ImgTab:
    top, tab = _mode_tab("img2img", "img2img", partial(create_img2img_tab, app))
    top.select(
        partial(image_cfg_visible, app), outputs=tab.controls["image_cfg_scale"], show_progress="hidden"
    )
    fields = paste_fields(tab.controls)
    PASTE_BUTTONS.add_paste_fields("img2img", tab.controls["init_img"], fields)
    PASTE_BUTTONS.add_paste_fields("inpaint", tab.controls["init_img_with_mask"], fields)
    return tab


def _extras_tab(app: App) -> ExtrasTab:
    _, tab = _mode_tab("Extras", "extras", partial(create_extras_tab, app))
    PASTE_BUTTONS.add_paste_fields("extras", tab.controls["image"], None)
    return tab


def _pnginfo_tab() -> None:
    _mode_tab("PNG Info", "pnginfo", create_pnginfo_tab)


def paste_fields(c: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(component, infotext key) pairs of a tab's controls `c` (txt2img's or img2img's), A1111's names
    (its `txt2img_paste_fields` / `img2img_paste_fields`), for extensions' paste buttons."""
    keys = {
        "prompt": "Prompt",
        "negative_prompt": "Negative prompt",
        "steps": "Steps",
        "sampler_name": "Sampler",
        "scheduler": "Schedule type",
        "cfg_scale": "CFG scale",
        "seed": "Seed",
        "width": "Size-1",
        "height": "Size-2",
        "batch_size": "Batch size",
        "subseed": "Variation seed",
        "subseed_strength": "Variation seed strength",
        "seed_resize_from_w": "Seed resize from-1",
        "seed_resize_from_h": "Seed resize from-2",
        # img2img only
        "image_cfg_scale": "Image CFG scale",
        "denoising_strength": "Denoising strength",
        "mask_blur": "Mask blur",
        "inpainting_mask_invert": "Mask mode",
        "inpainting_fill": "Masked content",
        "resize_mode": "Resize mode",
        "inpaint_full_res": "Inpaint area",
        "inpaint_full_res_padding": "Masked area padding",
    }
    fields: list[tuple[Any, Any]] = [(c[name], key) for name, key in keys.items() if name in c]
    if "seed_enable_extras" in c:
        fields.append((c["seed_enable_extras"], lambda d: "Variation seed" in d or "Seed resize from-1" in d))
    return fields


def _connect_paste_buttons(app: App) -> None:
    try:
        PASTE_BUTTONS.connect(
            announcing_parser(app.options, app.callbacks), readable_roots(app.paths.outputs_dir)
        )
    except Exception as exc:  # an extension's button wired to something odd must not stop the page
        _problem(app, f"Could not connect an extension's paste button ({type(exc).__name__}: {exc})")


def _merger_tab(app: App) -> None:
    _mode_tab("Checkpoint Merger", "modelmerger", partial(create_merger_tab, app))


def _train_tab(app: App, txt2img: Txt2ImgTab) -> None:
    _mode_tab("Train", "train", partial(create_train_tab, app, txt2img.controls))


def _settings_tab(app: App, demo: gr.Blocks) -> SettingsTab:
    with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
        return create_settings_tab(app, demo)


def _extensions_tab(app: App, demo: gr.Blocks) -> None:
    with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
        create_extensions_tab(app, demo)
