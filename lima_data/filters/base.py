"""The filter contract (DESIGN.md section 2).

A filter measures one thing about a candidate and decides: keep, or drop with a reason string. The two steps are
kept apart (as in NeMo Curator's ``score_document`` / ``keep_document``): :meth:`Filter.measure` returns the
measured value, which the pipeline records for every candidate whether it is kept or not, and
:meth:`Filter.decide` turns that value into ``None`` (keep) or one of the filter's declared ``reasons``. A
filter that transforms (HTML -> Markdown cleaning, choosing the prompt field) does so in ``measure`` and says
what it changed through the value it returns.

A filter's registry name, its recipe key (``[filters.<name>]``) and the prefix of its documentation agree; its
reason strings are declared on the class so tests and reports can list them.

Filters a user writes need no edit of this package: a recipe's chain may name a :class:`Filter` subclass by
``"module:Class"`` (importable from the build's Python path), or by the name under which an installed distribution
publishes it in the entry point group ``lima_data.filters`` (``[project.entry-points."lima_data.filters"]``). Such a
filter runs like a built-in one: its stats, rejects and measurements are named by its class's ``name``; its
settings table is keyed by the chain entry as written.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import pkgutil
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..candidate import Candidate
from ..errors import RecipeError

REGISTRY: dict[str, type["Filter"]] = {}

#: Most matches :meth:`Filter.explain` returns for one candidate, and characters of context each side.
EXPLAIN_LIMIT = 8
EXPLAIN_CONTEXT = 60
_SPACES = re.compile(r"\s+")


def match_spans(field: str, text: str, spans) -> list[dict[str, str]]:
    """``explain`` items for ``spans`` (``(start, end)`` character offsets in ``text``): the matched text with
    :data:`EXPLAIN_CONTEXT` characters of ``text`` before and after it (whitespace runs collapsed), at most
    :data:`EXPLAIN_LIMIT` items."""
    out = []
    for start, end in spans:
        out.append({"field": field, "match": text[start:end],
                    "before": _SPACES.sub(" ", text[max(0, start - EXPLAIN_CONTEXT):start]),
                    "after": _SPACES.sub(" ", text[end:end + EXPLAIN_CONTEXT])})
        if len(out) >= EXPLAIN_LIMIT:
            break
    return out


#: Marks a setting that has no default: the recipe must give it (e.g. phrase lists, which are recipe data).
REQUIRED = object()


def _kind(value: Any) -> str | None:
    """The kind of a setting's value that a recipe must match (``None``: any, e.g. a default of ``None``)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "list"
    if isinstance(value, dict):
        return "table"
    return None


class Filter:
    """Base class of every filter.

    Subclasses set ``name`` (registry and recipe key), ``reasons`` (every reason string ``decide`` may return)
    and ``defaults`` (settings and their default values; the recipe's ``[filters.<name>]`` table overrides
    them), and implement ``measure`` and ``decide``.
    """

    name: ClassVar[str]
    reasons: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.__module__.startswith(__package__ + "."):
            REGISTRY[cls.name] = cls  # built-in filters only: a user filter is named by "module:Class"

    def __init__(self, seed: int = 0, **settings: Any):
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise RecipeError(
                f"[filters.{self.name}]: unknown setting(s) {sorted(unknown)}; known: {sorted(self.defaults)}"
            )
        for key, value in settings.items():
            expected = _kind(self.defaults[key])
            if expected is not None and value is not None and _kind(value) != expected:
                raise RecipeError(f"[filters.{self.name}]: {key} = {value!r} must be a {expected} like the default "
                                  f"{self.defaults[key]!r}")
        self.seed = seed
        self.settings = {**self.defaults, **settings}
        missing = [k for k, v in self.settings.items() if v is REQUIRED]
        if missing:
            raise RecipeError(f"[filters.{self.name}]: missing required setting(s) {missing}")
        for key, value in self.settings.items():
            setattr(self, key, value)

    def measure(self, candidate: Candidate) -> Any:
        """Return the measured value (a JSON scalar). Transforming filters also change ``candidate`` here."""
        raise NotImplementedError

    def decide(self, value: Any) -> str | None:
        """Return ``None`` to keep the candidate, or a reason string from ``reasons`` to drop it."""
        raise NotImplementedError

    def explain(self, candidate: Candidate, value: Any) -> list[dict[str, str]] | None:
        """What made ``decide`` drop ``candidate``: the matched spans, for the report (called by the pipeline only
        on a drop, with the candidate as this filter saw it and its measured ``value``).

        Returns ``[{"field": "response" | "prompt" | "title", "match": <matched text>, "before", "after": <up to
        60 characters of the text around it>}]`` (at most :data:`EXPLAIN_LIMIT` items), or ``None`` when the
        filter has nothing to point at (the default: a number against a threshold explains itself).
        """
        return None

    def __call__(self, candidate: Candidate) -> tuple[Any, str | None]:
        value = self.measure(candidate)
        reason = self.decide(value)
        if reason is not None and reason not in self.reasons:
            raise AssertionError(f"filter {self.name} returned undeclared reason {reason!r}")
        return value, reason


