"""Extension code's `import pydantic`: models written for A1111 1.10 (pydantic 1) define, validate and
serve on pydantic 2 (agent-scheduler's task models: `Model.__config__`, Optional fields with no default)."""

from __future__ import annotations

import warnings

import pydantic
import pytest

from modules.sumi.frontends.http import pydantic1_compat
from modules.sumi.services.scripts.callbacks import CallbackRegistry
from modules.sumi.services.scripts.loading import ScriptService
from tests.fixtures.files import write_files

EXTENSION = {
    "scripts/main.py": """
        from typing import Optional, Dict, Any
        from pydantic import BaseModel, Field
        from modules.api.models import StableDiffusionTxt2ImgProcessingAPI

        class TaskModel(BaseModel):
            id: str = Field(title="Task Id")
            name: Optional[str] = Field(title="Task Name")
            position: Optional[int] = Field(title="Task Position")
            bookmarked: Optional[bool]
            params: Dict[str, Any] = Field(title="Task Parameters")

        class Task(TaskModel):
            script_params: bytes = None

            class Config(TaskModel.__config__):
                exclude = ["script_params"]

        class TaskArgs(StableDiffusionTxt2ImgProcessingAPI):
            checkpoint: Optional[str] = Field(None, title="Custom checkpoint.")

        def is_model(value):
            return isinstance(value, BaseModel)
    """,
}


@pytest.fixture
def module(tmp_path):
    folder = write_files(tmp_path / "my-ext", EXTENSION)
    service = ScriptService(callbacks=CallbackRegistry(), repo_root=tmp_path / "repo")
    pydantic1_compat.install(service)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydantic 2 warns about class-based Config
            loaded = service._import(folder / "scripts" / "main.py", str(folder))
        assert loaded is not None, service.errors.items
        yield loaded
    finally:
        service.close()


def test_an_optional_field_without_a_default_defaults_to_none_as_in_pydantic1(module):
    task = module.Task(id="a", params={"prompt": "x"})
    assert (task.name, task.position, task.bookmarked, task.script_params) == (None, None, None, None)
    with pytest.raises(pydantic.ValidationError):
        module.Task(name="no id or params")  # non-Optional fields stay required


def test_every_extension_model_has_a_pydantic1_config_to_subclass(module):
    assert isinstance(module.TaskModel.__config__, type)
    assert module.TaskArgs(prompt="p", checkpoint="c").checkpoint == "c"


def test_isinstance_of_the_extensions_basemodel_holds_for_any_pydantic_model(module):
    assert module.is_model(module.TaskArgs(prompt="p"))
    assert module.is_model(module.Task(id="a", params={}))
    assert not module.is_model({"id": "a"})


def test_code_outside_extension_folders_keeps_pydantic2_rules():
    class Plain(pydantic.BaseModel):
        name: str | None = pydantic.Field(title="Name")

    with pytest.raises(pydantic.ValidationError):
        Plain()
    assert not hasattr(pydantic.BaseModel, "__config__")
