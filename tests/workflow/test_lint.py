import re
from pathlib import Path

import yaml

from tests.workflow.wf import REPO, snakemake


def test_snakemake_lint_is_clean() -> None:
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def _rules() -> dict[str, str]:
    """rule name -> its text, from every rules/*.smk."""
    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n)+)", smk.read_text(), re.M):
            rules[match.group(1)] = match.group(2)
    return rules


def test_every_rule_has_log_env_resources_and_a_script() -> None:
    rules = _rules()
    assert len(rules) >= 6
    for name, body in rules.items():
        for part in ("log:", "conda:", "threads:", "resources:", "mem_mb=", "runtime="):
            assert part in body, f"rule {name} lacks {part}"
        env = re.search(r'conda:\n\s+"\.\./(envs/[\w.-]+\.yaml)"', body)
        assert env and (REPO / env.group(1)).is_file(), f"rule {name}: conda env file missing"
        script = re.search(r'script:\n\s+"\.\./(workflow_scripts/(\w+)\.py)"', body)
        assert script and (REPO / script.group(1)).is_file(), f"rule {name}: script missing"
        assert script.group(2) == name, f"rule {name}: script is named {script.group(2)}"
        assert "lambda" not in body, f"rule {name}: params come from named functions"


def _pins_of_pyproject() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    return {m.group(1).lower(): m.group(2) for m in re.finditer(r'"([A-Za-z0-9_.-]+)==([^"]+)"', text)}


#: conda-forge package names that differ from the PyPI names pyproject pins
CONDA_TO_PYPI = {"pytorch": "torch"}


def test_conda_envs_parse_and_agree_with_pyproject_pins() -> None:
    pins = _pins_of_pyproject()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        assert spec["channels"] == ["conda-forge", "nodefaults"], env.name
        for dep in spec["dependencies"]:
            assert isinstance(dep, str) and "=" in dep, f"{env.name}: {dep} is not pinned"
            name, version = dep.split("=", 1)
            name = CONDA_TO_PYPI.get(name, name)
            if name == "python":
                assert version == "3.11"
                continue
            assert name in pins, f"{env.name}: {name} is not pinned in pyproject.toml"
            assert pins[name] == version, f"{env.name}: {name}={version} but pyproject pins {pins[name]}"


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text()
    head = readme[:2500]
    assert "make demo" in head and "make test" in head
    assert ci.strip().splitlines()[-1] == "make test"
    assert Path(REPO / ".ci" / "run").stat().st_mode & 0o111
