"""YAML for recipes and mixtures: PyYAML's safe loader with alias expansion bounded.

Anchors and aliases (``<<: *defaults``) are legitimate in configuration files, so they are kept; but a
few hundred bytes of nested aliases expand to billions of nodes (the "billion laughs"), and ``&a [*a]``
makes a structure that contains itself. ``BoundedLoader`` counts the nodes of the document with every
alias expanded as it composes it and refuses a document past ``MAX_NODES``, and refuses an alias to a node
that is still open (a recursive structure), both as ``yaml.composer.ComposerError`` with the line.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_NODES = 100_000  # the largest recipe shipped has a few hundred nodes


class BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses recursive aliases and documents past ``MAX_NODES`` once expanded."""

    max_nodes = MAX_NODES

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded: dict[int, int] = {}  # id(node) -> node count with aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._expanded:
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} refers to a node that contains it", event.start_mark
                )
            return super().compose_node(parent, index)
        node = super().compose_node(parent, index)
        size = 1 + sum(self._expanded.get(id(child), 1) for child in _children(node))
        if size > self.max_nodes:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"with its aliases expanded the document has more than {self.max_nodes} nodes",
                node.start_mark,
            )
        self._expanded[id(node)] = size
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with alias expansion bounded (see ``BoundedLoader``)."""
    return yaml.load(text, Loader=BoundedLoader)
