"""Building packages: compile a package directory, extract its metadata, start one from a template.

Public API: `build(directory, *, vmlinux_h=None) -> BuildResult`,
`ebpm.build.metadata.extract(object_bytes, ...) -> PackageConfig` and
`ebpm.build.scaffold.init_package(name, template=...)`. `build` loads on first use, so that
`ebpm run` importing `ebpm.build.metadata` pays nothing for the compiler side.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.build.builder import BuildResult, build

__all__ = ["BuildResult", "build"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ebpm.build import builder

        return getattr(builder, name)
    raise AttributeError(f"module 'ebpm.build' has no attribute {name!r}")
