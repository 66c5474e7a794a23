"""Layering rules that import-linter cannot state: the loops, the gateway and the use cases depend on small
repository protocols (`polycloud.state.repositories*`), never on the whole `Store`; only composition roots
(`server/`, `api/`, `cli/`, `drills/` and the gateway's `running.py`) name it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import polycloud
from polycloud.state import Store, repositories, repositories_runtime, repositories_services

PACKAGE = Path(polycloud.__file__).parent
CONSUMERS = ("controller", "obs", "services", "gateway")
COMPOSITION_ROOTS = {
    "gateway/running.py": "the gateway process's composition root: it opens the store (`Store.attach`)",
}
PROTOCOL_MODULES = (repositories, repositories_runtime, repositories_services)


def _imports_store(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("polycloud.state")
        and any(alias.name in ("Store", "*") for alias in node.names)
        for node in ast.walk(tree)
    )


def _consumer_modules() -> list[str]:
    found = [p for part in CONSUMERS for p in sorted((PACKAGE / part).rglob("*.py"))]
    return [p.relative_to(PACKAGE).as_posix() for p in found]


def test_consumers_do_not_import_the_store() -> None:
    modules = _consumer_modules()
    assert len(modules) > 50  # the walk found the packages
    offenders = [m for m in modules if m not in COMPOSITION_ROOTS and _imports_store(PACKAGE / m)]
    assert offenders == [], (
        f"{offenders} import `Store`: type the store parameter with a protocol of "
        "polycloud.state.repositories* (the composition roots pass the real `Store`)"
    )


def _protocols() -> list[type]:
    return [
        cls
        for module in PROTOCOL_MODULES
        for cls in vars(module).values()
        if inspect.isclass(cls) and cls.__module__ == module.__name__ and getattr(cls, "_is_protocol", False)
    ]


def _shape(function: object) -> list[tuple[str, object, bool]]:
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default is not inspect.Parameter.empty) for p in parameters]


@pytest.mark.parametrize("protocol", _protocols(), ids=lambda cls: cls.__name__)
def test_the_store_has_every_method_of_every_protocol(protocol: type) -> None:
    """mypy checks this where a composition root passes the real store; this covers every protocol."""
    for name, member in vars(protocol).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            assert inspect.isfunction(getattr(Store, name, None)), (
                f"{protocol.__name__}.{name} is not on Store"
            )
            assert _shape(member) == _shape(getattr(Store, name)), f"{protocol.__name__}.{name} differs"
