"""`make demo`: build the small real model (s3-smol), feed it the synthetic dataset, and ask it questions.

SmolLM2-135M-Instruct answers a text question from its real weights (the S3 layout is new to it, so the
text question uses the backbone's own chat template). Then a synthetic dataset of coloured shapes and
beeps (``zoo.data.synthetic``) goes through the data loader exactly as training would read it, and two
held-out questions whose answers are only in the media are asked. Images go through CLIP (random init: no
CLIP weights exist offline) and audio through the real Whisper tiny.en encoder; the projectors are
untrained until the training issue lands, so those answers show the wiring, not understanding.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

RECIPE = "s3-smol"
TEXT_QUESTION = "What is the capital of France?"
EXPECTED = "paris"


def _ask(model: object, processor: object, messages: list[dict]) -> tuple[str, float]:
    from zoo.chat import reply

    start = time.perf_counter()
    answer = reply(model, processor, messages, max_new_tokens=24)
    return " ".join(answer.split()), time.perf_counter() - start


def _text_question(model: object) -> tuple[str, bool]:
    """Ask the backbone a text question in its own chat template (it was never trained on S3's)."""
    import torch

    tokenizer = model.backbone.tokenizer
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": TEXT_QUESTION}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        out = model.backbone.model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    return " ".join(answer.split()), EXPECTED in answer.lower()


def _load_synthetic(processor: object, root: Path) -> dict:
    """Write the synthetic dataset and read it through the training loader; print what came out."""
    from zoo.data import Mixture, make_loader
    from zoo.data.synthetic import make_synthetic_dataset

    paths = make_synthetic_dataset(root, n_train=8, n_test=4, modalities=("image", "audio"), seed=0)
    mixture = Mixture.from_dict(
        {"datasets": [{"name": "synthetic", "path": str(paths["train"]), "format": "s3"}]}
    )
    start = time.perf_counter()
    loader = make_loader(processor, mixture, batch_size=4, output_dir=root)
    shapes = [tuple(batch["input_ids"].shape) for batch in loader]
    print(
        f"[data]  {loader.used} training samples in {len(shapes)} batches {shapes} through the loader "
        f"({time.perf_counter() - start:.1f} s, {len(loader.ledger)} skipped)"
    )
    return paths


def main() -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: the one-time GGUF conversion's bar
    from transformers.utils import logging as transformers_logging

    from zoo import ZooProcessor, build
    from zoo.data import READERS
    from zoo.data.readers import Context
    from zoo.summary import format_table

    transformers_logging.disable_progress_bar()
    print(f"Building {RECIPE!r} (the first run converts the GGUF and CTranslate2 weights once, ~30 s)...")

    import torch

    torch.manual_seed(0)  # the new token rows and the projectors start random: same demo every run
    start = time.perf_counter()
    model = build(RECIPE).eval()
    processor = ZooProcessor.from_model(model)
    print(f"Built {RECIPE!r} in {time.perf_counter() - start:.1f} s\n")
    print(format_table(model), "\n")

    answer, correct = _text_question(model)
    print(f"[text]  Q: {TEXT_QUESTION}\n        A: {answer}  ({'correct' if correct else 'WRONG'})")

    with tempfile.TemporaryDirectory() as tmp:
        paths = _load_synthetic(processor, Path(tmp))
        untrained = "(projector untrained: this shows the wiring, not understanding)"
        for index, line in enumerate(Path(paths["test"]).read_text().splitlines()[:2]):
            sample = READERS["s3"](json.loads(line), Context("synthetic", index, media_root=Path(tmp)))
            question, truth = sample.messages[:-1], sample.messages[-1]["content"]
            kind = question[0]["type"]
            answer, seconds = _ask(model, processor, question)
            print(
                f"[{kind}] Q: {question[-1]['content']} (truth: {truth})\n"
                f"        A: {answer}  ({seconds:.1f} s) {untrained}"
            )
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
