"""lmms-eval model plugin for zoo: `lmms-eval --model zoo --model_args pretrained=DIR --tasks ...`.

The ``lmms_eval.models`` entry point names ``manifest``; lmms-eval calls it to learn where the model class
lives, and imports ``zoo_lmms_eval.model`` (torch, zoo) only when ``--model zoo`` is asked for.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "zoo"
CLASS_PATH = "zoo_lmms_eval.model.ZooLMMS"


def manifest() -> Any:
    """lmms-eval's registration payload for ``--model zoo``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=CLASS_PATH, aliases=("zoo_lmm",))