#: Entry point group under which installed distributions publish filters (name -> ``module:Class``).
ENTRY_POINT_GROUP = "lima_data.filters"


#: The module of this package that defines each built-in filter: :func:`filter_class` imports only the modules a
#: recipe's chain names (issue 15: start-up imports only what the recipe uses; a Stack Exchange chain does not load
#: the Reddit, task or dialogue filters). ``tests/test_filters.py`` checks it against what importing every module
#: registers.
BUILTIN_MODULES: dict[str, str] = {
    "answer_score": "answer_score", "clean": "clean", "dialogue_clean": "dialogue", "first_person": "style",
    "has_response": "reddit", "language": "language", "length": "length", "manual": "manual", "nsfw": "reddit",
    "pii": "pii", "prompt_choice": "style", "prompt_tag": "reddit", "quality": "quality", "raw_length": "length",
    "self_contained": "style", "site_group": "site_group", "site_reference": "style", "task_category": "task",
    "task_language": "task", "title_not_howto": "title_not_howto", "title_only": "reddit", "turn_count": "dialogue",
    "turn_length": "dialogue",
}


@lru_cache(maxsize=1)
def builtin_filters() -> dict[str, type[Filter]]:
    """Every built-in filter by name: each module of this package is imported once, so its classes register (for
    listings and error messages; a build imports only its chain's modules, see :data:`BUILTIN_MODULES`)."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{__package__}.{info.name}")
    return dict(REGISTRY)


def _builtin(name: str) -> type[Filter] | None:
    """The built-in filter ``name``, its module imported on first use; ``None`` when no built-in has that name."""
    module = BUILTIN_MODULES.get(name)
    if module is None:
        return None
    importlib.import_module(f"{__package__}.{module}")
    return REGISTRY[name]


def _user_class(spec: str, where: str) -> type[Filter]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RecipeError(f"filter {spec!r}{where}: cannot import module {module_name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Filter) and "name" in cls.__dict__):
        raise RecipeError(f"filter {spec!r}{where}: {attr!r} is not a Filter subclass with a `name` in "
                          f"module {module_name!r}")
    return cls


def filter_class(name: str) -> type[Filter]:
    """The filter class a recipe's chain entry names: a built-in filter's name (``"length"``), ``"module:Class"``
    for a filter defined outside the package, or a name published in the ``lima_data.filters`` entry point group.

    Raises:
        RecipeError: nothing of that name, a module that cannot be imported, a class that is not a
            :class:`Filter`, or a user filter whose ``name`` is a built-in filter's (it would mix their stats).
    """
    if ":" in name:
        cls = _user_class(name, "")
    elif (builtin := _builtin(name)) is not None:
        return builtin
    else:
        found = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name))
        if not found:
            raise RecipeError(f"unknown filter {name!r}; known filters: {sorted(BUILTIN_MODULES)}, or "
                              f"'module:Class' of a Filter subclass, or a name in the {ENTRY_POINT_GROUP!r} entry "
                              f"point group")
        cls = _user_class(found[0].value, f" (entry point {name!r})")
    if cls.name in BUILTIN_MODULES and _builtin(cls.name) is not cls:
        raise RecipeError(f"filter {name!r}: its name {cls.name!r} is a built-in filter's; choose another name")
    return cls


def build_filter(name: str, settings: dict[str, Any], seed: int) -> Filter:
    """Instantiate the filter a chain entry names (see :func:`filter_class`) with the recipe's settings.

    Raises:
        RecipeError: the name resolves to no filter, or a setting is unknown.
    """
    return filter_class(name)(seed=seed, **settings)


def module_files(chain: list[str]) -> list[str]:
    """The source files of the filters a chain names from outside the package (for cache keys: an edited user
    filter must not reuse results cached with its old code)."""
    files = []
    for name in chain:
        module = sys.modules.get(filter_class(name).__module__)
        path = getattr(module, "__file__", None)
        if path and not Path(path).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
            files.append(path)
    return files
