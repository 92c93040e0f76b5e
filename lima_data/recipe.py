"""Recipe loading and validation (TOML).

A recipe says which sources to read, the filter chain of each source with its settings, and how to select
(quotas, tau, split). Recipes may ``include`` other TOML files (the bundled site lists and phrase lists are
such files); an included file is merged under the including one, which wins on conflicts. Names are resolved
relative to the including file first, then the bundled ``lima_data/recipes/`` folder.

Layout::

    name = "lima"
    seed = 0
    include = ["stackexchange_sites.toml", "stackexchange_style.toml"]

    [sources.stackexchange]
    inputs = []                       # default inputs; "package:samples/..." names bundled data
    chain = ["site_group", "answer_score", ...]

    [sources.stackexchange.filters.length]
    min_chars = 1200

    [sources.stackexchange.selection]
    split = "train"
    tau = 3.0
    quotas = { stem = 200, other = 200 }

:func:`load_recipe` checks a recipe once and reports every problem at once; the result's ``spec`` is typed
(:class:`RecipeSpec` > :class:`SourceSpec` > :class:`SelectionSpec`, :class:`DevFillSpec`), and
:func:`recipe_schema` is its JSON Schema (``lima-data recipe --schema``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import RecipeError, path_text
from .filters.dedup import DEFAULTS as DEDUP_DEFAULTS

BUNDLED = Path(str(resources.files("lima_data") / "recipes"))
PACKAGE = Path(str(resources.files("lima_data")))
PACKAGE_PREFIX = "package:"

SPLITS = ("train", "dev", "test")


class _Spec(BaseModel):
    """A part of a recipe: unknown keys are errors; built from the validated, resolved recipe."""

    model_config = ConfigDict(extra="forbid", frozen=False)


class SelectionSpec(_Spec):
    """``[sources.<name>.selection]``: how a source's quotas are filled (see :mod:`lima_data.selection`)."""

    method: str | None = Field(None, description="tau, category, top, random or split (default: the source's "
                                                   "first method)")
    split: Literal["train", "dev", "test"] = Field("train", description="the split of every group not in splits")
    splits: dict[str, Literal["train", "dev", "test"]] = Field({}, description="group = split")
    prompt_only: list[str] = Field([], description="groups whose rows have no response (LIMA's test prompts)")
    tau: float = Field(1.0, gt=0, description="tau method: sites drawn with p ~ n_site^(1/tau) (LIMA: 3)")
    quotas: dict[str, Annotated[int, Field(ge=0)]] = Field(description="group = rows wanted")
    band_shares: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        {}, description="length band = share of each quota (0 to 1, summing to at most 1)")

    def split_of(self, group: str) -> str:
        """The split a quota group's rows go to (for the ``split`` method the group is the split)."""
        if self.method == "split":
            return group
        return self.splits.get(group, self.split)


class SourceSpec(_Spec):
    """``[sources.<name>]``: one source's reader settings, filter chain with settings, and selection."""

    enabled: bool = Field(True, description="false: the source is left out (an include's source switched off)")
    inputs: list[str] = Field([], description="default inputs; \"package:samples/...\" names bundled data")
    reader: dict[str, Any] | None = Field(None, description="the reader's settings (see the source's reader)")
    chain: list[str] = Field(description="filter names (or module:Class) in order")
    filters: dict[str, dict[str, Any]] = Field({}, description="filter name = its settings")
    filters_from: str | None = Field(None, description="take the settings of this source's filters (resolved at "
                                                        "load)")
    selection: SelectionSpec


class NearDedupSpec(_Spec):
    """``[dedup.near]``: near-duplicate responses by MinHash LSH over word shingles."""

    enabled: bool = DEDUP_DEFAULTS["near"]["enabled"]
    threshold: float = Field(DEDUP_DEFAULTS["near"]["threshold"], description="Jaccard similarity (0 to 1)")
    num_perm: int = DEDUP_DEFAULTS["near"]["num_perm"]
    shingle: int = Field(DEDUP_DEFAULTS["near"]["shingle"], description="words per shingle")


