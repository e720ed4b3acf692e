"""Datasets into training batches: readers of the common formats, mixtures, augmentations, the pipeline.

``import zoo.data`` is cheap: ``datasets`` and ``torch`` load only when a reader or the pipeline is used.

    from zoo.data import Mixture, make_loader
    loader = make_loader(processor, Mixture.from_yaml("mixture.yaml"), batch_size=8, max_length=512)
    for batch in loader:            # processor.collate output: input_ids, attention_mask, labels, media
        model(**batch).loss.backward()
    print(loader.ledger.summary())  # every skipped sample, with dataset, index, id, stage and reason
"""

from __future__ import annotations

from zoo import lazy_exports

_LAZY = {
    "Sample": "zoo.data.schema",
    "Skip": "zoo.data.schema",
    "validate_messages": "zoo.data.schema",
    "READERS": "zoo.data.readers",
    "Context": "zoo.data.readers",
    "reader_for": "zoo.data.readers",
    "convert": "zoo.data.readers",
    "iter_records": "zoo.data.readers",
    "read_records": "zoo.data.readers",
    "Mixture": "zoo.data.mixture",
    "DatasetSpec": "zoo.data.mixture",
    "S3_SYSTEM_PROMPTS": "zoo.data.mixture",
    "InstructionPool": "zoo.data.augment",
    "reorder_media": "zoo.data.augment",
    "concat_dialogs": "zoo.data.augment",
    "SkipLedger": "zoo.data.pipeline",
    "EncodedDataset": "zoo.data.pipeline",
    "ZooLoader": "zoo.data.pipeline",
    "make_loader": "zoo.data.pipeline",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports("zoo.data", _LAZY, globals())
