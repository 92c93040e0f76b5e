"""Super-NaturalInstructions reader (LIMA section 2.1: "we sample 50 training examples from Super-Natural
Instructions ... we select 50 natural language generation tasks such as summarization, paraphrasing, and style
transfer, and pick a single random example from each").

Reads the task files of the natural-instructions repository (``tasks/task<N>_<name>.json``): keys ``Definition``
(list of str), ``Positive Examples``, ``Instances`` (``{"id", "input", "output": [str, ...]}``), ``Categories``,
``Domains``, ``Input_language`` / ``Output_language``. Each task file gives one candidate: a seeded random instance
(the instance with the smallest ``stable_unit(seed, task, instance id)``, so the pick does not depend on file order)
and a seeded random one of its outputs. Prompt = the definition, a blank line, the instance's input; response =
the output. Group: ``natural_instructions``; domain: the task's first category.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..candidate import Candidate
from ..errors import InputError
from ..text import loads_json, stable_unit
from .base import _LONE_ESCAPE, Shard, Source, _without_lone_surrogates, peek_lines

SOURCE = "natural_instructions"
LICENCE = "Apache-2.0 (natural-instructions repository; per-task sources vary)"
_TASK_NAME = re.compile(r"^task\d+_.+\.json$", re.I)


class NaturalInstructionsSource(Source):
    """Task JSON files of Super-NaturalInstructions; one seeded instance per task."""

    name = SOURCE
    groups = ("natural_instructions",)
    methods = ("random", "top")
    defaults = {"max_task_bytes": 200 * 2**20}

    def claim(self, path: Path, explicit: bool) -> Shard | None:
        if path.suffix.lower() != ".json":
            return None
        head = " ".join(peek_lines(path, 200, limit=1 << 14))
        if _TASK_NAME.match(path.name) or ('"Definition"' in head and '"Instances"' in head) or (
                '"Definition"' in head and explicit):
            return Shard(SOURCE, path, "ni_task_json", path.stat().st_size)
        return None

    def read(self, shards, stats, progress) -> Iterator[Candidate]:
        for shard in shards:
            shard_stats = stats(shard)
            advance = progress(shard)
            if shard.size > self.settings["max_task_bytes"]:
                raise InputError(shard.path, f"task file larger than max_task_bytes ({self.settings['max_task_bytes']})")
            try:
                text = shard.path.read_text(encoding="utf-8-sig")
                if not text.strip():  # skipped with a warning, as every source's empty file
                    shard_stats.empty(self.strict)
                    continue
                shard_stats.rows += 1
                task = loads_json(text)
            except json.JSONDecodeError as exc:
                self.malformed(shard_stats, exc.lineno, f"bad JSON: {exc.msg}")
                continue
            except UnicodeDecodeError as exc:
                self.malformed(shard_stats, None, f"not UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
                                                  f"{exc.start})")
                continue
            if _LONE_ESCAPE.search(text):
                task = _without_lone_surrogates(task)
            candidate = self._candidate(shard, shard_stats, task)
            if candidate is not None:
                yield candidate
            if advance is not None:
                advance(shard.size)

    def _candidate(self, shard: Shard, stats, task: Any) -> Candidate | None:
        try:
            return self._task_candidate(shard, stats, task)
        except (TypeError, ValueError, AttributeError) as exc:  # a field of the wrong JSON type (issue 15)
            self.malformed(stats, None, f"task of the wrong shape ({exc})")
            return None

    def _task_candidate(self, shard: Shard, stats, task: Any) -> Candidate | None:
        """The candidate of one task file: one seeded instance and one seeded non-blank output of it.

        Raises:
            TypeError, ValueError, AttributeError: a field has the wrong JSON type (``Instances`` not a list, ...).
        """
        if not isinstance(task, dict) or "Definition" not in task or "Instances" not in task:
            self.malformed(stats, None, "not a natural-instructions task (needs Definition and Instances)")
            return None
        name = shard.path.stem
        definition = task["Definition"]
        definition = " ".join(definition) if isinstance(definition, list) else str(definition)
        instances = [i for i in task["Instances"] if isinstance(i, dict) and i.get("input") is not None
                     and _outputs(i)]
        if not instances:
            self.malformed(stats, None, "task without a usable instance (input and a non-empty output list)")
            return None
        instance = min(instances, key=lambda i: (stable_unit(self.seed, name, i.get("id")), str(i.get("id"))))
        output = min(_outputs(instance), key=lambda o: (stable_unit(self.seed, name, instance.get("id"), o), str(o)))
        stats.count("tasks")
        categories = [str(c) for c in task.get("Categories") or []]
        return Candidate(
            id=f"{SOURCE}/{name}",
            source=SOURCE,
            domain=categories[0] if categories else "",
            prompt=f"{definition.strip()}\n\n{str(instance['input']).strip()}",
            response=str(output).strip(),
            meta={
                "group": "natural_instructions",
                "task": name,
                "instance_id": instance.get("id"),
                "categories": categories,
                "domains": task.get("Domains") or [],
                "input_language": task.get("Input_language") or [],
                "output_language": task.get("Output_language") or [],
                "instances": len(instances),
                "url": f"https://github.com/allenai/natural-instructions/blob/master/tasks/{shard.path.name}",
                "licence": LICENCE,
            },
        )


def _outputs(instance: dict[str, Any]) -> list[Any]:
    """An instance's outputs (a list, or one value) that are not blank: a blank one would make a train row with
    an empty answer, which the manifest refuses (issue 15)."""
    outputs = instance.get("output")
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [o for o in outputs if o is not None and str(o).strip()]