class PromptDedupSpec(_Spec):
    """``[dedup.prompt]``: short prompts that say the same thing (fuzzy token-sort ratio over character n-grams)."""

    enabled: bool = DEDUP_DEFAULTS["prompt"]["enabled"]
    threshold: float = Field(DEDUP_DEFAULTS["prompt"]["threshold"], description="rapidfuzz token_sort_ratio (0-100)")
    max_chars: int = Field(DEDUP_DEFAULTS["prompt"]["max_chars"], description="only prompts up to this long")
    lsh_threshold: float = DEDUP_DEFAULTS["prompt"]["lsh_threshold"]
    char_ngram: int = DEDUP_DEFAULTS["prompt"]["char_ngram"]


class DedupSpec(_Spec):
    """``[dedup]``: the dedup stage across all sources (:class:`~lima_data.filters.dedup.Dedup`)."""

    enabled: bool = True
    exact: bool = Field(DEDUP_DEFAULTS["exact"], description="exact duplicates of the normalised response")
    near: NearDedupSpec = NearDedupSpec()
    prompt: PromptDedupSpec = PromptDedupSpec()

    def settings(self) -> dict[str, Any]:
        """The settings the recipe gave (what :class:`~lima_data.filters.dedup.Dedup` takes)."""
        return self.model_dump(exclude_unset=True)


class DecontaminationSpec(_Spec):
    """``[decontamination]``: train candidates sharing a word n-gram with a test prompt or a benchmark prompt are
    dropped (:class:`~lima_data.filters.decontaminate.Decontaminate`)."""

    enabled: bool = True
    ngram: int = Field(13, description="words per n-gram (LIMA: 13)")
    benchmarks: list[str] = Field([], description="files of prompts that no train row may overlap")

    def settings(self) -> dict[str, Any]:
        """The settings the recipe gave (what :class:`~lima_data.filters.decontaminate.Decontaminate` takes)."""
        return self.model_dump(exclude_unset=True)


class DevFillSpec(_Spec):
    """``[dev_fill]``: when authored rows cannot fill the dev quota, take the rest from the curated pool."""

    from_pool: bool = False


class RecipeSpec(_Spec):
    """A whole recipe (includes merged): the model of a recipe file (``include`` is resolved at load)."""

    name: str | None = None
    description: str | None = None
    seed: int = 0
    include: list[str] = Field([], description="other recipe files merged under this one")
    sources: dict[str, SourceSpec]
    dedup: DedupSpec = DedupSpec()
    decontamination: DecontaminationSpec = DecontaminationSpec()
    dev_fill: DevFillSpec = DevFillSpec()


