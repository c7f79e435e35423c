"""The public surface: ``ratekeeper.__all__`` is sorted, complete and light to import."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

import ratekeeper

# optional integrations: the core must not pull them in (STYLE.md section 6)
HEAVY_MODULES = (
    "redis", "starlette", "httpx", "prometheus_client", "uvicorn", "fastapi", "flask", "django",
)  # fmt: skip

#: public names imported on first use (``ratekeeper.__getattr__``), not at import
LAZY_NAMES = {"limit"}

PINNED_NAMES = ("AsyncRateLimiter", "Decision", "MemoryStore", "Rate", "RateLimiter")


def isort_style_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: SCREAMING_SNAKE_CASE, then CamelCase, then everything else."""
    if name.isupper():
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def test_all_is_sorted_constants_then_classes_then_functions() -> None:
    assert ratekeeper.__all__ == sorted(ratekeeper.__all__, key=isort_style_key)


def test_all_names_no_name_twice() -> None:
    assert len(set(ratekeeper.__all__)) == len(ratekeeper.__all__)


@pytest.mark.parametrize("name", ratekeeper.__all__)
def test_every_name_in_all_is_importable_from_the_package(name: str) -> None:
    module = importlib.import_module("ratekeeper")

    assert getattr(module, name) is not None


def test_all_is_complete_every_public_name_of_the_package_is_listed() -> None:
    public = {
        name
        for name, value in vars(ratekeeper).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)  # subpackages: ratekeeper.stores, ...
        and type(value).__module__ != "__future__"  # `from __future__ import annotations`
    }

    assert public | LAZY_NAMES == set(ratekeeper.__all__)


def test_pinned_names_are_public() -> None:
    assert set(PINNED_NAMES) <= set(ratekeeper.__all__)


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from ratekeeper import *", namespace)  # noqa: S102 -- a fixed string, to test `import *`

    assert set(namespace) - {"__builtins__"} == set(ratekeeper.__all__)


@pytest.mark.parametrize(
    "statement",
    ["import ratekeeper", "from ratekeeper import limit; limit('10/minute', key='ip')"],
)
def test_importing_ratekeeper_does_not_import_optional_heavy_modules(statement: str) -> None:
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    # a fresh interpreter: this one has pytest plugins that may have imported anything
    result = subprocess.run(  # noqa: S603 -- our own interpreter running a fixed snippet
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert json.loads(result.stdout) == []


def test_limit_is_imported_on_first_use_and_unknown_names_still_fail() -> None:
    from ratekeeper.integrations.routes import limit

    assert ratekeeper.limit is limit
    assert "limit" not in vars(ratekeeper)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        ratekeeper.nothing_here  # noqa: B018 -- the attribute access is the test
