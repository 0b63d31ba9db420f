"""The static site without a browser: what the pages hold, escaping, the README sanitiser,
stale pages removed, incremental rebuilds, and refusing to write over other files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest

from ebpm.hub.crawl import update
from ebpm.hub.index import HubIndex
from ebpm.hub.readme import render_readme
from ebpm.hub.site import CSP, build_site, page_path
from tests.cli import ebpm
from tests.hub.helpers import package_config, publish
from tests.registryd import Registryd, start_registry


@pytest.fixture()
def reg() -> Registryd:
    reg = start_registry()
    yield reg
    reg.stop()


@pytest.mark.parametrize("markdown,forbidden", [
    ("<script>alert(1)</script>", "<script"),
    ("<img src=x onerror=alert(1)>", "onerror"),
    ("[x](javascript:alert(1))", 'href="javascript'),
    ('<a href="JaVaScRiPt:alert(1)">x</a>', "alert"),
    ("[x](data:text/html,hi)", 'href="data'),
    ('<svg><script>alert(1)</script></svg>', "<svg"),
    ("![pixel](https://tracker.example/p.gif)", "<img"),
    ('<iframe src="https://example.org"></iframe>', "<iframe"),
    ('<p style="background:url(https://t.example)">x</p>', "style="),
    ('<meta http-equiv="refresh" content="0;url=https://t.example">', "<meta"),
    ('<form action="https://t.example"><input name=a></form>', "<form"),
    ('<base href="https://t.example/">', "<base"),
])
def test_readme_sanitiser_removes(markdown: str, forbidden: str) -> None:
    assert forbidden.lower() not in render_readme(markdown).lower()


def test_readme_keeps_markdown_and_marks_links() -> None:
    html = render_readme("# Title\n\n**bold** [site](https://example.org) `code`\n\n"
                         "| a |\n|---|\n| 1 |\n\n![logo](https://example.org/logo.png)\n")
    assert "<h2>Title</h2>" in html  # one level below the page's own <h1>
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<table>" in html
    assert 'rel="noopener noreferrer nofollow"' in html
    assert '<a href="https://example.org/logo.png" rel="noopener noreferrer nofollow">' \
           "[image: logo]</a>" in html


@pytest.mark.registry
def test_build_writes_pages_escapes_and_removes_stale_ones(reg: Registryd,
                                                           tmp_path: Path) -> None:
    from ebpm.package import Requirements
    from ebpm.record import replace

    publish(reg.host, "tools/opensnoop", replace(package_config(
        "opensnoop", description="Trace <open> & \"friends\""),
        requirements=Requirements(btf=True, arch=("arm64",), kernel="5.8")), readme="# hi\n")
    publish(reg.host, "tools/gone", package_config("gone"))
    index, _ = update([reg.host])
    out = tmp_path / "site"
    result = build_site(index, out)
    page = page_path(f"{reg.host}/tools/opensnoop")
    assert page == f"p/{reg.host.replace(':', '_')}/tools/opensnoop/index.html"
    assert sorted(result.written) == sorted([
        "assets/hub.css", "assets/hub.js", "assets/icon.svg", page,
        page_path(f"{reg.host}/tools/gone"), "index.html"])
    html = (out / page).read_text()
    assert f'content="{CSP}"' in unescape(html) and 'name="referrer" content="no-referrer"' in html
    assert "Trace &lt;open&gt; &amp; &#34;friends&#34;" in html
    assert f"ebpm run {reg.host}/tools/opensnoop:1.0.0" in html
    assert "<dt>Kernel</dt><dd>≥ 5.8</dd>" in html  # what it needs to run, arch too
    assert "<dt>Architecture</dt><dd>arm64</dd>" in html
    assert '<link rel="stylesheet" href="../../../../assets/hub.css">' in html
    assert "http" not in "".join(
        line for line in html.splitlines() if "<link" in line or "<script" in line)

    # the repository goes: a full rebuild removes its page
    del index.repositories[f"{reg.host}/tools/gone"]
    index.drop_unreferenced()
    result = build_site(index, out)
    assert result.removed == [page_path(f"{reg.host}/tools/gone")]
    assert not (out / "p" / reg.host.replace(":", "_") / "tools" / "gone").exists()
    assert json.loads((out / "ebpm-hub.json").read_text())["pages"] == [page]

    # an incremental rebuild writes only the pages that show the named repository
    result = build_site(index, out, only={f"{reg.host}/tools/opensnoop"})
    assert sorted(result.written) == sorted([page, "index.html"])


def test_build_refuses_a_directory_of_other_files(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    index = HubIndex()
    with pytest.raises(Exception, match="not empty and holds no hub site"):
        build_site(index, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    r = ebpm(capsys, "hub", "build", "-o", str(tmp_path))
    assert r.code == 1 and r.err.startswith("error: hub build: the hub index is empty")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a real full disk (mounting one needs root)."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.mark.registry
def test_a_build_that_fails_leaves_no_partial_site(reg: Registryd, small_disk: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """On a full disk the build said "nothing half-written was kept" and left DIR/assets
    behind; a rebuild that failed left the old site with some new files."""
    publish(reg.host, "tools/a", package_config("a"))
    assert ebpm(capsys, "hub", "refresh", reg.host).code == 0
    assert ebpm(capsys, "hub", "build", "-o", str(small_disk / "site")).code == 0
    before = {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file()}
    publish(reg.host, "tools/b", package_config("b"), readme="x" * (200 << 10))  # won't fit
    assert ebpm(capsys, "hub", "refresh").code == 0
    r = ebpm(capsys, "hub", "build", "-o", str(small_disk / "site"))
    assert r.code == 1 and r.err.startswith("error: no space left on device")
    assert {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file()} == before
    r = ebpm(capsys, "hub", "build", "-o", str(small_disk / "new" / "site"))
    assert r.code == 1 and r.err.startswith("error: no space left on device")
    assert [p.name for p in small_disk.iterdir()] == ["site"]  # no new/, no staging
    assert sorted(p.name for p in (small_disk / "site").iterdir()) == [
        "assets", "ebpm-hub.json", "index.html", "p"]


@pytest.mark.registry
def test_cli_build_and_json(reg: Registryd, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    publish(reg.host, "tools/a", package_config("a"))
    assert ebpm(capsys, "hub", "refresh", reg.host).code == 0
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "note").write_text("")
    r = ebpm(capsys, "hub", "build", "-o", str(tmp_path / "x"))
    assert r.code == 2 and "not empty" in r.err and r.err.count("\n") == 2
    r = ebpm(capsys, "hub", "build", "-o", str(tmp_path / "site"), "--json")
    assert r.code == 0, r.err
    assert "index.html" in json.loads(r.out)["written"]
    r = ebpm(capsys, "hub", "build", "-o", str(tmp_path / "site"))
    assert r.out.startswith("wrote 5 files (")
