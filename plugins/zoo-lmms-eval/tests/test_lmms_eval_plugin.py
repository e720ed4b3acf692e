"""The real lmms-eval CLI evaluates a saved zoo model through the `zoo` model plugin, on a local task.

Needs lmms-eval (heavy dependencies), so it runs in its own virtualenv: `make test-lmms-eval`. Elsewhere
it is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lmms_eval")

import torch  # noqa: E402

import zoo  # noqa: E402
from zoo.data.synthetic import BEEPS, COLOURS, SHAPES, make_synthetic_dataset  # noqa: E402

pytestmark = pytest.mark.lmms_eval
TASK_DIR = Path(__file__).parent / "task"
OPTIONS = {"colour": list(COLOURS), "shape": list(SHAPES), "beeps": list(BEEPS)}


def _lmms_records(root: Path, split_file: Path) -> list[dict]:
    records = []
    for line in split_file.read_text().splitlines():
        record = json.loads(line)
        media, question, answer = (m["text"] for m in record["messages"])
        task = record["meta"]["task"]
        records.append(
            {"id": record["id"], "media": str(root / media), "question": question, "answer": answer,
             "options": OPTIONS[task]}
        )  # fmt: skip
    return records


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("lmms")
    paths = make_synthetic_dataset(tmp / "data", n_train=1, n_test=4, modalities=("image", "audio"), seed=0)
    data = tmp / "test.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _lmms_records(paths["root"], paths["test"])))
    tasks = tmp / "tasks"
    tasks.mkdir()
    shutil.copy(TASK_DIR / "utils.py", tasks / "utils.py")
    for template in TASK_DIR.glob("*.yaml.in"):
        (tasks / template.name.removesuffix(".in")).write_text(
            template.read_text().replace("@DATA@", str(data))
        )
    torch.manual_seed(0)
    model_dir = tmp / "tiny-model"
    zoo.build("tiny").save_pretrained(model_dir)
    return {"tmp": tmp, "tasks": tasks, "model": model_dir, "data": data}


def test_lmms_eval_cli_runs_generate_until_and_loglikelihood_tasks(setup) -> None:
    out = setup["tmp"] / "out"
    command = [
        str(Path(sys.executable).parent / "lmms-eval"), "--model", "zoo",
        "--model_args", f"pretrained={setup['model']}", "--tasks", "zoo_synthetic_gen,zoo_synthetic_mc",
        "--include_path", str(setup["tasks"]), "--output_path", str(out), "--log_samples", "--batch_size", "2",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    print(run.stdout[-4000:])
    # lmms-eval logs an evaluation error and still exits 0: look for the log line too.
    assert run.returncode == 0 and "Error during evaluation" not in run.stdout + run.stderr, (
        run.stdout[-3000:] + run.stderr[-3000:]
    )
    results_file = next(out.rglob("*_results.json"))
    results = json.loads(results_file.read_text())["results"]
    assert 0.0 <= results["zoo_synthetic_gen"]["exact_match,none"] <= 1.0
    assert 0.0 <= results["zoo_synthetic_mc"]["acc,none"] <= 1.0
    samples = [
        json.loads(x) for f in out.rglob("*zoo_synthetic_mc.jsonl") for x in f.read_text().splitlines()
    ]
    assert len(samples) == 4

    # lmms-eval's log-likelihoods are zoo's own: recompute the first document's options in-process.
    from zoo.evaluation.run import Gatherer, GenerationSettings
    from zoo_lmms_eval.model import media_message

    model = zoo.ZooModel.from_pretrained(setup["model"]).eval()
    doc = json.loads(setup["data"].read_text().splitlines()[0])
    first = next(s for s in samples if s["doc_id"] == 0)
    gatherer = Gatherer(model, zoo.ZooProcessor.from_model(model), GenerationSettings(), progress=False)
    from PIL import Image

    prompt = [
        media_message(Image.open(doc["media"]).convert("RGB")),
        {"role": "user", "content": doc["question"]},
    ]
    # lmms-eval puts its target delimiter (a space) before each choice.
    queries = [(prompt, " " + option) for option in doc["options"]]
    mine = [sum(s[0]) for s in gatherer.response_scores(queries)]
    theirs = [float(r[0]) for r in first["filtered_resps"]]
    assert theirs == pytest.approx(mine, abs=1e-3)
