"""The front door and the docs hold together: README.md stays a short front page, every relative link in it and
in docs/ reaches a file (and a heading, when it names one), and every `realm` command it shows parses."""

import re
import shlex

import pytest

from ray_apps.cli import _parser, _split_overrides

from ..helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "RESULTS.md"]
LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lstrip("#").strip().lower())
    return text.replace(" ", "-")


def test_the_readme_is_a_front_page_under_300_lines():
    assert len((ROOT / "README.md").read_text().splitlines()) < 300


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            headings = [line for line in file.read_text().splitlines() if line.startswith("#")]
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading #{anchor} in {file.name}"


def test_every_realm_command_in_the_readme_parses():
    readme = (ROOT / "README.md").read_text()
    commands = [line.split("#")[0] for line in readme.splitlines() if line.startswith("realm ")]
    assert len(commands) >= 7
    for command in commands:
        _, rest = _split_overrides(shlex.split(command)[1:])
        _parser().parse_args(rest)  # an unknown option or command exits (SystemExit fails the test)
