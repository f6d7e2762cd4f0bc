"""The lock files: hashed, in step with pyproject.toml and with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", re.M)


def pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {pkg.lower().replace("_", "-"): version for pkg, version in PIN.findall(text)}


def requirement_name(spec: str) -> str:
    return re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")


def test_every_pin_carries_a_hash() -> None:
    for name in ("requirements.lock", "requirements-dev.lock"):
        blocks = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / name).read_text())
        for block in blocks:
            if PIN.match(block):
                assert "--hash=sha256:" in block, f"{name}: {block.splitlines()[0]}"


def test_the_deployment_lock_pins_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = pins("requirements.lock")
    for spec in project["dependencies"]:
        assert requirement_name(spec) in locked, spec


def test_dev_lock_runs_the_same_versions_as_the_deployment_lock() -> None:
    deployed, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {pkg: dev.get(pkg) for pkg in deployed} == deployed