#: The keys of each table, from the models (one list per thing).
_TOP_KEYS = set(RecipeSpec.model_fields)
_SOURCE_KEYS = set(SourceSpec.model_fields)
_SELECTION_KEYS = set(SelectionSpec.model_fields)
#: ``[dev_fill]``: when the dev quota cannot be filled from authored rows, take the rest from the curated pool
#: (kept candidates no quota took; never train or test rows). Off unless the recipe turns it on (lima.toml does).
DEV_FILL_DEFAULTS = DevFillSpec().model_dump()


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file (``lima-data recipe --schema``): editors complete and check TOML with it."""
    schema = RecipeSpec.model_json_schema()
    schema["title"] = "lima-data recipe"
    return schema


#: Tables that an including recipe replaces whole instead of merging key by key.
_REPLACED = {"quotas", "splits", "band_shares"}


def display_path(path: Path) -> str:
    """How an input is recorded: bundled files relative to the package (``package:samples/...``), so manifests of
    the sample match across machines; other paths as given (a name that is not UTF-8 escaped, ``\\xff``: see
    :func:`~lima_data.errors.path_text`)."""
    try:
        return PACKAGE_PREFIX + Path(path).resolve().relative_to(PACKAGE.resolve()).as_posix()
    except (ValueError, RuntimeError, OSError):  # (RuntimeError: a symbolic-link loop, which is no bundled file)
        return path_text(path)


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in _REPLACED:
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise RecipeError(f"{path_text(path)}: cannot read recipe: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path_text(path)}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path_text(path)}: not UTF-8 text (byte offset {exc.start}); a recipe is a UTF-8 TOML "
                          "file") from None


def _find(name: str, relative_to: Path | None) -> Path:
    candidates = []
    if relative_to is not None:
        candidates.append(relative_to / name)
    candidates += [Path(name), BUNDLED / name, BUNDLED / f"{name}.toml"]
    for path in candidates:
        if path.is_file():
            return path
    known = sorted(p.stem for p in BUNDLED.glob("*.toml"))
    raise RecipeError(f"recipe {name!r} not found (not a file, nor a bundled recipe: {', '.join(known)})")


def _load(path: Path, seen: tuple[Path, ...], origins: dict[tuple[str, ...], Path] | None = None) -> dict[str, Any]:
    """The recipe at ``path`` with its includes merged (later files win key by key). ``origins`` receives, for
    every key path, the file that set it last, so a problem is reported in the file that holds it."""
    if path.resolve() in seen:
        raise RecipeError(f"{path}: include cycle")
    data = _read_toml(path)
    merged: dict[str, Any] = {}
    includes = data.pop("include", [])
    if not isinstance(includes, list):
        raise RecipeError(f"{path}: include must be a list of file names")
    for name in includes:
        try:
            found = _find(str(name), path.parent)
        except RecipeError as exc:
            raise RecipeError(f"{path_text(path)}: include: {exc}") from None
        merged = _merge(merged, _load(found, seen + (path.resolve(),), origins))
    _drop_unrun_settings(merged, data)
    if origins is not None:
        _record_origins(data, path, (), origins)
    return _merge(merged, data)


def _record_origins(data: dict[str, Any], path: Path, prefix: tuple[str, ...],
                    origins: dict[tuple[str, ...], Path]) -> None:
    for key, value in data.items():
        origins[prefix + (key,)] = path
        if isinstance(value, dict):
            _record_origins(value, path, prefix + (key,), origins)


#: Where :func:`_drop_unrun_settings` keeps a source's dropped filter settings until ``filters_from`` is resolved.
_UNRUN = "__unrun_filters__"


def _drop_unrun_settings(included: dict[str, Any], data: dict[str, Any]) -> None:
    """A recipe that sets a source's ``chain`` drops the settings its includes gave for filters the new chain no
    longer runs (an ablation that removes filters need not repeat the others); settings it writes itself are
    still checked against its chain. The dropped settings are kept aside under ``_UNRUN`` until
    :func:`_inherit_filters` has run: another source may still take them with ``filters_from`` (a recipe including
    ``lima-dialogue`` that shortens the Stack Exchange chain leaves the dialogue source its style settings)."""
    for name, spec in (data.get("sources") or {}).items():
        inherited = (included.get("sources") or {}).get(name)
        if isinstance(spec, dict) and isinstance(spec.get("chain"), list) and isinstance(inherited, dict) \
                and isinstance(inherited.get("filters"), dict):
            unrun = {f: v for f, v in inherited["filters"].items() if f not in spec["chain"]}
            inherited.setdefault(_UNRUN, {}).update(unrun)
            inherited["filters"] = {f: v for f, v in inherited["filters"].items() if f in spec["chain"]}


@dataclass
class Recipe:
    """A loaded, merged and validated recipe.

    Attributes:
        path: the recipe file.
        data: the resolved recipe (includes merged, overrides applied): what manifest.json records and
            :meth:`sha256` hashes.
        spec: the same, typed (:class:`RecipeSpec`), built once from ``data`` (build a new ``Recipe`` after
            changing ``data``).

    Raises:
        RecipeError: ``data`` does not fit the models (every problem, one line each).
    """

    path: Path
    data: dict[str, Any]
    spec: RecipeSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            self.spec = RecipeSpec.model_validate(self.data)
        except ValidationError as exc:
            raise RecipeError("\n".join(f"{self.path}: {'.'.join(map(str, e['loc']))}: {e['msg']}"
                                         for e in exc.errors())) from None

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def seed(self) -> int:
        return self.data["seed"]

    @property
    def sources(self) -> dict[str, SourceSpec]:
        return self.spec.sources

    def sha256(self) -> str:
        """sha256 of the resolved recipe as canonical JSON (sorted keys): equal recipes, equal hashes."""
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def source_inputs(self, source: str) -> list[Path]:
        """The recipe's default inputs of a source, with ``package:`` names resolved to the bundled files."""
        out = []
        for item in self.sources[source].inputs:
            out.append(PACKAGE / item[len(PACKAGE_PREFIX):] if item.startswith(PACKAGE_PREFIX) else Path(item))
        return out


