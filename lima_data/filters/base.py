"""The filter contract (DESIGN.md section 2).

A filter measures one thing about a candidate and decides: keep, or drop with a reason string. The two steps are
kept apart (as in NeMo Curator's ``score_document`` / ``keep_document``): :meth:`Filter.measure` returns the
measured value, which the pipeline records for every candidate whether it is kept or not, and
:meth:`Filter.decide` turns that value into ``None`` (keep) or one of the filter's declared ``reasons``. A
filter that transforms (HTML -> Markdown cleaning, choosing the prompt field) does so in ``measure`` and says
what it changed through the value it returns.

A filter's registry name, its recipe key (``[filters.<name>]``) and the prefix of its documentation agree; its
reason strings are declared on the class so tests and reports can list them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..candidate import Candidate
from ..errors import RecipeError

REGISTRY: dict[str, type["Filter"]] = {}

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
        if "name" in cls.__dict__:
            REGISTRY[cls.name] = cls

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

    def __call__(self, candidate: Candidate) -> tuple[Any, str | None]:
        value = self.measure(candidate)
        reason = self.decide(value)
        if reason is not None and reason not in self.reasons:
            raise AssertionError(f"filter {self.name} returned undeclared reason {reason!r}")
        return value, reason


def build_filter(name: str, settings: dict[str, Any], seed: int) -> Filter:
    """Instantiate the registered filter ``name`` with the recipe's settings.

    Raises:
        RecipeError: the name is not registered or a setting is unknown.
    """
    from . import clean, language, length, manual, quality, reddit, score, site, style, task  # noqa: F401

    try:
        cls = REGISTRY[name]
    except KeyError:
        raise RecipeError(f"unknown filter {name!r}; known filters: {sorted(REGISTRY)}") from None
    return cls(seed=seed, **settings)
