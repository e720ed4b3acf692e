"""Errors that zoo raises. Each names the thing that is wrong and what is wrong with it."""

from __future__ import annotations


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class UnknownComponentError(ZooError, KeyError):
    """A component or recipe name that no installed distribution provides."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ComponentConflictError(ZooError):
    """Two distributions register the same name for the same kind."""


class PluginLoadError(ZooError):
    """A plugin's module could not be imported or its entry point is malformed."""


class ComponentAPIError(PluginLoadError):
    """A plugin written for another component API version than the one this zoo provides."""


class ContractError(ZooError):
    """Something registered as a component that breaks the component contract (not a component, an
    output shape or length that differs from what it declares); the message says what to change."""


class ScaffoldError(ZooError, ValueError):
    """``zoo new-plugin`` cannot write the package (a name that is not a package name, a folder in the way)."""


class ComponentArgumentError(ZooError, TypeError):
    """A component was given an argument it does not accept, or of the wrong type."""


class IncompatibleComponentsError(ZooError, ValueError):
    """Components that do not fit together (e.g. a projector's input width vs its encoder's dim)."""


class RecipeError(ZooError, ValueError):
    """A recipe file or recipe override that cannot be used."""


class WeightSourceError(ZooError, ValueError):
    """A weight source that cannot be parsed, found, or converted."""


class MediaError(ZooError, ValueError):
    """A media item (image, audio, video) that cannot be decoded or has no encoder."""


class PlaceholderMismatchError(ZooError, ValueError):
    """The number of media placeholder tokens does not match the projected features."""


class DataError(ZooError, ValueError):
    """A dataset record that does not fit its declared format (missing field, wrong type)."""


class SampleTooLongError(DataError):
    """A sample whose media blocks and required tokens alone exceed the length limit."""


class FailureRateError(DataError):
    """Too many samples of a run could not be used; the run stops instead of training on what is left."""


class CheckpointError(ZooError, OSError):
    """A saved model folder that cannot be loaded: incomplete, corrupted, or tensors that do not fit."""


class HubError(ZooError, OSError):
    """A Hub repo that cannot be pushed or loaded: not a zoo checkpoint, missing plugin, bad file, no network."""


class TrainingError(ZooError):
    """A training run that cannot start or go on: bad options, an output folder in use, nothing to train on."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite: names the step, the batch's samples and the last good checkpoint."""


class TrainingInterrupted(TrainingError):
    """SIGINT or SIGTERM stopped a run after it saved a resumable checkpoint; ``signal`` is the number."""

    def __init__(self, message: str, signal: int) -> None:
        super().__init__(message)
        self.signal = signal


class EvaluationError(ZooError, ValueError):
    """An evaluation that cannot run as asked (unknown metric, data without references, a judge template
    without its fields); raised before any generation starts."""
