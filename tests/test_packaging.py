"""The project's papers: the license, the changelog, and the package metadata that names them."""

from __future__ import annotations

import re
import tomllib

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_is_apache_2_and_declared() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a stub
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    # PEP 639: an SPDX expression replaces the license classifiers (setuptools refuses both)
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]


def test_metadata_names_the_readme_and_absolute_urls() -> None:
    assert PROJECT["readme"] == "README.md" and (ROOT / "README.md").exists()
    urls = PROJECT["urls"]
    assert {"Homepage", "Documentation", "Changelog"} <= set(urls)
    assert all(re.match(r"https://\S+$", url) for url in urls.values()), urls
    for url in urls.values():  # a link to a file of the repository names one that exists
        if "/blob/main/" in url:
            assert (ROOT / url.split("/blob/main/", 1)[1]).exists(), url


def test_changelog_keeps_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text
    sections = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert sections[:1] == ["Unreleased"], sections
    assert re.search(r"^### Added\n\n- ", text, re.M)
