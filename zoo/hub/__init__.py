"""The Hugging Face Hub: push zoo checkpoints as small, self-describing repos and pull them back.

``push(folder_or_model, repo_id, revision=None, private=False, merged=False)`` uploads a checkpoint (the
folder ``save_pretrained`` or ``zoo train`` wrote) with its pinned config, delta weights, tokenizer,
processor, run summaries and a model card, in one commit, through huggingface_hub's API.
``load(repo_id, revision=None)`` (also reached through ``zoo.load("org/name")``, ``ZooModel.from_pretrained``
and transformers' Auto classes) checks plugins and package weights before downloading any weight, verifies
every file against the repo's listing, then loads the snapshot like a local folder. See docs/hub.md.

The modules: ``push`` (staging and the commit), ``pull`` (fetching and verifying), ``provenance`` (pinned
weight sources, plugin checks, licenses), ``card`` (the model card), ``merged`` (the standalone export).
"""

from __future__ import annotations

from typing import Any

from zoo.hub.pull import fetch, is_repo_id
from zoo.hub.push import push

__all__ = ["fetch", "is_repo_id", "load", "push"]


def load(repo_id: str, revision: str | None = None, **kwargs: Any) -> Any:
    """The ``ZooModel`` pushed to ``repo_id`` (at ``revision``): fetched, checked, verified, then loaded
    from the local snapshot exactly like a saved folder. ``token`` and ``force_download`` go to the download."""
    from zoo.modeling import ZooModel

    return ZooModel.from_pretrained(repo_id, revision=revision, **kwargs)
