"""What a run was made with: versions, commit, machine, config - on the report's first page."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mskseg.reporting.provenance import code_version, package_versions, provenance, provenance_html


def test_versions_of_installed_and_missing_packages() -> None:
    versions = package_versions(["pandas", "no-such-package-here"])
    assert versions["pandas"] == __import__("pandas").__version__
    assert versions["no-such-package-here"] == "not installed"


def test_the_commit_of_a_checkout_with_local_changes_and_unknown_outside_git(tmp_path: Path) -> None:
    assert code_version(tmp_path) == "unknown"
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(repo)]
    subprocess.run([*git[:5], "init", "-q", str(repo)], check=True)
    (repo / "f.txt").write_text("a")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code_version(repo) == head
    (repo / "f.txt").write_text("b")
    assert code_version(repo) == head + " + local changes"


def test_the_page_shows_config_packages_and_machine_escaped(tmp_path: Path) -> None:
    record = provenance({"datasets": {"knee": {"note": "<b>x</b>"}}, "scale": "demo"}, tmp_path)
    page = provenance_html(record)
    assert "scale: demo" in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<td>snakemake</td>" in page and "<td>cpu cores</td>" in page and "<td>unknown</td>" in page