def load_recipe(name_or_path: str | Path, *, seed: int | None = None) -> Recipe:
    """Load a recipe by bundled name (``"sample"``, ``"lima"``) or path, merge its includes and validate it.

    Args:
        seed: overrides the recipe's seed (recorded in the resolved recipe and so in its hash).

    Raises:
        RecipeError: the file is missing or not TOML, or a key or value is invalid (the message names the file
            and the key).
    """
    path = _find(str(name_or_path), None)
    origins: dict[tuple[str, ...], Path] = {}
    data = _load(path, (), origins)
    _inherit_filters(data, path)  # before disabled sources are removed: a disabled source can still lend settings
    data.setdefault("name", path.stem)
    data.setdefault("seed", 0)
    if isinstance(data.get("sources"), dict):
        data["sources"] = {name: spec for name, spec in data["sources"].items()
                           if not (isinstance(spec, dict) and spec.get("enabled", True) is False)}
    if seed is not None:
        data["seed"] = seed
    if isinstance(data.get("dev_fill", {}), dict):
        data["dev_fill"] = {**DEV_FILL_DEFAULTS, **data.get("dev_fill", {})}
    validate(data, path, origins)
    return Recipe(path=path, data=data)


def _inherit_filters(data: dict[str, Any], path: Path) -> None:
    """Resolve ``filters_from``: a source that names another source (``filters_from = "stackexchange"``) takes that
    source's settings for every filter of its own chain it does not set itself (the style phrase lists of a
    dialogue source are those of single-turn Stack Exchange, without a copy). Settings it gives win key by key.
    The resolved settings are written into the recipe (so its hash and manifest record them) and the key removed.

    Raises:
        RecipeError: ``filters_from`` names a source the recipe does not have.
    """
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return
    for name, spec in sources.items():
        if not isinstance(spec, dict) or "filters_from" not in spec:
            continue
        other = spec.pop("filters_from")
        if other not in sources or not isinstance(sources[other], dict):
            raise RecipeError(f"{path}: sources.{name}.filters_from: {other!r} is not a source of this recipe")
        theirs = {**sources[other].get(_UNRUN, {}), **sources[other].get("filters", {})}
        mine = spec.setdefault("filters", {})
        for filter_name in spec.get("chain", []):
            if filter_name in theirs:
                mine[filter_name] = _merge(theirs[filter_name], mine.get(filter_name, {}))
    for spec in sources.values():
        if isinstance(spec, dict):
            spec.pop(_UNRUN, None)


