"""lmms-eval task functions for the zoo synthetic shapes/beeps data (local files, nothing downloaded)."""

from pathlib import Path

from PIL import Image

ROOT = Path(__file__).parent


def doc_to_visual(doc):
    path = Path(doc["media"])
    if path.suffix == ".wav":
        return [str(path)]
    return [Image.open(path).convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]


def doc_to_choice(doc):
    return doc["options"]


def doc_to_target_index(doc):
    return doc["options"].index(doc["answer"])
