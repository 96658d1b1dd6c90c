"""The config's schema, read from the code: the argument each key of a built node sets.

A key of a node that names a ``_target_`` (``callbacks.pca.n_components``) sets an argument of
the class or function it names (``PCABaseline(n_components=...)``), partial factories
(``_partial_: true``, the optimizer's) included. That argument's annotation says what the key
may be (``ae_lab.config.annotations``), so a new key needs no line elsewhere; an argument of
ae_lab's own code without one is named with the file to annotate it in.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ae_lab.config.annotations import Domain, domain
from ae_lab.config.rule import INSTANTIATE_KEYS

# where the file a message names is read from: the checkout (or site-packages, installed)
ROOT = Path(__file__).resolve().parents[2]
_INSTALLED = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class Argument:
    """One argument of the class or function a config node's ``_target_`` names."""

    owner: Any
    name: str
    annotation: Any  # inspect.Parameter.empty: none; NO_SUCH: the owner takes no such argument

    @property
    def _file(self) -> Path | None:
        try:
            return Path(inspect.getsourcefile(self.owner) or "")
        except TypeError:  # built in: no source file
            return None

    @property
    def ours(self) -> bool:
        """Whether the owner is code of this project (ae_lab's, a test's), which it annotates
        itself, rather than an installed library's."""
        installed = self._file is None or any(p in _INSTALLED for p in self._file.parts)
        return self.owner.__module__.split(".")[0] == "ae_lab" or not installed

    @property
    def where(self) -> str:
        """The file that defines the owner, from the checkout's root."""
        try:
            return str(self._file.resolve().relative_to(ROOT))
        except (AttributeError, ValueError):  # no file, or one outside the checkout
            return self.owner.__module__.replace(".", "/") + ".py"

    @property
    def qualname(self) -> str:
        return getattr(self.owner, "__qualname__", str(self.owner))

    @property
    def domain(self) -> Domain | None:
        if self.annotation is NO_SUCH or self.annotation is inspect.Parameter.empty:
            return None
        return domain(self.annotation)


NO_SUCH = object()
# marks an owner that takes ``**settings`` (the composed ``Autoencoder``): a key of its own that
# names none of its arguments is a setting one of its parts reads (``hidden: ${..hidden}``)
SETTINGS = "**"


@cache
def _annotations(target: str) -> tuple[Any, dict[str, Any]] | None:
    """The object ``target`` names and the annotation of each of its named arguments, resolved
    where it can be (a name that does not resolve stays a string, which states nothing)."""
    from hydra.utils import get_object

    try:
        owner = get_object(target)
        parameters = inspect.signature(owner).parameters
    except Exception:  # noqa: BLE001 - a target that does not load is instantiate's to report
        return None
    function = owner.__init__ if inspect.isclass(owner) else owner
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # noqa: BLE001 - one forward reference it cannot resolve: each on its own
        hints = {}
    found = {}
    for name, p in parameters.items():
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            found[name] = hints.get(name, _resolve(p.annotation, function))
        elif p.kind == p.VAR_KEYWORD:
            found[SETTINGS] = None
    return owner, found


def _resolve(annotation: Any, function: Any) -> Any:
    if not isinstance(annotation, str):
        return annotation
    try:  # the annotation as its own module reads it (what get_type_hints does)
        return eval(annotation, getattr(function, "__globals__", {}))  # noqa: S307
    except Exception:  # noqa: BLE001 - left as a string: it states nothing
        return annotation


def argument_at(container: Mapping, key: str) -> Argument | None:
    """The argument that ``key`` (``callbacks.pca.n_components``) sets: the last part of the key,
    of the node just above it when that node names a ``_target_``; None otherwise."""
    *path, name = key.split(".")
    node: Any = container
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not isinstance(target, str) or "${" in target or name in INSTANTIATE_KEYS:
        return None
    read = _annotations(target)
    if read is None:
        return None
    owner, annotations = read
    if name not in annotations and SETTINGS in annotations:
        part = _part_reading(node, name)
        if part is not None:
            return part
    return Argument(owner, name, annotations.get(name, NO_SUCH))


def _part_reading(node: Mapping, name: str) -> Argument | None:
    """The argument ``name`` of the part of ``node`` (a nested ``_target_``) that takes it: a
    composed model's setting (``model.hidden``) is its encoder's and decoder's argument."""
    for part_key, part in node.items():
        if isinstance(part, Mapping) and "_target_" in part:
            found = argument_at(node, f"{part_key}.{name}")
            if found is not None and found.annotation is not NO_SUCH:
                return found
    return None
