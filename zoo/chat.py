"""Answering questions with a composed model: one reply for a conversation, and the `zoo chat` loop."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import torch


def load_model(target: str) -> Any:
    """A model from a recipe name / YAML path, a folder written by ``save_pretrained``, or a Hub repo id
    (``org/name``, pulled through ``zoo.hub``; a registered recipe of that name wins)."""
    from zoo.hub.pull import is_repo_id
    from zoo.modeling import ZooModel
    from zoo.recipes_api import build
    from zoo.registry import get_registry

    path = Path(target)
    if path.is_dir() and (path / "config.json").exists():
        return ZooModel.from_pretrained(path)
    recipes = {entry.name for entry in get_registry().list_components("recipe")}
    if target not in recipes and is_repo_id(target):
        return ZooModel.from_pretrained(target)
    return build(target)


def reply(model: Any, processor: Any, conversation: list[dict], max_new_tokens: int = 64) -> str:
    """Greedy answer of the assistant to ``conversation`` (media spliced once, then the KV cache)."""
    inputs = processor(conversation, add_generation_prompt=True)
    inputs.pop("labels")
    model.eval()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return processor.decode(output[0, inputs["input_ids"].shape[1] :]).strip()


def media_messages(
    image: str | None = None, audio: str | None = None, video: str | None = None
) -> list[dict]:
    """User messages carrying the media files given on the command line."""
    given = {"image": image, "audio": audio, "video": video}
    return [{"role": "user", "type": kind, "content": path} for kind, path in given.items() if path]


def chat_loop(
    model: Any,
    processor: Any,
    media: list[dict],
    prompt: str | None = None,
    max_new_tokens: int = 64,
    stream_in: TextIO | None = None,
    stream_out: TextIO | None = None,
) -> None:
    """Answer ``prompt`` once, or read questions line by line until EOF; media go with the first turn."""
    stream_in, stream_out = stream_in or sys.stdin, stream_out or sys.stdout
    history: list[dict] = list(media)
    questions = [prompt] if prompt is not None else (line.strip() for line in stream_in)
    for question in questions:
        if not question:
            continue
        history.append({"role": "user", "type": "text", "content": question})
        answer = reply(model, processor, history, max_new_tokens=max_new_tokens)
        history.append({"role": "assistant", "type": "text", "content": answer})
        print(answer, file=stream_out, flush=True)
