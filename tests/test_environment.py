"""The set-up files agree: environment.yml pins exactly what pyproject.toml pins, and the commands install it."""
from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement

from book_support import REPO


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins(requirements: list[str]) -> dict[str, str]:
    """{normalised name: specifier} for a list of requirement strings; duplicates are an error."""
    pins: dict[str, str] = {}
    for line in requirements:
        req = Requirement(line)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name not in pins, f"{name} is listed twice"
        pins[name] = str(req.specifier)
    return pins


def _pyproject_pins() -> dict[str, str]:
    project = _pyproject()["project"]
    extras = project.get("optional-dependencies", {})
    return _pins(project["dependencies"] + extras.get("book", []) + extras.get("test", [])
                 + extras.get("ray", []))


def _environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def _environment_pip() -> list[str]:
    for dep in _environment()["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return list(dep["pip"])
    raise AssertionError("environment.yml has no pip section")


def test_environment_yml_pins_exactly_the_pyproject_set():
    pip_lines = [line for line in _environment_pip() if not line.startswith("-")]  # skip "-e ."
    env_pins, project_pins = _pins(pip_lines), _pyproject_pins()
    only_env = {k: v for k, v in env_pins.items() if k not in project_pins}
    only_project = {k: v for k, v in project_pins.items() if k not in env_pins}
    differ = {k: (project_pins[k], env_pins[k]) for k in env_pins.keys() & project_pins.keys()
              if env_pins[k] != project_pins[k]}
    assert not only_env, f"pinned in environment.yml but not in pyproject.toml: {only_env}"
    assert not only_project, f"pinned in pyproject.toml but not in environment.yml: {only_project}"
    assert not differ, f"versions differ (pyproject, environment.yml): {differ}"


def test_every_dependency_is_pinned_exactly():
    loose = {k: v for k, v in _pyproject_pins().items() if not re.fullmatch(r"==[^,*]+", v)}
    assert not loose, f"pin these with == (a range lets pip drift, e.g. to a multi-GB CUDA torch): {loose}"
    assert _pyproject_pins()["torch"] == "==2.13.0"


def test_environment_yml_python_and_package():
    deps = _environment()["dependencies"]
    assert "python=3.11" in deps, "environment.yml must pin python=3.11"
    assert "-e ." in _environment_pip(), "environment.yml must install the package itself (-e .)"
    assert _pyproject()["project"]["requires-python"] == ">=3.11"


def test_make_installs_the_extras_and_ci_runs_make_test():
    makefile = (REPO / "Makefile").read_text()
    assert '-e ".[book,test,ray]"' in makefile, "make must install the package with its extras"
    assert "SOBIRL_BUDGET=quick" in makefile, "make test must run with the quick budget"
    commands = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.strip().startswith("#")]
    runs = [c for c in commands if not c.startswith(("set ", "cd "))]
    assert runs == ["make test"], f".ci/run must call the README's test command and nothing else, found {runs}"
    readme = (REPO / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
