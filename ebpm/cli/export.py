"""`ebpm export SOURCE --format eunomia [-o FILE]`: a package in another tool's format."""

from __future__ import annotations

import click

from ebpm.cli.options import OutputPath

__all__ = ["export"]


@click.command()
@click.argument("source")
@click.option("--format", "fmt", type=click.Choice(["eunomia", "object"]), default="eunomia",
              show_default=True,
              help="eunomia: a package.json for eunomia-bpf's ecli; object: the bare .bpf.o.")
@click.option("-o", "--output", type=OutputPath(dir_okay=False), metavar="FILE",
              help="Write here (default: stdout when it is no terminal; required for object).")
@click.option("--allow-unsigned", is_flag=True,
              help="Export a registry package that carries no trusted signature.")
def export(source: str, fmt: str, output: str | None, allow_unsigned: bool) -> None:
    """Write SOURCE (a registry reference, a file or package directory, or a URL) in another
    format: `ebpm export REF --format eunomia -o package.json` makes what `ecli run` takes."""
    import sys

    from ebpm.run.convert import export_package

    if output is None and fmt == "object":
        raise click.UsageError("--format object: name the file with -o FILE")
    if output is None and sys.stdout.isatty():  # as `docker save` does: kilobytes of base64
        raise click.UsageError("export: the package.json would fill the terminal; name the "
                               "file with -o package.json, or redirect it (> package.json)")
    data = export_package(source, fmt=fmt, allow_unsigned=allow_unsigned)
    if output is None:
        sys.stdout.buffer.write(data)
        return
    from ebpm.files import atomic_write

    atomic_write(output, data)
    click.echo(f"wrote {output} ({len(data)} bytes)", err=True)
