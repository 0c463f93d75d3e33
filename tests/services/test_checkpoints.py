import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from modules.sumi.services.models.checkpoints import CheckpointRegistry, VaeRegistry, natural_sort_key
from modules.sumi.services.models.hashing import HashCache, legacy_model_hash, sha256_file

DEEP = b"deep" * 300_000  # past 1 MiB, so its legacy hash differs from the tiny files


def write(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def models(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    write(sd / "model10.safetensors", b"ten")
    write(sd / "model2.ckpt", b"two")
    write(sd / "sub" / "deep.safetensors", DEEP)
    write(sd / "model2.vae.safetensors", b"vae")
    write(sd / "model2.yaml", b"config")
    write(sd / "notes.txt", b"")
    return tmp_path


def registry(tmp_path, **kw) -> CheckpointRegistry:
    cache = HashCache(tmp_path / "cache.json")
    return CheckpointRegistry([tmp_path / "models" / "Stable-diffusion"], cache, **kw)


# --- hashing ---------------------------------------------------------------------------------------


def test_sha256_file_and_legacy_hash(tmp_path):
    data = bytes(range(256)) * 8192  # 2 MiB
    path = write(tmp_path / "f.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert legacy_model_hash(path) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_hash_cache_layout_and_invalidation(tmp_path):
    path = write(tmp_path / "m.safetensors", b"abc")
    cache = HashCache(tmp_path / "cache.json")
    assert cache.cached(path, "checkpoint/m.safetensors") is None
    digest = cache.sha256(path, "checkpoint/m.safetensors")
    entry = json.loads((tmp_path / "cache.json").read_text())["hashes"]["checkpoint/m.safetensors"]
    assert entry == {"mtime": os.stat(path).st_mtime, "sha256": digest, "size": 3}
    assert HashCache(tmp_path / "cache.json").cached(path, "checkpoint/m.safetensors") == digest
    path.write_bytes(b"abcd")
    os.utime(path, (1, entry["mtime"]))  # same mtime, new size
    assert cache.cached(path, "checkpoint/m.safetensors") is None
    assert cache.sha256(path, "checkpoint/m.safetensors") == hashlib.sha256(b"abcd").hexdigest()


def test_hash_cache_reads_a1111_entries_without_size(tmp_path):
    path = write(tmp_path / "m.safetensors")
    mtime = os.stat(path).st_mtime
    (tmp_path / "cache.json").write_text(
        json.dumps({"hashes": {"checkpoint/m": {"mtime": mtime, "sha256": "ab" * 32}}})
    )
    assert HashCache(tmp_path / "cache.json").cached(path, "checkpoint/m") == "ab" * 32


def test_hash_cache_keeps_other_sections_and_survives_corruption(tmp_path):
    cache_file = tmp_path / "cache.json"
    cache_file.write_text(json.dumps({"safetensors-metadata": {"x": 1}}))
    path = write(tmp_path / "m")
    HashCache(cache_file).sha256(path, "k")
    assert json.loads(cache_file.read_text())["safetensors-metadata"] == {"x": 1}
    cache_file.write_text("garbage")
    assert HashCache(cache_file).sha256(path, "k") == hashlib.sha256(b"weights").hexdigest()
    assert (tmp_path / "cache.json.corrupt").read_text() == "garbage"


def test_hash_cache_is_thread_safe(tmp_path):
    cache = HashCache(tmp_path / "cache.json")
    files = [write(tmp_path / f"f{i}", str(i).encode()) for i in range(16)]
    threads = [threading.Thread(target=cache.sha256, args=(f, f"checkpoint/{f.name}")) for f in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(json.loads((tmp_path / "cache.json").read_text())["hashes"]) == 16


# --- checkpoints -----------------------------------------------------------------------------------


def test_scan_names_and_order(models):
    infos = registry(models).list()
    assert [i.name for i in infos] == ["model2.ckpt", "model10.safetensors", "sub/deep.safetensors"]
    deep = infos[2]
    assert deep.name_for_extra == "deep" and deep.model_name == "sub_deep"
    assert deep.title == "sub/deep.safetensors" and deep.hash is None and deep.short_title == "deep"


def test_calculate_hash_updates_title(models):
    reg = registry(models)
    info = reg.get("sub/deep.safetensors")
    short = info.calculate_hash()
    assert short == hashlib.sha256(DEEP).hexdigest()[:10] == info.hash == info.shorthash
    assert info.title == f"sub/deep.safetensors [{short}]" and info.short_title == f"deep [{short}]"
    assert reg.get(info.title) is info
    # a new registry picks the hash up from cache.json without reading the file
    assert registry(models).get("sub/deep.safetensors").hash == short


def test_no_hashing(models):
    info = registry(models, no_hashing=True).list()[0]
    assert info.calculate_hash() is None and info.title == info.name


@pytest.mark.parametrize(
    "alias",
    ["sub/deep.safetensors", "sub_deep", "deep", "LEGACY", "sub/deep.safetensors [LEGACY]", "SHORT", "SHA",
     "sub/deep.safetensors [SHORT]", "deep [SHORT]", "sub/deep.safetensors [0123456789]", "sub\\deep.safetensors", "ee"],
)  # fmt: skip
def test_match_aliases(models, alias):
    reg = registry(models)
    info = reg.get("sub/deep.safetensors")
    info.calculate_hash()
    alias = alias.replace("LEGACY", info.legacy_hash).replace("SHORT", info.hash).replace("SHA", info.sha256)
    assert reg.match(alias) is info


def test_match_prefers_shortest_title_and_misses(models):
    reg = registry(models)
    assert reg.match("model").name == "model2.ckpt"
    assert reg.match("nothing here") is None
    assert reg.match("") is None and reg.match(None) is None


@pytest.mark.parametrize(
    "alias",
    ["sub/deep.safetensors", "sub_deep", "deep", "LEGACY", "sub/deep.safetensors [LEGACY]", "SHORT", "SHA",
     "sub/deep.safetensors [SHORT]", "deep [SHORT]", "sub\\deep.safetensors"],
)  # fmt: skip
def test_lookup_finds_a_checkpoint_by_an_exact_alias(models, alias):
    reg = registry(models)
    info = reg.get("sub/deep.safetensors")
    info.calculate_hash()
    alias = alias.replace("LEGACY", info.legacy_hash).replace("SHORT", info.hash).replace("SHA", info.sha256)
    assert reg.lookup(alias) is info


@pytest.mark.parametrize(
    "part", [".", "e", "model", "safetensors", "deep.safe", "sub/deep.safetensors [0123456789]"]
)
def test_lookup_never_takes_a_part_of_a_name(models, part):
    """What the settings accept for sd_model_checkpoint: `"."` no longer picks some checkpoint."""
    assert registry(models).lookup(part) is None


def test_refresh_and_extra_file(models, tmp_path):
    reg = registry(models)
    write(models / "models" / "Stable-diffusion" / "new.safetensors")
    assert reg.get("new.safetensors") is None
    reg.refresh()
    assert reg.get("new.safetensors") is not None
    outside = write(tmp_path / "elsewhere" / "solo.ckpt")
    reg2 = CheckpointRegistry([models / "models" / "Stable-diffusion"], extra_files=[outside])
    assert reg2.get("solo.ckpt").filename == str(outside)
    other = write(tmp_path / "elsewhere" / "other.safetensors")
    assert reg.add_file(other).name == "other.safetensors" and reg.get("other.safetensors") is not None
    assert reg.add_file(tmp_path / "missing.ckpt") is None
    inside = models / "models" / "Stable-diffusion" / "sub" / "deep.safetensors"
    assert reg.add_file(inside).name == "sub/deep.safetensors"  # already listed under its folder name


def test_extra_ckpt_dir_and_missing_dir(models, tmp_path):
    other = tmp_path / "other"
    write(other / "x.safetensors")
    reg = CheckpointRegistry([models / "models" / "Stable-diffusion", other, tmp_path / "missing"])
    assert "x.safetensors" in [i.name for i in reg.list()]


def test_config_yaml_for(models):
    reg = registry(models)
    assert reg.config_yaml_for(reg.get("model2.ckpt")).name == "model2.yaml"
    assert reg.config_yaml_for(reg.get("model10.safetensors")) is None


def test_natural_sort_key():
    assert sorted(["b10", "B2", "a"], key=natural_sort_key) == ["a", "B2", "b10"]


# --- VAE -------------------------------------------------------------------------------------------


@pytest.fixture
def vaes(models):
    vae_dir = models / "models" / "VAE"
    write(vae_dir / "kl-f8.safetensors")
    write(vae_dir / "model10.pt")
    write(vae_dir / "sdxl_vae.safetensors")
    return VaeRegistry([vae_dir], [models / "models" / "Stable-diffusion"])


def test_vae_listing(vaes):
    assert list(vaes.files()) == [
        "kl-f8.safetensors",
        "model2.vae.safetensors",
        "model10.pt",
        "sdxl_vae.safetensors",
    ]
    assert vaes.names()[:2] == ["Automatic", "None"]


def test_vae_resolution(models, vaes):
    reg = registry(models)
    model2, model10, deep = (
        reg.get("model2.ckpt"),
        reg.get("model10.safetensors"),
        reg.get("sub/deep.safetensors"),
    )
    assert vaes.resolve(model2, "Automatic").name == "model2.vae.safetensors"
    assert vaes.resolve(model10, "Automatic").name == "model10.pt"
    assert vaes.resolve(deep, "Automatic") is None
    assert vaes.resolve(model2, "None") is None
    assert vaes.resolve(model2, "kl-f8.safetensors").name == "kl-f8.safetensors"
    # without the override the checkpoint's own VAE wins over the setting
    assert (
        vaes.resolve(model2, "kl-f8.safetensors", overrides_per_model_preferences=False).name
        == "model2.vae.safetensors"
    )
    assert (
        vaes.resolve(deep, "kl-f8.safetensors", overrides_per_model_preferences=False).name
        == "kl-f8.safetensors"
    )
    assert vaes.resolve(model2, "Automatic", user_metadata_vae="None") is None
    with pytest.raises(ValueError, match="kl-f8.safetensors"):
        vaes.resolve(model2, "missing.pt")


def test_vae_near_checkpoint_needs_a_word_boundary(tmp_path, vaes):
    assert vaes.find_near_checkpoint(tmp_path / "sd.safetensors") is None  # A1111 would pick sdxl_vae
    assert vaes.find_near_checkpoint(tmp_path / "sdxl.safetensors").name == "sdxl_vae.safetensors"


def test_forced_vae_path(models, tmp_path):
    forced = write(tmp_path / "forced.pt")
    vaes = VaeRegistry([], forced_path=forced)
    assert vaes.resolve(None, "None") == forced.resolve()


def test_vae_short_hash(tmp_path):
    path = write(tmp_path / "v.pt", b"vae")
    vaes = VaeRegistry([tmp_path], hash_cache=HashCache(tmp_path / "cache.json"))
    assert vaes.short_hash(path) == hashlib.sha256(b"vae").hexdigest()[:10]


def test_list_hidden_files_decides_at_each_scan_whether_dot_folders_are_read(
    make_app, tmp_path, tiny_sd1_ckpt
):
    """A1111's "Load models/files in hidden directories": checkpoints, VAEs, LoRAs, hypernetworks and
    ControlNets in a folder (or file) whose name starts with "." are listed only while it is on."""
    models = tmp_path / "models"
    for place in ("Stable-diffusion/.old/hidden.safetensors", "Stable-diffusion/shown.safetensors"):
        (models / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_sd1_ckpt[0], models / place)
    for place in (
        "Lora/.wip/secret_lora.safetensors",
        "VAE/.x/hidden_vae.safetensors",
        "ControlNet/.x/cn.pth",
    ):
        (models / place).parent.mkdir(parents=True, exist_ok=True)
        (models / place).write_bytes(b"not read here")
    app = make_app(tmp_path, start=False)
    assert {i.name for i in app.checkpoints.list()} == {".old/hidden.safetensors", "shown.safetensors"}
    assert "secret_lora" in _names(app.loras) and "hidden_vae.safetensors" in app.vaes.names()
    assert [f for f in app.controlnet.models.list() if "cn" in f.name]
    app.options.data["list_hidden_files"] = False
    app.models.refresh(), app.loras.refresh(), app.controlnet.models.refresh()
    assert [i.name for i in app.checkpoints.list()] == ["shown.safetensors"]
    assert "secret_lora" not in _names(app.loras) and "hidden_vae.safetensors" not in app.vaes.names()
    assert not [f for f in app.controlnet.models.list() if "cn" in f.name]


def _names(registry) -> list[str]:
    return [info.name for info in registry.list()]
