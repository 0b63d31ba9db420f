"""`ebpm push` (`ebpm pull` is in ebpm/cli/pull.py, on the lean entry)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ebpm.cli.options import json_option, registry_options
from ebpm.cli.sign import password_stdin_option

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["path_and_ref", "push"]


def path_and_ref(command: str, operands: tuple[str, ...], *, ref_optional: bool = False,
                 path_name: str = "PATH") -> tuple[str, str | None]:
    """`[PATH] REF` as push and publish take them: one operand is REF with the package around
    the current directory (`project_root`: here or above), unless it is a file or directory
    here (publish: the package to publish, REF then from its name; push: where to? unless . is
    a package). PATH must exist."""
    from ebpm.deps.project import project_root

    if len(operands) > 2:
        raise click.UsageError(f"expected [{path_name}] {'[REF]' if ref_optional else 'REF'}, "
                               f"got {len(operands)} arguments")
    if not operands:
        if not ref_optional:
            raise click.UsageError(f"{command}: missing REF")
        return str(project_root(None)), None
    if len(operands) == 1:
        only = operands[0]
        if ref_optional and (Path(only).exists() or only.startswith((".", "/", "~"))):
            path, ref = only, None
        elif Path(only).exists() and not Path("ebpm.toml").exists():
            raise click.UsageError(f"{command} {only}: where to? {only!r} is a file or directory "
                                   f"here, not a reference; give both: ebpm {command} {only} REF")
        else:
            path, ref = str(project_root(None)), only
    else:
        path, ref = operands
    if not Path(path).exists():
        swapped = (f" ({path_name} comes first: ebpm {command} {path_name} REF)"
                   if ref is not None and Path(ref).exists() else "")
        raise click.BadParameter(f"{path!r} does not exist{swapped}", param_hint=path_name)
    return path, ref


@click.command()
@click.argument("operands", nargs=-1, required=True, metavar="[PATH] REF")
@click.option("--force", is_flag=True, help="Overwrite a published version tag.")
@click.option("--sign", "sign_", is_flag=True, help="Sign the pushed manifest (cosign format).")
@click.option("--key", "key", envvar="EBPM_SIGNING_KEY", metavar="KEY",
              help="Signing key name or PEM path (default: 'default'); its password is read "
              "from EBPM_KEY_PASSWORD or --password-stdin. [env: EBPM_SIGNING_KEY]")
@password_stdin_option
@click.option("--revision", default="", help="Source revision to record in the manifest.")
@registry_options
@json_option
def push(operands: tuple[str, ...], force: bool, sign_: bool, key: str | None,
         password_stdin: bool, revision: str, access: RegistryAccess, as_json: bool) -> None:
    """Push the package at PATH to REF: a built package directory (default: the package around
    the current directory, as `ebpm build` finds it), a .bpf.o, a wasm-bpf module or an
    eunomia package.json (the bytes say which).

    REF is [registry/]repository[:tag]; the tag defaults to the package version.
    A published version is never overwritten with different content unless --force.

    \b
    Examples:
      ebpm push localhost:5000/tools/opensnoop:0.1.0 --sign   # the package in .
      ebpm push ./opensnoop tools/opensnoop                   # tag: its version
      ebpm push prog.bpf.o localhost:5000/tools/prog:1.0.0    # a bare object
    """
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import progress
    from ebpm.cli.sign import key_password
    from ebpm.transfer.push import push as push_package

    path, ref = path_and_ref("push", operands)
    assert ref is not None
    with progress(not as_json) as reporter:
        result = push_package(
            path, ref, force=force, access=access,
            sign_key=(key or "default") if sign_ or key else None,
            key_password=key_password(password_stdin), revision=revision, reporter=reporter,
        )
    if as_json:
        echo_json({"reference": str(result.reference), "digest": result.digest,
                   "size": result.size, "uploaded_blobs": result.uploaded,
                   "unchanged": result.unchanged, "signature": result.signature})
        return
    state = "unchanged" if result.unchanged else (
        f"pushed ({result.uploaded} new blob{'' if result.uploaded == 1 else 's'})")
    click.echo(f"{result.reference.name}:{result.reference.tag}  {result.digest}  {state}")
    if result.signature:
        click.echo(f"signed: {result.signature}")
