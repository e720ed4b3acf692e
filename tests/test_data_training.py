"""The data path feeds training: synthetic files → mixture → loader → the stage's optimizer, and loss falls.

The tiny recipe (random init) reads the synthetic image questions through ``make_loader`` and steps the
optimizer and schedule its stage describes; the loss on the loader's batches must fall and the frozen
encoder must not move. (Whether answers come from the media is the training issue's held-out evaluation:
a random tiny LM cannot show it.)
"""

from __future__ import annotations

import torch

import zoo
from zoo.data import Mixture, make_loader
from zoo.data.synthetic import make_synthetic_dataset
from zoo.training_plan import make_optimizer, make_scheduler

STAGE = {
    "name": "align",
    "train": {"encoders": "frozen", "projectors": "full", "backbone": "full"},
    "lr": {"default": 3e-3, "projectors": 1e-3},
    "optimizer": {"name": "adamw", "weight_decay": 0.0},
    "schedule": {"name": "constant", "warmup_steps": 2},
}


def test_loss_falls_on_loader_batches_with_the_stages_optimizer(tmp_path) -> None:
    torch.manual_seed(0)
    model = zoo.build("tiny", stages=[STAGE])
    processor = zoo.ZooProcessor.from_model(model)
    paths = make_synthetic_dataset(tmp_path, n_train=16, n_test=0, modalities=("image",), seed=0)
    mixture = Mixture.from_dict(
        {"datasets": [{"name": "shapes", "path": str(paths["train"]), "format": "s3"}]}
    )
    batches = list(make_loader(processor, mixture, batch_size=8, num_workers=0, output_dir=tmp_path))
    assert len(batches) == 2 and all(b["input_ids"].shape[1] % 8 == 0 for b in batches)

    optimizer = make_optimizer(model, model.recipe.stages[0])
    assert {g["lr"] for g in optimizer.param_groups} == {3e-3, 1e-3}  # per-part rates
    scheduler = make_scheduler(optimizer, model.recipe.stages[0], num_training_steps=40)
    frozen = {n: p.clone() for n, p in model.encoders.named_parameters()}
    losses = []
    model.train()
    for step in range(40):
        loss = model(**batches[step % 2]).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4, losses
    assert all(torch.equal(p, frozen[n]) for n, p in model.encoders.named_parameters())
