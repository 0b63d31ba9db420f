"""Building packages: compile a package directory, extract its metadata, start one from a template.

Public API: `build(directory, *, vmlinux_h=None) -> BuildResult`,
`ebpm.build.metadata.extract(object_bytes, ...) -> PackageConfig` and
`ebpm.build.scaffold.init_package(name, template=...)`.
"""

from __future__ import annotations

from ebpm.build.builder import BuildResult, build

__all__ = ["BuildResult", "build"]
