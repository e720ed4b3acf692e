"""``zoo new-plugin``: write a plugin package that installs, lists and passes the conformance kit as it is.

``new_plugin("zoo-pool", "projector")`` writes ``zoo-pool/``: a ``pyproject.toml`` (hatchling, a dependency
on zoo, the entry point and the ``zoo.api`` version), the package ``zoo_pool/`` with one component file, a
recipe that uses the component (it ``extends`` the built-in ``tiny`` recipe), a README and tests that run
``zoo.testing.ConformanceSuite``. The templates are the ``*.tmpl`` files next to this module.
"""

from __future__ import annotations

import keyword
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ScaffoldError
from zoo.registry import COMPONENT_API, GROUPS, canonical_distribution

KINDS = ("encoder", "projector", "backbone", "recipe", "reader", "metric")
TEMPLATES = Path(__file__).parent / "templates"
_DISTRIBUTION = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508 names
SUMMARIES = {
    "encoder": "an image encoder (patches through a small Transformer).",
    "projector": "a pooling projector (average pooling, then an MLP to the LLM width).",
    "backbone": "a causal-LM backbone with LoRA on the attention projections only.",
    "recipe": "a recipe: tiny trained with LoRA adapters.",
    "reader": "a dataset reader for visual-question records (id, image, question, answer).",
    "metric": "a metric: token F1 between predictions and references.",
}


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin is known by: distribution, import package, component, class and recipe."""

    distribution: str
    module: str
    component: str

    def class_name(self, kind: str) -> str:
        """``MyPoolProjector`` for component ``my-pool`` of kind projector (no doubled suffix)."""
        name = "".join(part.capitalize() for part in re.split(r"[-_.]", self.component) if part)
        return name if name.lower().endswith(kind) else name + kind.capitalize()

    @property
    def function(self) -> str:
        return re.sub(r"[-.]", "_", self.component)

    def recipe(self, kind: str) -> str:
        return self.component if kind == "recipe" else f"{self.component}-tiny"


def plugin_names(name: str) -> PluginNames:
    """Check ``name`` as a distribution name and derive the others; a bad one says what to change."""
    if not isinstance(name, str) or not _DISTRIBUTION.match(name):
        raise ScaffoldError(
            f"{name!r} is not a valid package name: use letters, digits, '-', '_' and '.', starting and ending "
            f"with a letter or digit (for example {_suggest(str(name))!r})"
        )
    module = re.sub(r"[-.]+", "_", name).lower()
    if not module.isidentifier() or keyword.iskeyword(module):
        raise ScaffoldError(
            f"{name!r} would be imported as {module!r}, which is not a Python identifier: start the name with a "
            f"letter (for example {_suggest('zoo-' + name)!r})"
        )
    if canonical_distribution(name) == "zoo" or module in sys.stdlib_module_names:
        raise ScaffoldError(
            f"{name!r} would shadow {'zoo itself' if module == 'zoo' else f'the standard module {module!r}'}: "
            f"pick another name (for example 'zoo-{module.replace('_', '-')}-plugin')"
        )
    component = re.sub(r"^zoo[-_.]", "", name.lower()) or module
    return PluginNames(name, module, re.sub(r"[_.]", "-", component))


def _suggest(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-_.")
    if not cleaned or not cleaned[0].isalpha():
        cleaned = "zoo-" + cleaned
    return cleaned.strip("-_.") or "zoo-my-plugin"


def new_plugin(name: str, kind: str, output: str | Path | None = None) -> Path:
    """Write the plugin package ``name`` for a component of ``kind`` into ``output`` (default ``./name``)."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown plugin kind {kind!r}: use one of {', '.join(KINDS)}")
    names = plugin_names(name)
    root = Path(output) if output is not None else Path(name)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root} already exists and is not empty: choose another NAME or --output folder")
    for relative, text in _files(names, kind).items():
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as error:
            raise ScaffoldError(
                f"cannot write {path}: {error.strerror or error}; choose another --output"
            ) from None
    return root


