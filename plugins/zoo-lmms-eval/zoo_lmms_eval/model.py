"""``ZooLMMS``: an lmms-eval model (``lmms``) backed by any zoo model.

``pretrained`` is what ``zoo eval`` accepts: a folder written by ``save_pretrained`` / ``zoo train``, a
recipe name or YAML (or a Hub repo once zoo can pull one). Each request's visuals become zoo media
messages (PIL images → image, ``{"array", "sampling_rate"}`` → audio, file paths by extension), placed
before the request's text in one user turn, and the model's own chat layout and processor do the rest.
Generation and scoring go through ``zoo.evaluation``'s batched code: the same left-padded, KV-cached,
greedy generation as ``zoo eval``, and the same teacher-forced log-probabilities as its HM metric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from tqdm import tqdm

from zoo.errors import MediaError
from zoo.evaluation.run import Gatherer, GenerationSettings, load_model

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"}


def media_message(visual: Any) -> dict:
    """One zoo media message for one lmms-eval visual."""
    from PIL import Image

    if isinstance(visual, Image.Image):
        return {"role": "user", "type": "image", "content": visual}
    if isinstance(visual, dict) and "array" in visual:
        rate = int(visual.get("sampling_rate") or 16000)
        return {"role": "user", "type": "audio", "content": (visual["array"], rate)}
    if isinstance(visual, (str, Path)):
        suffix = Path(str(visual)).suffix.lower()
        kind = "video" if suffix in VIDEO_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else "image"
        return {"role": "user", "type": kind, "content": str(visual)}
    return {"role": "user", "type": "image", "content": visual}


def keep_loglikelihood_pairs() -> bool:
    """Work around lmms-eval 0.7.3 turning every ``(logprob, is_greedy)`` answer into its string.

    Its evaluator passes each model output through ``unwrap_generation_output``, which returns ``str(x)``
    for anything that is not text, so ``multiple_choice`` tasks then fail on ``zip(*results)`` for every
    model. When (and only when) the installed function does that to a ``(float, bool)`` pair, it is
    wrapped so such pairs pass through unchanged. Returns whether the wrapper was installed.
    """
    from lmms_eval import evaluator

    original = evaluator.unwrap_generation_output
    if getattr(original, "_zoo_keeps_pairs", False) or not isinstance(original((0.0, True))[0], str):
        return False

    def unwrap(output: Any) -> Any:
        if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], bool):
            return output, None
        return original(output)

    unwrap._zoo_keeps_pairs = True  # type: ignore[attr-defined]
    evaluator.unwrap_generation_output = unwrap
    return True


def _flatten(visuals: Any) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (list, tuple)):
        return [v for item in visuals for v in _flatten(item)]
    return [visuals]


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text


class ZooLMMS(lmms):
    """lmms-eval's ``generate_until`` and ``loglikelihood`` over a zoo model."""

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        batch_size: int | str = 1,
        max_new_tokens: int | str = 64,
        device: str | None = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from zoo.processor import ZooProcessor

        self.model = load_model(pretrained).eval()
        if device and str(device) not in ("cpu", "auto"):
            self.model.to(device)
        self.processor = ZooProcessor.from_model(self.model)
        keep_loglikelihood_pairs()
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)

    # -- requests -> conversations ----------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _prompt(self, context: str, doc_to_visual: Any, doc: Any) -> list[dict]:
        visuals = _flatten(doc_to_visual(doc)) if doc_to_visual is not None else []
        messages = [media_message(v) for v in visuals]
        missing = sorted({m["type"] for m in messages} - set(self.model.config.modalities))
        if missing:
            raise MediaError(
                f"the task gives {', '.join(missing)} but this zoo model reads only "
                f"{', '.join(self.model.config.modalities) or 'text'}"
            )
        return [*messages, {"role": "user", "type": "text", "content": context}]

    def _gatherer(self, **settings: Any) -> Gatherer:
        return Gatherer(self.model, self.processor, GenerationSettings(**settings), progress=False)

    # -- lmms API ---------------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        results: list[str] = []
        bar = tqdm(total=len(requests), desc="zoo generate_until", disable=self.rank != 0)
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            by_settings: dict[str, list[int]] = {}
            prompts, settings = [], []
            for n, request in enumerate(chunk):
                context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
                prompts.append(self._prompt(context, doc_to_visual, self._doc(task, split, doc_id)))
                settings.append(dict(gen_kwargs or {}))
                by_settings.setdefault(repr(sorted(settings[-1].items())), []).append(n)
            answers: dict[int, str] = {}
            for members in by_settings.values():
                answers.update(self._generate(prompts, settings[members[0]], members))
            for n, request in enumerate(chunk):
                results.append(answers[n])
                self.cache_hook.add_partial("generate_until", (request.args[0], request.args[1]), answers[n])
            bar.update(len(chunk))
        bar.close()
        return results

    def _generate(self, prompts: list[list[dict]], gen_kwargs: dict, members: list[int]) -> dict[int, str]:
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        temperature = float(gen_kwargs.pop("temperature", 0) or 0)
        sample = bool(gen_kwargs.pop("do_sample", False)) or temperature > 0
        extra = {"temperature": temperature} if sample else {}
        if sample and gen_kwargs.get("top_p") is not None:
            extra["top_p"] = float(gen_kwargs["top_p"])
        gatherer = self._gatherer(
            max_new_tokens=int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens),
            batch_size=self.batch_size,
            do_sample=sample,
            num_beams=int(gen_kwargs.get("num_beams") or 1),
            extra=extra,
        )
        encoded = [gatherer.encode(prompts[n], add_generation_prompt=True) for n in members]
        out = gatherer.generate(encoded)
        texts = {}
        for position, n in enumerate(members):
            answer = out[position]
            if isinstance(answer, Exception):
                raise answer
            texts[n] = _cut(answer, until)
        return texts

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        gatherer = self._gatherer(batch_size=self.batch_size)
        queries = []
        for request in requests:
            context, doc_to_target, doc_to_visual, doc_id, task, split = request.args
            doc = self._doc(task, split, doc_id)
            continuation = doc_to_target if isinstance(doc_to_target, str) else doc_to_target(doc)
            queries.append((self._prompt(context, doc_to_visual, doc), str(continuation)))
        results = []
        for request, scored in zip(requests, gatherer.response_scores(queries), strict=True):
            if isinstance(scored, Exception):
                raise scored
            logprobs, greedy = scored
            value = (float(sum(logprobs)), greedy)
            results.append(value)
            self.cache_hook.add_partial("loglikelihood", request.args[:2], value)
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("zoo's lmms-eval model does not run multi-round tasks yet")
