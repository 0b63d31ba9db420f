"""The static web catalog: an explore page, one page per repository, and the assets, built from
the index into a directory any static host can serve (or opened from disk).

    DIR/index.html                           the explore page (cards; search and filters by JS)
    DIR/p/<registry>/<repository>/index.html one page per repository (':' of a port written '_')
    DIR/assets/                              hub.css, hub.js, icon.svg (nothing from elsewhere)
    DIR/ebpm-hub.json                        what was built (so a rebuild removes stale pages)
    DIR/.ebpm-hub-build-XXXX/                while building: the new files, moved into place
                                             once all are written (removed if the build fails)

Every page carries a strict Content-Security-Policy (scripts, styles and images from the site
only; no inline script or style; no frames, forms, plugins or <base>) and no-referrer. Text from
packages is escaped by the templates (Jinja2 autoescape); README HTML comes from ebpm.hub.readme.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import UsageError
from ebpm.hub.index import HubIndex, IndexedVersion, short_name

if TYPE_CHECKING:
    import jinja2

__all__ = ["CSP", "SiteResult", "build_site", "page_path", "affected_by"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'none'; object-src 'none'; media-src 'none'; "
       "frame-src 'none'; base-uri 'none'; form-action 'none'")
MARKER = "ebpm-hub.json"
STAGING = ".ebpm-hub-build-"  # DIR/.ebpm-hub-build-XXXX: a build's files until all are written
ASSETS = ("hub.css", "hub.js", "icon.svg")
SITE_TITLE = "ebpm hub"


@dataclass
class SiteResult:
    """Pages written and removed (paths relative to the site's directory)."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes: int = 0


def page_path(repository: str) -> str:
    """The page of registry/repository, relative to the site root."""
    registry, _, path = repository.partition("/")
    return f"p/{registry.replace(':', '_')}/{path}/index.html"


def _root_of(page: str) -> str:
    return "../" * page.count("/")


def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("ebpm.hub", "templates"),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _card(version: IndexedVersion) -> dict[str, Any]:
    config = version.config
    name = short_name(version.repository)
    words = [name, version.repository, config.description, config.license, *config.authors,
             *version.hooks]
    return {
        "name": name, "repository": version.repository, "href": page_path(version.repository),
        "description": config.description, "version": config.version,
        "signed": version.signature.signed, "signature": version.signature.state,
        "types": version.types, "license": config.license,
        "search": " ".join(words).lower(),
    }


def _run_reference(index: HubIndex, version: IndexedVersion) -> str:
    from ebpm.hub.index import run_tag

    return f"{version.repository}:{run_tag(index.tags_of(version), version.config.version)}"


def _package_context(index: HubIndex, version: IndexedVersion, page: str,
                     dependents: dict[str, list[str]]) -> dict[str, Any]:
    from ebpm.hub.graph import dependencies_of, svg
    from ebpm.hub.readme import render_readme

    root = _root_of(page)
    deps = []
    for edge in dependencies_of(version.config, version.registry):
        indexed = edge.repository in index.repositories
        deps.append({
            "label": edge.repository or edge.name, "spec": edge.spec,
            "href": root + page_path(edge.repository) if indexed else "",
        })
    used_by = [{"label": r, "href": root + page_path(r)}
               for r in dependents.get(version.repository, [])]
    versions = []
    for v in index.versions_of(version.repository):
        versions.append({
            "version": v.config.version, "tags": index.tags_of(v), "date": v.date,
            "signature": v.signature.state, "size": f"{v.size:,} bytes", "digest": v.digest,
        })
    source = version.config.source
    registry, _, repository_path = version.repository.partition("/")
    return {
        "root": root, "page": "package", "v": version, "name": short_name(version.repository),
        "registry": registry, "repository_path": repository_path, "types": version.types,
        "run_ref": _run_reference(index, version),
        "readme_html": render_readme(version.readme) if version.readme.strip() else "",
        "size": f"{version.size:,} bytes",
        "source_url": source if source.startswith(("https://", "http://")) else "",
        "deps": deps, "used_by": used_by, "versions": versions,
        "rule_scope": version.signature.rule.split(" (", 1)[0],  # not the builder's file path
        "graph": svg(short_name(version.repository),
                     [(short_name(d["label"]), d["href"]) for d in deps],
                     [(short_name(d["label"]), d["href"]) for d in used_by]),
    }


def affected_by(index: HubIndex, repositories: Iterable[str]) -> set[str]:
    """The repositories whose pages show something of `repositories`: themselves, what they
    depend on (its "used by" list) and what depends on them."""
    from ebpm.hub.graph import dependencies_of

    changed = set(repositories)
    out = set(changed)
    for name in changed:
        latest = index.latest(name)
        if latest is not None:
            edges = dependencies_of(latest.config, latest.registry)
            out.update(e.repository for e in edges if e.repository)
    for package in index.packages():
        if any(e.repository in changed for e in dependencies_of(package.config, package.registry)):
            out.add(package.repository)
    return out


def _check_target(out: Path) -> dict[str, Any]:
    """The previous build's marker; refuse a non-empty directory that is not a hub site."""
    marker = out / MARKER
    if marker.is_file():
        try:
            previous = json.loads(marker.read_text())
        except ValueError:
            previous = {}
        return previous if isinstance(previous, dict) else {}
    if out.exists() and not out.is_dir():
        raise UsageError(f"site directory {out} is a file, not a directory",
                         hint="choose a new or empty directory; nothing was written")
    if out.exists() and any(not p.name.startswith(STAGING) for p in out.iterdir()):
        raise UsageError(
            f"site directory {out} is not empty and holds no hub site ({MARKER} is missing)",
            hint="choose a new or empty directory; nothing was written",
        )
    return {}


def build_site(index: HubIndex, out: str | Path, *, only: Iterable[str] | None = None,
               title: str = SITE_TITLE) -> SiteResult:
    """Write the site for `index` into `out`. `only`: rebuild just the pages that show these
    repositories (and the explore page); else everything, removing pages of repositories that
    left the index. Every file is written into a staging directory in `out` first and moved
    into place only once all are: a build that fails (a full disk) leaves the site as it was,
    or no site where there was none."""
    import shutil
    import tempfile

    out = Path(out)
    previous = _check_target(out)
    made = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=out))
    try:
        result = _render(index, staging, only=only, title=title)
        _publish(staging, out, [*result.written, MARKER])
        result.removed = _remove_stale(out, previous, index)
    except BaseException:
        shutil.rmtree(made or staging, ignore_errors=True)  # what this build made, only
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return result