def _render(template: str, **values: str) -> str:
    return string.Template((TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)


def _files(names: PluginNames, kind: str) -> dict[str, str]:
    """Relative path → content of every file of the package."""
    summary = SUMMARIES[kind]
    values = {
        "distribution": names.distribution,
        "module": names.module,
        "component": names.component,
        "cls": names.class_name(kind),
        "function": names.function if kind == "metric" else f"read_{names.function}",
        "summary": summary[0].upper() + summary[1:],
        "kind": kind,
        "api": COMPONENT_API,
        "group": GROUPS[kind],
    }
    files = {
        f"{names.module}/__init__.py": f'"""{names.distribution}: a zoo plugin.\n\n{values["summary"]}\n"""\n',
        "pyproject.toml": _render(
            "pyproject.toml.tmpl", **values, entry_points=_entry_points(names, kind, values)
        ),
        "README.md": _render(
            "README.md.tmpl", **values, table=_table(names, kind), usage=_usage(names, kind)
        ),
        f"tests/test_{names.module}.py": _render(
            "test.py.tmpl", **values, extra_tests=_extra_test(names, kind, values)
        ),
    }
    if kind != "recipe":
        files[f"{names.module}/{kind}.py"] = _render(f"{kind}.py.tmpl", **values)
    recipe = _recipe(names, kind)
    if recipe:
        files[f"{names.module}/recipes/{names.recipe(kind)}.yaml"] = recipe
    if kind == "reader":
        files["examples/data.jsonl"] = (
            '{"id": "q1", "image": "images/cat.png", "question": "What animal is this?", "answer": "A cat."}\n'
        )
        files["examples/mixture.yaml"] = (
            f"# A mixture reading examples/data.jsonl in the {names.component} format.\n"
            f"datasets:\n  - {{name: vqa, path: data.jsonl, format: {names.component}, count: 2}}\n"
        )
    return files


def _entry_points(names: PluginNames, kind: str, values: dict[str, str]) -> str:
    blocks = []
    if kind != "recipe":
        attribute = values["function"] if kind in ("reader", "metric") else values["cls"]
        target = f"{names.module}.{kind}:{attribute}"
        blocks.append(f'[project.entry-points."{GROUPS[kind]}"]\n{names.component} = "{target}"\n')
    if _recipe(names, kind):
        blocks.append(
            "# A folder of recipe YAML files (no __init__.py needed).\n"
            f'[project.entry-points."zoo.recipes"]\n{names.distribution} = "{names.module}.recipes"\n'
        )
    return "\n".join(blocks)


def _recipe(names: PluginNames, kind: str) -> str:
    """The recipe that uses the component (it extends the built-in ``tiny``), or "" for readers and metrics."""
    qualified = f"{names.distribution}:{names.component}"
    head = (
        "# zoo's tiny with only what this package changes (`extends`: docs/recipes.md); the qualified name\n"
        "# picks zoo's even if another plugin has a recipe named tiny.\nextends: zoo:tiny\n"
    )
    if kind == "encoder":
        return head + (
            f"description: tiny with the {names.component} image encoder.\n"
            f"encoders:\n  image:\n    name: {qualified}\n"
            "    args: {image_size: 32, patch_size: 8, dim: 32, layers: 1, heads: 2}\n"
        )
    if kind == "projector":
        return head + (
            f"description: tiny with the {names.component} projector on images.\n"
            f"projectors:\n  image: {{name: {qualified}, args: {{stride: 4}}}}\n"
        )
    if kind == "backbone":
        return head + (
            f"description: tiny on the {names.component} backbone (a 2-layer Qwen2, random init).\n"
            f"backbone:\n  name: {qualified}\n  args:\n"
            "    tokenizer: package:zoo/recipes/assets/tiny-tokenizer\n"
            "    config: {model_type: qwen2, vocab_size: 1024, hidden_size: 64, intermediate_size: 128,\n"
            "             num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,\n"
            "             tie_word_embeddings: true}\n"
        )
    if kind == "recipe":
        return head + (
            "description: tiny trained with LoRA adapters on the attention and the new token embeddings.\n"
            "stages:\n  - name: lora\n"
            "    train: {encoders: frozen, projectors: full, backbone: lora, embeddings: full}\n"
            "    lora: {r: 4, alpha: 8, dropout: 0.0, targets: [q_proj, v_proj]}\n"
            "    lr: 1.0e-4\n"
        )
    return ""


def _table(names: PluginNames, kind: str) -> str:
    rows = []
    if kind != "recipe":
        rows.append(f"| {kind} | `{names.component}` | `{names.module}/{kind}.py` |")
    if _recipe(names, kind):
        rows.append(
            f"| recipe | `{names.recipe(kind)}` | `{names.module}/recipes/{names.recipe(kind)}.yaml` |"
        )
    return "\n".join(rows)


def _usage(names: PluginNames, kind: str) -> str:
    recipe = names.recipe(kind)
    if kind == "reader":
        return (
            "## Use it\n\nA dataset of a mixture names the format: "
            f"`{{name: vqa, path: data.jsonl, format: {names.component}}}` (see `examples/mixture.yaml`)."
        )
    if kind == "metric":
        return (
            "## Use it\n\n```python\nimport zoo\n\n"
            f'metric = zoo.get_registry().load("metric", "{names.component}")\n'
            'print(metric(["a red cube"], ["the red cube"]))\n```'
        )
    return (
        "## Use it\n\n```python\nimport zoo\n\n"
        f'model = zoo.build("{recipe}")  # the recipe in {names.module}/recipes/\n'
        f'meta = zoo.build("{recipe}", device="meta")  # the architecture only\n```\n\n'
        f"`zoo info {recipe}` shows its components, parameters and stages."
    )


def _extra_test(names: PluginNames, kind: str, values: dict[str, str]) -> str:
    qualified = f"{names.distribution}:{names.component}"
    tests = {
        "encoder": f'''

def test_one_token_per_patch() -> None:
    from PIL import Image
    from zoo.registry import build_component

    args = {{"image_size": 32, "patch_size": 8, "dim": 16, "layers": 1, "heads": 2}}
    encoder = build_component("encoder", "{qualified}", args)
    pixels = encoder.preprocess(Image.new("RGB", (50, 40), "red")).unsqueeze(0)
    assert encoder(pixels).shape == (1, 16, 16)
''',
        "projector": f'''

def test_pools_stride_tokens_into_one() -> None:
    import torch
    from zoo.registry import build_component

    args = {{"stride": 4}}
    projector = build_component("projector", "{qualified}", args, dim_in=8, llm_dim=16)
    assert projector(torch.randn(2, 12, 8)).shape == (2, 3, 16)
''',
        "backbone": f'''

def test_lora_goes_on_the_attention_projections_only() -> None:
    import zoo
    from zoo.registry import build_component

    tiny_args = zoo.get_registry().load("backbone", "{qualified}").tiny_args
    backbone = build_component("backbone", "{qualified}", tiny_args)
    assert backbone.lora_targets and set(backbone.lora_targets) <= {{"q_proj", "k_proj", "v_proj", "o_proj"}}
''',
        "recipe": f'''

def test_the_recipe_trains_lora_adapters_and_the_embeddings() -> None:
    import zoo

    model = zoo.build("{names.distribution}:{names.recipe(kind)}")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in name for name in trainable) and any("embed_tokens" in name for name in trainable)
''',
        "reader": """

def test_the_example_mixture_reads_through_this_format() -> None:
    from pathlib import Path

    from zoo.data import Mixture

    samples = list(Mixture.from_yaml(Path(__file__).parents[1] / "examples" / "mixture.yaml"))
    assert [s.messages[-1]["content"] for s in samples] == ["A cat.", "A cat."]
    assert samples[0].messages[0]["content"].endswith("images/cat.png")
""",
        "metric": f'''

def test_token_f1() -> None:
    import zoo

    metric = zoo.get_registry().load("metric", "{qualified}")
    assert metric(["a red cube"], ["a red cube"]) == 1.0
    assert metric(["the red cube"], ["a red cube"]) == 2 / 3
''',
    }
    return tests[kind]
