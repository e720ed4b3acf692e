"""`make demo`: a small real multimodal model learns to answer questions about images and audio, on a CPU.

1. Build ``s3-smol-dinov2`` (SmolLM2-135M-Instruct, pretrained DINOv2 ViT-S/14 and Whisper tiny.en, all
   from weights that ship in packages) and check that the backbone answers a text question.
2. Write the synthetic dataset (``zoo.data.synthetic``: coloured shapes, beep clips; the answers are only
   in the media and balanced, so guessing scores the chance rate).
3. Score the model's own greedy answers on the held-out questions, per kind, before training.
4. Train the recipe's stage on the training split, with the frozen encoders' outputs cached
   (``zoo.training.feature_cache``: each image and clip is encoded once, not once per epoch).
5. Score again, then answer one new picture and one new clip.

Training goes through ``zoo.train`` and scoring through ``zoo.evaluate`` when those are installed (the
training and evaluation packages); without them the same stage is trained with transformers' ``Trainer``
and the answers are scored here with the same exact-match rule.
"""

from __future__ import annotations

import json
import os
import string
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

RECIPE = "s3-smol-dinov2"
TEXT_QUESTION = "What is the capital of France?"
EXPECTED = "paris"
N_TRAIN, N_TEST = 240, 48  # half images (colour and shape questions), half beep clips
TRAIN_STEPS, BATCH = 90, 8  # 3 passes over the training split
SEED = 0


def _text_question(model: Any) -> tuple[str, bool]:
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


def _questions(path: Path) -> list[tuple[Any, str, str]]:
    """(sample read by the S3 reader, question kind, true answer) for each record of a synthetic split."""
    from zoo.data import READERS
    from zoo.data.readers import Context

    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        (
            READERS["s3"](r, Context("synthetic", i, media_root=path.parent)),
            r["meta"]["task"],
            r["meta"]["answer"],
        )
        for i, r in enumerate(records)
    ]


def chance_rates(path: Path) -> dict[str, float]:
    """Per question kind, the accuracy of always giving that kind's commonest answer."""
    answers: dict[str, list[str]] = defaultdict(list)
    for _, kind, answer in _questions(path):
        answers[kind].append(answer)
    return {kind: max(map(got.count, set(got))) / len(got) for kind, got in answers.items()}


def normalise(answer: str) -> str:
    return answer.strip().lower().strip(string.punctuation + " ")


def accuracy(model: Any, processor: Any, path: Path) -> dict[str, float]:
    """Exact-match accuracy of the model's greedy answers per question kind (``zoo.evaluate`` if present)."""
    try:
        from zoo.evaluation import evaluate
    except ImportError:
        evaluate = None
    if evaluate is not None:
        result = evaluate(model, path, ["exact_match"], batch_size=16, max_new_tokens=8, progress=False)
        return {kind: scores["exact_match"] for kind, scores in result.scores["by_task"].items()}
    return _greedy_accuracy(model, processor, _questions(path))


def _greedy_accuracy(model: Any, processor: Any, questions: list, batch_size: int = 16) -> dict[str, float]:
    import torch

    model.eval()
    hits: dict[str, list[bool]] = defaultdict(list)
    for start in range(0, len(questions), batch_size):
        chunk = questions[start : start + batch_size]
        inputs = processor([sample.messages[:-1] for sample, _, _ in chunk], add_generation_prompt=True)
        inputs.pop("labels")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        for (_, kind, truth), ids in zip(chunk, out[:, inputs["input_ids"].shape[1] :], strict=True):
            hits[kind].append(normalise(processor.decode(ids)) == normalise(truth))
    return {kind: sum(got) / len(got) for kind, got in hits.items()}


def train(model: Any, processor: Any, train_path: Path, output_dir: Path) -> Any:
    """Train the recipe's stage on ``train_path`` and return the trained model (``zoo.train`` if present)."""
    try:
        from zoo.training import train as zoo_train
    except ImportError:
        zoo_train = None
    if zoo_train is not None:
        import zoo

        zoo_train(
            RECIPE,
            train_path,
            output_dir,
            max_steps=TRAIN_STEPS,
            seed=SEED,
            cache_features=True,
            data_format="s3",
            progress=False,
        )
        trained = zoo.load(output_dir)
        trained.use_feature_cache(model.feature_cache)
        return trained
    return _train_with_trainer(model, processor, train_path, output_dir)


