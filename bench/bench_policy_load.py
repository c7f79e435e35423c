"""How long loading a policy file takes, against its size, up to the 1 MiB limit.

Generated policies of growing size (a mix of limits, plans, hashed keys,
exact and patterned categories, lockouts), then 1 MiB of each shape that was
once quadratic (or worse) to load, then the hostile files of issue 10: each is
written to a file and loaded with ``load_policy`` (read, parse, validate,
compile), best of three, in CPU time (``time.process_time``: the shared VM's
other load does not count). Loading must take well under a second whatever
the file; anything refused must be a ``PolicyError``.

    python bench/bench_policy_load.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.report import table
from ratekeeper import PolicyError, load_policy

KIB = 1024
MIB = 1024 * KIB
HEAD = "version: 1\nname: bench\n"


def filled(head: str, item: Callable[[int], str], size: int, tail: str = "") -> str:
    """``head``, ``item(0)``, ``item(1)``... as many as fit in ``size`` bytes, ``tail``."""
    parts, used, index = [head], len(head) + len(tail), 0
    while used + len(line := item(index)) <= size:
        parts.append(line)
        used += len(line)
        index += 1
    return "".join(parts) + tail


def mixed(size: int) -> str:
    """A policy as a provider writes one, scaled: a tenth limits and plans, the rest halves."""
    limits = filled(
        HEAD + "anonymous_plan: p0\nlimits:\n  api: {by: api_key, rate: 100/minute}\n",
        lambda n: f"  l{n}: {{by: [api_key, ip], rate: '{n + 1}/minute;{n + 100}/hour'}}\n",
        size // 20,
    )
    plans = filled(
        "plans:\n", lambda n: f"  p{n}: {{limits: {{api: {n + 1}/second}}}}\n", size // 20
    )
    keys = filled(
        "keys:\n",
        lambda n: f"  - {{key_sha256: '{n:064x}', id: key-{n}, plan: p0, user: u{n // 4}}}\n",
        size * 4 // 10,
    )
    categories = filled(
        "categories:\n",
        lambda n: (
            f"  - {{name: c{n}, match: 'GET /api/v{n}/items/{{id}}', charge: [api, l{n % 9}]}}\n"
            if n < 1500
            else f"  - {{name: c{n}, match: [POST /api/x{n}, GET /api/y{n}], charge: [api]}}\n"
        ),
        size * 4 // 10,
    )
    lockouts = (
        "lockouts:\n  login: {categories: [c1], threshold: 5, window: 15 minutes, block: 1h}\n"
    )
    return limits + plans + keys + categories + lockouts


#: 1 MiB of one shape each: these were quadratic in the compiler (plans x limits ran
#: out of memory), slow to parse, or costly to compile (one regex per pattern)
def shapes() -> dict[str, str]:
    half = MIB // 2 - KIB
    few_limits = HEAD + "limits: {l0: 1/second}\n"
    limits = filled(HEAD + "limits:\n", lambda n: f"  l{n}: 1/second\n", half)
    one_category = "categories: [{name: c, match: /c, charge: [l0]}]\n"
    plans = filled("plans:\n", lambda n: f"  p{n}: {{}}\n", half, one_category)
    many_plans = filled("plans:\n", lambda n: f"  p{n}: {{}}\n", half)
    many_categories = filled(
        "categories:\n", lambda n: f"  - {{name: c{n}, match: /a{n}, charge: [l0]}}\n", half
    )
    lockouts = filled(
        "lockouts:\n",
        lambda n: f"  x{n}: {{categories: c0, threshold: 1, window: 1, block: 1}}\n",
        half,
    )
    return {
        "keys (hashed), 1 MiB": filled(
            HEAD + "limits: {api: 1/s}\ncategories: [{name: c, match: /a, charge: [api]}]\nkeys:\n",
            lambda n: f"  - {{key_sha256: '{n:064x}', id: k{n}}}\n",
            MIB,
        ),
        "exact paths, 1 MiB": filled(
            HEAD + "limits: {api: 1/s}\ncategories:\n",
            lambda n: f"  - {{name: c{n}, match: GET /api/v1/r{n}, charge: [api]}}\n",
            MIB,
        ),
        "plans x limits, 1 MiB": limits + plans,
        "categories x plans, 1 MiB": few_limits + many_plans + many_categories,
        "lockouts x categories, 1 MiB": few_limits + many_categories + lockouts,
        "2,048 patterns (the most), 1 MiB": filled(
            HEAD + "limits: {api: 1/s}\ncategories:\n",
            lambda n: (
                f"  - {{name: c{n}, match: 'GET /api/v{n}/*/{{id}}/**', charge: [api]}}\n"
                if n < 2047
                else f"  - {{name: c{n}, match: GET /api/exact/{n}, charge: [api]}}\n"
            ),
            MIB,
        ),
        "one-digit values, 1 MiB": filled(
            HEAD + "limits: {api: 1/s}\ncategories: [{name: c, match: /a, charge: [api]}]\n"
            "description: [",
            lambda n: "1,",
            MIB,
            "1]\n",
        ),
    }


def hostile() -> dict[str, tuple[str, str]]:
    """Issue 10's files: ``name -> (file suffix, text)``."""
    base = "limits: {api: 1/s}\ncategories: [{name: c, match: /a, charge: [api]}]\n"
    # each level repeats the one before nine times, all inside a 429 body
    bomb = '- &a0 ["{path}","{path}","{path}","{path}","{path}","{path}","{path}","{path}"]\n'
    bomb += "".join(f"- &a{n} [{','.join([f'*a{n - 1}'] * 9)}]\n" for n in range(1, 8))
    bomb = "responses:\n  rate_limited:\n    body:\n" + bomb.replace("- ", "      - ")
    return {
        "20,000 nested [": (".yaml", HEAD + base + "x: " + "[" * 20_000 + "]" * 20_000 + "\n"),
        "a 5,001-digit integer": (".yaml", HEAD + base + "x: " + "9" * 5_001 + "\n"),
        "YAML aliases in a body, 7 levels": (".yaml", HEAD + base + bomb),
        "one path pattern of 1 MiB": (
            ".yaml",
            HEAD
            + "limits: {api: 1/s}\ncategories: [{name: c, match: '"
            + "/a*" * (MIB // 3 - 100)
            + "', charge: [api]}]\n",
        ),
        "2 MiB": (".yaml", HEAD + base + ("#" * 99 + "\n") * (2 * MIB // 100)),
        "TOML: 20,000 nested [": (".toml", "version = 1\nx = " + "[" * 20_000 + "]" * 20_000),
        "TOML: keys, 1 MiB": (
            ".toml",
            filled(
                'version = 1\n[limits]\napi = "1/s"\n[[categories]]\nname = "c"\n'
                'match = "/a"\ncharge = ["api"]\n',
                lambda n: f'[[keys]]\nkey_sha256 = "{n:064x}"\nid = "k{n}"\n',
                MIB,
            ),
        ),
    }


def load(path: Path) -> tuple[float, str]:
    """Best of three loads of ``path``, in CPU seconds, and what came of it."""
    best, outcome = float("inf"), ""
    for _ in range(3):
        start = time.process_time()
        try:
            policy = load_policy(path)
        except PolicyError as error:
            outcome = "PolicyError: " + str(error).split(": ", 1)[-1][:60]
        else:
            outcome = f"loaded ({len(policy.keys)} keys, {len(policy.categories)} categories)"
        best = min(best, time.process_time() - start)
    return best, outcome


def main() -> None:
    cases: list[tuple[str, str, str]] = [
        (f"mixed, {size // KIB:,} KiB", ".yaml", mixed(size))
        for size in (16 * KIB, 64 * KIB, 256 * KIB, 512 * KIB, MIB)
    ]
    cases += [(name, ".yaml", text) for name, text in shapes().items()]
    cases += [(name, suffix, text) for name, (suffix, text) in hostile().items()]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for index, (name, suffix, text) in enumerate(cases):
            path = Path(directory) / f"policy{index}{suffix}"
            path.write_text(text, encoding="utf-8")
            seconds, outcome = load(path)
            size = path.stat().st_size
            rows.append([name, f"{size / KIB:,.0f} KiB", f"{seconds * 1000:,.0f} ms", outcome])
            print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    print(table(["file", "size", "load (CPU)", "result"], rows))


if __name__ == "__main__":
    main()
