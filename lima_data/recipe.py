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
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import RecipeError

BUNDLED = Path(str(resources.files("lima_data") / "recipes"))
PACKAGE = Path(str(resources.files("lima_data")))
PACKAGE_PREFIX = "package:"

SPLITS = ("train", "dev", "test")
_TOP_KEYS = {"name", "description", "seed", "include", "sources", "dedup", "decontamination"}
_SOURCE_KEYS = {"enabled", "inputs", "reader", "chain", "filters", "selection"}
_SELECTION_KEYS = {"method", "split", "splits", "prompt_only", "tau", "quotas", "band_shares"}


#: Tables that an including recipe replaces whole instead of merging key by key.
_REPLACED = {"quotas"}


def display_path(path: Path) -> str:
    """How an input is recorded: bundled files relative to the package (``package:samples/...``), so manifests of
    the sample match across machines; other paths as given."""
    try:
        return PACKAGE_PREFIX + Path(path).resolve().relative_to(PACKAGE.resolve()).as_posix()
    except ValueError:
        return str(path)


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
        raise RecipeError(f"{path}: cannot read recipe: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None


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


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path.resolve() in seen:
        raise RecipeError(f"{path}: include cycle")
    data = _read_toml(path)
    merged: dict[str, Any] = {}
    includes = data.pop("include", [])
    if not isinstance(includes, list):
        raise RecipeError(f"{path}: include must be a list of file names")
    for name in includes:
        merged = _merge(merged, _load(_find(name, path.parent), seen + (path.resolve(),)))
    return _merge(merged, data)


@dataclass
class Recipe:
    """A loaded, merged and validated recipe.

    Attributes:
        path: the recipe file.
        data: the resolved recipe (includes merged, overrides applied): what manifest.json records.
    """

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def seed(self) -> int:
        return self.data["seed"]

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        return self.data["sources"]

    def sha256(self) -> str:
        """sha256 of the resolved recipe as canonical JSON (sorted keys): equal recipes, equal hashes."""
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def source_inputs(self, source: str) -> list[Path]:
        """The recipe's default inputs of a source, with ``package:`` names resolved to the bundled files."""
        out = []
        for item in self.sources[source].get("inputs", []):
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
    data = _load(path, ())
    data.setdefault("name", path.stem)
    data.setdefault("seed", 0)
    if isinstance(data.get("sources"), dict):
        data["sources"] = {name: spec for name, spec in data["sources"].items()
                           if not (isinstance(spec, dict) and spec.get("enabled", True) is False)}
    if seed is not None:
        data["seed"] = seed
    validate(data, path)
    return Recipe(path=path, data=data)


def validate(data: dict[str, Any], path: Path) -> None:
    """Check a merged recipe; raise :class:`RecipeError` naming ``path`` and the key on the first problem."""
    from .filters import build_filter
    from .filters.base import REGISTRY as FILTERS
    from .sources.base import source_class

    def fail(key: str, message: str):
        raise RecipeError(f"{path}: {key}: {message}")

    for key in set(data) - _TOP_KEYS:
        fail(key, f"unknown key (known: {sorted(_TOP_KEYS)})")
    if not isinstance(data["seed"], int):
        fail("seed", "must be an integer")
    from .filters.decontaminate import Decontaminate
    from .filters.dedup import Dedup

    for key, stage in (("dedup", Dedup), ("decontamination", Decontaminate)):
        if key in data and not isinstance(data[key], dict):
            fail(key, "must be a table")
        try:
            stage(data.get(key))
        except RecipeError as exc:
            fail(key, str(exc))
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        fail("sources", "the recipe names no source")
    for source, spec in sources.items():
        where = f"sources.{source}"
        try:
            cls = source_class(source)
        except RecipeError as exc:
            fail(where, str(exc))
        for key in set(spec) - _SOURCE_KEYS:
            fail(f"{where}.{key}", f"unknown key (known: {sorted(_SOURCE_KEYS)})")
        try:
            cls(spec.get("reader"))
        except RecipeError as exc:
            fail(f"{where}.reader", str(exc))
        chain = spec.get("chain")
        if not isinstance(chain, list):
            fail(f"{where}.chain", "must be a list of filter names")
        filters = spec.get("filters", {})
        if not isinstance(filters, dict):
            fail(f"{where}.filters", "must be a table of filter settings")
        for name in list(filters):
            if name in chain:
                continue
            # Settings of a known filter that the chain leaves out come from an included recipe whose chain this
            # one shortened (a preset turning a filter off): dropped from the resolved recipe, so what manifest.json
            # records is what runs. An unknown name is a typo.
            try:
                build_filter(name, {}, 0)  # imports every filter module, so the registry is complete
            except RecipeError:
                pass
            if name not in FILTERS:
                fail(f"{where}.filters.{name}", f"settings for an unknown filter (known: {sorted(FILTERS)})")
            del filters[name]
        for name in chain:
            try:
                build_filter(name, filters.get(name, {}), data["seed"])
            except RecipeError as exc:
                fail(f"{where}.filters.{name}", str(exc))
        selection = spec.get("selection")
        if not isinstance(selection, dict):
            fail(f"{where}.selection", "missing")
        for key in set(selection) - _SELECTION_KEYS:
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
        groups = SPLITS if method == "split" else cls.groups
        for group, count in quotas.items():
            if groups is not None and group not in groups:
                fail(f"{where}.selection.quotas.{group}", f"unknown group (known: {groups})")
            if not isinstance(count, int) or count < 0:
                fail(f"{where}.selection.quotas.{group}", "must be a non-negative integer")
        splits = {selection.get("split", "train"), *selection.get("splits", {}).values()}
        for split in splits:
            if split not in SPLITS:
                fail(f"{where}.selection.split", f"{split!r} is not one of {SPLITS}")
        for group in list(selection.get("splits", {})) + list(selection.get("prompt_only", [])):
            if group not in quotas:
                fail(f"{where}.selection", f"group {group!r} named in splits / prompt_only has no quota")
        inputs = spec.get("inputs", [])
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            fail(f"{where}.inputs", "must be a list of paths")