def _train_with_trainer(model: Any, processor: Any, train_path: Path, output_dir: Path) -> Any:
    """The recipe's first stage with transformers' Trainer: its optimizer groups, schedule and batch."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from zoo.training_plan import make_optimizer, make_scheduler

    stage = model.recipe.stages[0]
    encoded = [processor.encode(sample.messages) for sample, _, _ in _questions(train_path)]
    optimizer = make_optimizer(model, stage)
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=TRAIN_STEPS,
        per_device_train_batch_size=BATCH,
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        seed=SEED,
        remove_unused_columns=False,
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model.train(),
        args=args,
        train_dataset=encoded,
        data_collator=processor.collate,
        optimizers=(optimizer, make_scheduler(optimizer, stage, TRAIN_STEPS)),
    )
    trainer.remove_callback(PrinterCallback)  # the loss is printed below, once
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"[train] loss every 10 steps: {' '.join(f'{x:.2f}' for x in losses)}")
    return model.eval()


def _report(when: str, scores: dict[str, float], chance: dict[str, float] | None = None) -> None:
    for kind in sorted(scores):
        tail = f" (chance {chance[kind]:.0%})" if chance else ""
        print(f"{kind}: held-out accuracy {when} training: {scores[kind]:.0%}{tail}")


def _new_questions(root: Path) -> list[tuple[list[dict], str]]:
    """One picture and one clip the model has never seen, with their questions and true answers."""
    import numpy as np
    import soundfile

    from zoo.data.synthetic import QUESTIONS, RATE, beeps, draw_shape

    picture = root / "new.png"
    draw_shape("triangle", (30, 180, 40), (30.0, 36.0), 15.0).save(picture)
    clip = root / "new.wav"
    soundfile.write(clip, beeps(3, 600.0, np.random.default_rng(123)), RATE)
    return [
        ([{"role": "user", "type": "image", "content": str(picture)},
          {"role": "user", "type": "text", "content": QUESTIONS["colour"]}], "green"),
        ([{"role": "user", "type": "image", "content": str(picture)},
          {"role": "user", "type": "text", "content": QUESTIONS["shape"]}], "triangle"),
        ([{"role": "user", "type": "audio", "content": str(clip)},
          {"role": "user", "type": "text", "content": QUESTIONS["beeps"]}], "three"),
    ]  # fmt: skip


def main() -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm loads: the one-time conversions' bars
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' deprecation notes
    wall, cpu = time.perf_counter(), time.process_time()
    import torch
    from transformers.utils import logging as transformers_logging

    from zoo import ZooProcessor, build
    from zoo.chat import reply
    from zoo.data.synthetic import make_synthetic_dataset
    from zoo.summary import format_table
    from zoo.training.feature_cache import FeatureCache

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    print(f"Building {RECIPE!r} (the first run converts the GGUF, CTranslate2 and ONNX weights once)...")
    torch.manual_seed(SEED)  # the projectors and new token rows start random: the same demo every run
    model = build(RECIPE).eval()
    processor = ZooProcessor.from_model(model)
    print(format_table(model), "\n")
    answer, correct = _text_question(model)
    print(f"[text]  Q: {TEXT_QUESTION}\n        A: {answer}  ({'correct' if correct else 'WRONG'})\n")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_synthetic_dataset(
            root / "data", N_TRAIN, N_TEST, modalities=("image", "audio"), seed=SEED
        )
        print(f"[data]  {N_TRAIN} training and {N_TEST} held-out questions in {paths['root']}")
        model.use_feature_cache(FeatureCache(root / "feature_cache"))
        chance = chance_rates(paths["test"])
        _report("before", accuracy(model, processor, paths["test"]), chance)

        start = time.perf_counter()
        print(f"\n[train] {TRAIN_STEPS} steps of batch {BATCH} (stage {model.recipe.stages[0]['name']!r})...")
        model = train(model, processor, paths["train"], root / "run")
        print(f"[train] done in {time.perf_counter() - start:.0f} s\n")
        after = accuracy(model, processor, paths["test"])
        _report("after", after)

        print()
        processor = ZooProcessor.from_model(model)
        for question, truth in _new_questions(root):
            kind = question[0]["type"]
            said = " ".join(reply(model, processor, question, max_new_tokens=8).split())
            print(f"[{kind}] Q: {question[-1]['content']}  A: {said}  (truth: {truth})")
        print(f"\n{model.feature_cache.hits} encoder outputs read from the feature cache, "
              f"{model.feature_cache.misses} computed")  # fmt: skip
    print(f"Total: {time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    return 0 if correct and min(after.values()) >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
