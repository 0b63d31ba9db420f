"""The dependency graph of indexed packages: what a version needs, and who needs a repository."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ebpm.errors import ManifestError

if TYPE_CHECKING:
    from ebpm.package import PackageConfig

__all__ = ["Edge", "dependencies_of", "svg"]


@dataclass(frozen=True)
class Edge:
    """One declared dependency: `repository` is registry/repository for registry packages."""

    name: str
    spec: str  # the version range, the URL or the path, as declared
    kind: str  # "registry", "url", "path" or "invalid"
    repository: str = ""


def dependencies_of(config: PackageConfig, registry: str) -> list[Edge]:
    """A package's [dependencies]; short names resolve against `registry`, where it came from."""
    from ebpm.resolver.dependency import (
        PathDependency,
        RegistryDependency,
        UrlDependency,
        parse_dependency,
    )

    edges: list[Edge] = []
    for name in sorted(config.dependencies):
        raw = config.dependencies[name]
        try:
            dep = parse_dependency(name, raw, default_registry=registry)
        except ManifestError:
            edges.append(Edge(name, str(raw), "invalid"))
            continue
        if isinstance(dep, RegistryDependency):
            edges.append(Edge(name, dep.range.normalized(), "registry", dep.package))
        elif isinstance(dep, UrlDependency):
            edges.append(Edge(name, dep.url, "url"))
        elif isinstance(dep, PathDependency):
            edges.append(Edge(name, dep.path, "path"))
    return edges


_NODE_W, _NODE_H, _GAP, _COL = 200, 30, 12, 260


def svg(center: str, needs: list[tuple[str, str]], used_by: list[tuple[str, str]]) -> str:
    """An inline SVG of one package between what it depends on (left) and what uses it (right);
    each pair is (label, href or ""). Text is escaped; nothing in it loads or runs."""
    from html import escape

    if not needs and not used_by:
        return ""
    rows = max(len(needs), len(used_by), 1)
    height = rows * (_NODE_H + _GAP) + 30
    width = _COL * 2 + _NODE_W
    cy = 30 + (rows * (_NODE_H + _GAP) - _GAP) / 2
    parts = [
        f'<svg class="graph" viewBox="0 0 {width} {height:.0f}" role="img" '
        f'aria-labelledby="graph-title" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="graph-title">{escape(center)} depends on {len(needs)} and is used by '
        f'{len(used_by)} indexed packages</title>',
        '<text class="lane" x="0" y="14">depends on</text>',
        f'<text class="lane" x="{_COL * 2}" y="14">used by</text>',
    ]

    def label(text: str) -> str:
        return escape(text if len(text) <= 28 else "…" + text[-27:])

    def node(x: float, y: float, text: str, href: str, cls: str = "node") -> str:
        box = (f'<g class="{cls}"><rect x="{x}" y="{y:.0f}" width="{_NODE_W}" '
               f'height="{_NODE_H}" rx="6"/><text x="{x + 10}" y="{y + 20:.0f}">{label(text)}'
               f'<title>{escape(text)}</title></text></g>')
        return f'<a href="{escape(href)}">{box}</a>' if href else box

    def column(items: list[tuple[str, str]], x: float, edge_x: float, center_x: float) -> None:
        top = 30 + (rows - len(items)) * (_NODE_H + _GAP) / 2
        for n, (text, href) in enumerate(items):
            y = top + n * (_NODE_H + _GAP)
            parts.append(f'<line x1="{edge_x}" y1="{y + _NODE_H / 2:.0f}" x2="{center_x}" '
                         f'y2="{cy:.0f}"/>')
            parts.append(node(x, y, text, href))

    column(needs, 0, _NODE_W, _COL)
    column(used_by, _COL * 2, _COL * 2, _COL + _NODE_W)
    parts.append(node(_COL, cy - _NODE_H / 2, center, "", "node self"))
    parts.append("</svg>")
    return "".join(parts)
