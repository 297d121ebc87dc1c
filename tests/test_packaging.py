"""environment.yml, pyproject.toml, requirements.in and requirements.lock must agree."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line '{line}' is not pinned with =="
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_lock_pins_torch_as_plain_version():
    lock = _lock()
    assert lock["torch"] == "2.13.0"  # not 2.13.0+cpu: a CUDA build of the same version satisfies it
    first = next(l for l in (ROOT / "requirements.in").read_text().splitlines() if l and not l.startswith("#"))
    assert first == "torch==2.13.0"


def test_requirements_in_pins_are_in_the_lock():
    lock = _lock()
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)
        assert _norm(req.name) in lock, f"{req.name} from requirements.in is missing in requirements.lock (make lock)"
        assert req.specifier.contains(Version(lock[_norm(req.name)]), prereleases=True), (
            f"{req.name}: lock has {lock[_norm(req.name)]}, requirements.in asks {req.specifier}")


def test_pyproject_ranges_admit_the_locked_versions():
    lock = _lock()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"]) + meta["optional-dependencies"]["lab"] + meta["optional-dependencies"]["dev"]
    for spec in reqs:
        req = Requirement(spec)
        assert _norm(req.name) in lock, f"{req.name} (pyproject) is not in requirements.lock"
        assert req.specifier.contains(Version(lock[_norm(req.name)]), prereleases=True), (
            f"{req.name}: pyproject range {req.specifier} excludes locked {lock[_norm(req.name)]}")


def test_environment_yml_wraps_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-r requirements.lock" in pip_section
    torch_lines = [p for p in pip_section if p.startswith("torch")]
    assert torch_lines == [f"torch=={_lock()['torch']}"]


def test_console_script_and_profiles_are_packaged():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["sapkit"] == "sapkit.cli:main"
    assert "profiles/*.yaml" in meta["tool"]["setuptools"]["package-data"]["sapkit"]
