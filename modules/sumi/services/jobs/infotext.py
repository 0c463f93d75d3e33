"""Infotext: the generation parameters text A1111 writes into images, and reads back (PNG Info, paste).

Layout (A1111 §8.1)::

    <prompt, may span lines>
    Negative prompt: <negative prompt, may span lines>      (omitted when empty)
    Steps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1, Size: 512x512, ...

Other tools (civitai, PNG Info readers) parse this text with A1111's rules, so the writer keeps
A1111's key order and quoting. Sumi quotes a few more values than A1111 (leading/trailing spaces,
a leading double quote) so that every value survives a round trip; A1111 reads those back fine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from modules.sumi.services.settings.secrets import is_secret_name

# Keys in the order A1111 writes them; `extra_generation_params` follow, then TRAILING_KEYS.
PARAM_ORDER: list[str] = [
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Image CFG scale",
    "Seed",
    "Face restoration",
    "Size",
    "Model hash",
    "Model",
    "FP8 weight",
    "Cache FP16 weight for LoRA",
    "VAE hash",
    "VAE",
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "Denoising strength",
    "Conditional mask weight",
    "Clip skip",
    "ENSD",
    "Token merging ratio",
    "Token merging ratio hr",
    "Init image hash",
    "RNG",
    "Tiling",
]
TRAILING_KEYS: list[str] = ["Version", "User"]

NEGATIVE_PREFIX = "Negative prompt:"


def _json_object(depth: int) -> str:
    """A JSON object holding objects up to `depth` levels deep (Python's re has no recursion)."""
    inner = r'(?:[^{}"]|"(?:\\.|[^\\"])*")'
    pattern = rf"\{{{inner}*\}}"
    for _ in range(depth - 1):
        pattern = rf"\{{(?:{inner}|{pattern})*\}}"
    return pattern


# A value is a quoted string, a JSON object (what A1111 writes for a dict, e.g. Tiled Diffusion's settings
# with its regions, three levels deep), or anything up to the next comma.
RE_PARAM = re.compile(rf'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|{_json_object(4)}|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
RE_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?")

# Defaults added by the parser for keys an infotext leaves out (A1111 §8.4); all values are strings.
PARSE_DEFAULTS: dict[str, str] = {
    "Clip skip": "1",
    "Hires resize-1": "0",
    "Hires resize-2": "0",
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": "32",
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": "0",
    "Schedule min sigma": "0",
    "Schedule rho": "0",
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
    "Refiner switch by sampling steps": "False",
}


# --- writing ---------------------------------------------------------------------------------------


def quote(value: object) -> str:
    """A value as written after `Key: `: JSON-quoted when it would otherwise not parse back; a dict or
    list as JSON (A1111's quote dumps the value itself)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    if "," in text or ":" in text or "\n" in text or text != text.strip() or text.startswith('"'):
        return json.dumps(text, ensure_ascii=False)
    return text


def unquote(text: str) -> str:
    """Undo `quote`: a JSON string literal becomes its text; anything else is returned as is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def params_line(params: Mapping[str, object]) -> str:
    """`Key: value, ...` over the non-None values; a value equal to its key is written as the key alone."""
    return ", ".join(k if k == v else f"{k}: {quote(v)}" for k, v in params.items() if v is not None)


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """The full infotext for one image (A1111's `create_infotext` layout). A parameter whose name says
    it holds a secret ("API key", "Token"...; an extension's `extra_generation_params`) is left out:
    infotexts travel with the images."""
    params = {k: v for k, v in params.items() if not is_secret_name(re.sub(r"\W+", "_", k.strip()))}
    negative = f"\n{NEGATIVE_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{params_line(params)}".strip()


def ordered_params(
    base: Mapping[str, object], extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """Merge fixed parameters and `extra_generation_params` in A1111's order.

    Known keys (PARAM_ORDER) come first, then other `base` keys, then `extra` in insertion order
    (an `extra` key already placed keeps its place and takes the new value), then Version and User.
    """
    extra = extra or {}
    result: dict[str, object] = {k: base[k] for k in PARAM_ORDER if k in base}
    result.update((k, v) for k, v in base.items() if k not in result and k not in TRAILING_KEYS)
    result.update((k, v) for k, v in extra.items() if k not in TRAILING_KEYS)
    for key in TRAILING_KEYS:
        if key in base:
            result[key] = base[key]
        elif key in extra:
            result[key] = extra[key]
    return result


# --- reading ---------------------------------------------------------------------------------------


def is_params_line(line: str) -> bool:
    """A1111's test for the last line: it holds parameters only if at least 3 `Key: value` pairs match."""
    return len(RE_PARAM.findall(line)) >= 3


def split_infotext(text: str) -> tuple[str, str, str]:
    """(prompt, negative prompt, parameter line) of an infotext."""
    *lines, last = text.strip().split("\n")
    if not is_params_line(last):
        lines.append(last)
        last = ""
    prompt = negative = ""
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(NEGATIVE_PREFIX):  # A1111 strips the prefix from every such line
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        if in_negative:
            negative = _append_line(negative, line)
        else:
            prompt = _append_line(prompt, line)
    return prompt, negative, last


def _append_line(text: str, line: str) -> str:
    """A1111's accumulation: no newline is added while the text is still empty."""
    return line if text == "" else f"{text}\n{line}"


def parse_params_line(line: str) -> dict[str, str]:
    """`Key: value` pairs of a parameter line; `WxH` values become `Key-1`/`Key-2`."""
    res: dict[str, str] = {}
    for key, raw in RE_PARAM.findall(line):
        value = unquote(raw)
        size = RE_IMAGESIZE.match(value)
        if size:
            res[f"{key}-1"], res[f"{key}-2"] = size.group(1), size.group(2)
        else:
            res[key] = value
    return res


def parse_infotext(
    text: str, skip_fields: Iterable[str] = (), auto_backcompat: bool = True
) -> dict[str, str]:
    """A1111's `parse_generation_parameters`: `Prompt`, `Negative prompt`, every parameter, and defaults.

    All values are strings. `skip_fields` (opt `infotext_skip_pasting`) are dropped at the end;
    `auto_backcompat` (opt of the same name) adds the flags that reproduce older A1111 versions.
    """
    prompt, negative, last = split_infotext(text)
    res: dict[str, str] = {"Prompt": prompt, "Negative prompt": negative}
    res.update(parse_params_line(last))
    hypernet = res.get("Hypernet")
    if hypernet is not None:
        res["Prompt"] += f"<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
    for key, value in PARSE_DEFAULTS.items():
        res.setdefault(key, value)
    if res["FP8 weight"] != "Disable":
        res.setdefault("Cache FP16 weight for LoRA", "False")
    if "Emphasis" not in res and (uses_emphasis(prompt) or uses_emphasis(negative)):
        res["Emphasis"] = "Original"
    if auto_backcompat:
        _backcompat(res)
    for key in skip_fields:
        res.pop(key, None)
    return res


_RE_WEIGHT_ONE = re.compile(r":\s*1(?:\.0*)?\s*$")


def uses_emphasis(prompt: str) -> bool:
    """Whether a prompt has attention syntax that changes a weight: `(x)`, `[x]` or `(x:w)` with w != 1.

    A cheap stand-in for running the prompt parser; only decides whether to add `Emphasis: Original`.
    """
    depth_stack: list[tuple[str, int]] = []
    escaped = False
    for i, ch in enumerate(prompt):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "([":
            depth_stack.append((ch, i))
        elif ch in ")]" and depth_stack and depth_stack[-1][0] == "(["[ch == "]"]:
            _, start = depth_stack.pop()
            if ch == "]" or not _RE_WEIGHT_ONE.search(prompt[start + 1 : i]):
                return True
    return False


def parse_version(text: str | None) -> tuple[int, int, int, int] | None:
    """`v1.7.0-225-gabc` -> (1, 7, 0, 225); None when there is no version."""
    m = RE_VERSION.match(text or "")
    if m is None:
        return None
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def _backcompat(res: dict[str, str]) -> None:
    """Flags that make images from older A1111 versions reproduce (infotext_versions.backcompat)."""
    ver = parse_version(res.get("Version"))
    if ver is None:
        return
    if ver < (1, 6, 0, 0) and "[" in res.get("Prompt", ""):
        res["Old prompt editing timelines"] = "True"
    if ver < (1, 6, 0, 0) and res.get("Sampler", "") in ("DDIM", "PLMS"):
        res["Pad conds v0"] = "True"
    if ver < (1, 7, 0, 225):
        res["Downcast alphas_cumprod"] = "True"
    if ver < (1, 8, 0, 0) and res.get("Refiner"):
        res["Refiner switch by sampling steps"] = "True"


def infotext_to_setting_values(
    params: Mapping[str, str], infotext_labels: Mapping[str, str]
) -> dict[str, str]:
    """Settings named in an infotext: {option key: text value} for each option whose `infotext` label appears.

    `infotext_labels` maps an option key to its OptionInfo.infotext (e.g. "CLIP_stop_at_last_layers" -> "Clip skip").
    """
    return {key: params[label] for key, label in infotext_labels.items() if label in params}