def validate(data: dict[str, Any], path: Path, origins: dict[tuple[str, ...], Path] | None = None) -> None:
    """Check a merged recipe and fill each selection's default ``method``.

    ``origins``: the file that set each key path (from loading ``path`` and its includes); a problem in a key an
    included file set is reported in that file, ``<file> (included by <path>)``.

    Raises:
        RecipeError: listing every problem found, one line each, naming the file and the key
            (``<file>: <key>: <problem>``; several under a line ``N problems in the recipe:``).
    """
    errors: list[str] = []

    def fail(key: str, message: str) -> None:
        parts = tuple(key.split("."))
        origin = next((origins[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in (origins or {})), path)
        where = path if origin.resolve() == path.resolve() else f"{origin} (included by {path})"
        errors.append(f"{where}: {key}: {message}")

    for key in sorted(set(data) - _TOP_KEYS):
        fail(key, f"unknown key (known: {sorted(_TOP_KEYS)})")
    if not isinstance(data["seed"], int) or isinstance(data["seed"], bool):
        fail("seed", "must be an integer")
    dev_fill = data.get("dev_fill", {})
    if not isinstance(dev_fill, dict) or set(dev_fill) - set(DEV_FILL_DEFAULTS):
        fail("dev_fill", f"must be a table with the keys {sorted(DEV_FILL_DEFAULTS)}")
    elif not isinstance(dev_fill.get("from_pool", False), bool):
        fail("dev_fill.from_pool", "must be true or false")
    from .filters.decontaminate import Decontaminate
    from .filters.dedup import Dedup

    for key, stage in (("dedup", Dedup), ("decontamination", Decontaminate)):
        if key in data and not isinstance(data[key], dict):
            fail(key, "must be a table")
            continue
        try:
            stage(data.get(key))
        except RecipeError as exc:
            fail(key, str(exc))
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        fail("sources", "the recipe names no source")
        sources = {}
    for source, spec in sources.items():
        _validate_source(source, spec, data["seed"] if isinstance(data["seed"], int) else 0, fail)
    if len(errors) == 1:
        raise RecipeError(errors[0])
    if errors:
        raise RecipeError(f"{len(errors)} problems in the recipe:\n" + "\n".join(f"  {e}" for e in errors))


def _validate_source(source: str, spec: Any, seed: int, fail) -> None:
    """The checks of one ``[sources.<source>]`` table for :func:`validate` (each problem reported by ``fail``)."""
    from .filters import build_filter
    from .sources.base import source_class

    where = f"sources.{source}"
    try:
        cls = source_class(source)
    except RecipeError as exc:
        fail(where, str(exc))
        return
    if not isinstance(spec, dict):
        fail(where, "must be a table")
        return
    for key in sorted(set(spec) - _SOURCE_KEYS):
        fail(f"{where}.{key}", f"unknown key (known: {sorted(_SOURCE_KEYS)})")
    try:
        cls(spec.get("reader"))
    except RecipeError as exc:
        fail(f"{where}.reader", str(exc))
    chain = spec.get("chain")
    filters = spec.get("filters", {})
    if not isinstance(chain, list):
        fail(f"{where}.chain", "must be a list of filter names")
    elif not isinstance(filters, dict):
        fail(f"{where}.filters", "must be a table of filter settings")
    else:
        for name in filters:
            if name not in chain:  # settings an include gave for a filter this chain dropped are gone already
                fail(f"{where}.filters.{name}", "settings for a filter that is not in the chain")
        for name in chain:
            try:
                build_filter(name, filters.get(name, {}), seed)
            except RecipeError as exc:
                fail(f"{where}.filters.{name}", str(exc))
    inputs = spec.get("inputs", [])
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        fail(f"{where}.inputs", "must be a list of paths")
    selection = spec.get("selection")
    if not isinstance(selection, dict):
        fail(f"{where}.selection", "missing")
        return
    for key in sorted(set(selection) - _SELECTION_KEYS):
        fail(f"{where}.selection.{key}", f"unknown key (known: {sorted(_SELECTION_KEYS)})")
    method = selection.get("method", cls.methods[0])
    if method not in cls.methods:
        fail(f"{where}.selection.method", f"{method!r} is not a method of this source (known: {cls.methods})")
    selection["method"] = method
    tau = selection.get("tau", 1.0)
    if not isinstance(tau, (int, float)) or tau <= 0:
        fail(f"{where}.selection.tau", "must be a positive number")
    bands = selection.get("band_shares", {})
    if not isinstance(bands, dict) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in bands.values()) \
            or sum(bands.values()) > 1:
        fail(f"{where}.selection.band_shares", "must be a table of band = share (0 to 1, summing to at most 1)")
    quotas = selection.get("quotas")
    if not isinstance(quotas, dict) or not quotas:
        fail(f"{where}.selection.quotas", "must be a table of group = count")
        return
    groups = SPLITS if method == "split" else cls.groups
    for group, count in quotas.items():
        if groups is not None and group not in groups:
            fail(f"{where}.selection.quotas.{group}", f"unknown group (known: {groups})")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            fail(f"{where}.selection.quotas.{group}", "must be a non-negative integer")
    named = selection.get("splits", {})
    for split in (selection.get("split", "train"), *(named.values() if isinstance(named, dict) else ())):
        if split not in SPLITS:
            fail(f"{where}.selection.split", f"{split!r} is not one of {SPLITS}")
    for group in list(named if isinstance(named, dict) else []) + list(selection.get("prompt_only", [])):
        if group not in quotas:
            fail(f"{where}.selection", f"group {group!r} named in splits / prompt_only has no quota")
