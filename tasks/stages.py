"""What each stage reads, writes, and which params and code it depends on.

This table is the single source for the Prefect cache keys and for ``dvc.yaml`` (written by
``python -m flows.dvc_file``). A stage's code dependencies are not listed by hand: they are
the project modules its task module imports, followed transitively, plus the params schema
that gives it its values. This file and ``tasks/common.py`` are the cache machinery every
stage shares; they are left out, so editing them reruns nothing.
"""

from __future__ import annotations

import dis
import functools
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scan_core", "tasks")
SHARED_MACHINERY = frozenset({"tasks/common.py", "tasks/stages.py"})
PARAMS_SCHEMA = "scan_core/config.py"


@dataclass(frozen=True)
class StageSpec:
    name: str
    params: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @property
    def module(self) -> str:
        return f"tasks/{self.name}.py"

    @property
    def folders(self) -> tuple[str, ...]:
        return tuple(path for path in self.outputs if Path(path).suffix == "")

    @property
    def code(self) -> tuple[str, ...]:
        return code_dependencies(self.module, PARAMS_SCHEMA)


SIMCLR_AUGMENT = ("augment.hflip", "augment.crop_min_scale", "augment.jitter_strength", "augment.rotation")
STRONG_AUGMENT = ("augment.hflip", "augment.strong_ops", "augment.cutout_fraction")

STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("prepare", params=("data",), inputs=(), outputs=("artifacts/prepare",)),
        StageSpec("pretext", params=("pretext", *SIMCLR_AUGMENT), inputs=("prepare",),
                  outputs=("artifacts/pretext",)),
        StageSpec("embed", params=("embed",), inputs=("prepare", "pretext"), outputs=("artifacts/embed",)),
        StageSpec("mine", params=("mine",), inputs=("prepare", "embed"),
                  outputs=("artifacts/mine", "metrics/mine.json")),
        StageSpec("scan", params=("scan", *SIMCLR_AUGMENT, *STRONG_AUGMENT),
                  inputs=("prepare", "pretext", "embed", "mine"), outputs=("artifacts/scan",)),
        StageSpec("selflabel", params=("selflabel", *STRONG_AUGMENT), inputs=("prepare", "mine", "scan"),
                  outputs=("artifacts/selflabel",)),
        StageSpec("evaluate", params=("evaluate",), inputs=("prepare", "embed", "mine", "scan", "selflabel"),
                  outputs=("metrics/evaluate.json", "reports", "plots")),
    )
}


def _module_file(dotted: str) -> str | None:
    """The project file that defines module ``dotted``, relative to the project root."""
    if dotted.split(".")[0] not in PACKAGES:
        return None
    base = PROJECT_ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(PROJECT_ROOT).as_posix()
    return None


def _package_of(file: str) -> str:
    parts = Path(file).with_suffix("").parts
    return ".".join(parts[:-1])


def _import_statements(code: types.CodeType) -> Iterator[tuple[str, int, tuple[str, ...]]]:
    """``(module, level, names)`` of every import compiled into ``code`` or the functions and
    classes inside it. Read from bytecode rather than ``ast.parse``: building AST objects is not
    thread-safe on CPython 3.11 before 3.11.9 (gh-106905), and Prefect runs stages beside threads
    that parse too, which failed a stage with "AST constructor recursion depth mismatch"."""
    instructions = [step for step in dis.get_instructions(code) if step.opname != "EXTENDED_ARG"]
    for index, step in enumerate(instructions):
        if step.opname == "IMPORT_NAME":
            level, names = instructions[index - 2].argval, instructions[index - 1].argval
            yield step.argval, level, tuple(names or ())
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _import_statements(constant)


def imported_files(file: str) -> set[str]:
    """Project files ``file`` imports, anywhere in its body. ``from package import name``
    counts the submodule when ``name`` is one, and the package's ``__init__`` only when a
    name is taken from it."""
    code = compile((PROJECT_ROOT / file).read_text(), file, "exec", dont_inherit=True)
    found: set[str] = set()
    for module, level, names in _import_statements(code):
        if level:
            package = _package_of(file).split(".")
            module = ".".join(package[: len(package) - level + 1] + ([module] if module else []))
        if not names:
            found.update(filter(None, [_module_file(module)]))
        for name in names:
            file_found = _module_file(f"{module}.{name}") or _module_file(module)
            if file_found:
                found.add(file_found)
    return found


@functools.cache
def code_dependencies(*roots: str) -> tuple[str, ...]:
    """Every project file reachable from ``roots`` through imports, minus the shared machinery."""
    seen: set[str] = set()
    pending = [root for root in roots if root not in SHARED_MACHINERY]
    while pending:
        file = pending.pop()
        if file in seen:
            continue
        seen.add(file)
        pending.extend(imported_files(file) - SHARED_MACHINERY - seen)
    return tuple(sorted(seen))


def group_keys(keys: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The flat keys that ``wanted`` names, in the order of ``keys`` (a group means all its keys)."""
    return [key for key in keys if any(key == name or key.startswith(name + ".") for name in wanted)]


def stage_params(params: Any, stage: str) -> dict[str, object]:
    """The flat ``{"group.key": value}`` params one stage depends on, from ``Params`` or its
    ``model_dump()`` (this module does not import the schema: it is no stage's code)."""
    nested = params.model_dump() if hasattr(params, "model_dump") else params
    flat = {f"{group}.{key}": value for group, values in nested.items() for key, value in values.items()}
    return {key: flat[key] for key in group_keys(list(flat), STAGES[stage].params)}


def group(subset: dict[str, object], name: str) -> dict[str, object]:
    """The keys of one params group, without the group prefix: ``{"epochs": 50, ...}``."""
    return {key.split(".", 1)[1]: value for key, value in subset.items() if key.startswith(name + ".")}