def _publish(staging: Path, out: Path, files: list[str]) -> None:
    """Move the staged files into the site, each atomically (its temp name is the staged
    file), the marker last."""
    from ebpm.files import atomic_move

    for relative in files:
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_move(staging / relative, target)


def _remove_stale(out: Path, previous: dict[str, Any], index: HubIndex) -> list[str]:
    """Remove the pages the previous build wrote of repositories that left the index."""
    pages = {page_path(p.repository) for p in index.packages()}
    old_pages = set(previous.get("pages", [])) if isinstance(previous.get("pages"), list) else set()
    removed = []
    for stale in sorted(old_pages - pages):
        if not stale.startswith("p/") or ".." in stale.split("/"):
            continue
        path = out / stale
        if path.is_file():
            path.unlink()
            removed.append(stale)
            _prune_empty(path.parent, out / "p")
    return removed


def _render(index: HubIndex, out: Path, *, only: Iterable[str] | None,
            title: str) -> SiteResult:
    """Write the pages, assets and marker into `out` (the staging directory)."""
    from importlib import resources

    from ebpm import __version__

    env = _environment()
    result = SiteResult()

    def write(relative: str, data: bytes) -> None:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        result.written.append(relative)
        result.bytes += len(data)

    common = {"csp": CSP, "site_title": title, "ebpm_version": __version__,
              "sources": index.sources}
    packages = list(index.packages())
    dependents = index.dependents()
    pages = {page_path(p.repository): p for p in packages}
    if only is None:
        targets = set(pages)
        for asset in ASSETS:
            write(f"assets/{asset}",
                  resources.files("ebpm.hub").joinpath("templates", "assets", asset).read_bytes())
    else:
        targets = {page_path(r) for r in affected_by(index, only)}
    package_template = env.get_template("package.html")
    for page in sorted(targets):
        version = pages.get(page)
        if version is None:
            continue  # the repository left the index: removed below
        html = package_template.render(**common, **_package_context(index, version, page,
                                                                     dependents))
        write(page, html.encode())

    types = sorted({t for p in packages for t in p.types})
    licenses = sorted({p.config.license for p in packages if p.config.license})
    explore = env.get_template("explore.html").render(
        **common, root="", page="explore", cards=[_card(p) for p in packages],
        program_types=types, licenses=licenses, repositories_count=len(packages),
    )
    write("index.html", explore.encode())
    marker = {"ebpm": __version__, "pages": sorted(pages), "sources": index.sources}
    (out / MARKER).write_bytes(json.dumps(marker, indent=1, sort_keys=True).encode())
    return result


def _prune_empty(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent
