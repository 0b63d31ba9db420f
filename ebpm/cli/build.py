"""`ebpm init`, `ebpm build` and `ebpm publish`: start, compile and publish a package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ebpm.cli.options import json_option, registry_options
from ebpm.cli.sign import password_stdin_option

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["init", "build", "publish"]

_TEMPLATES = ("tracepoint", "kprobe", "uprobe", "ringbuf", "hist")

_vmlinux_option = click.option(
    "--vmlinux", "vmlinux", envvar="EBPM_VMLINUX_H", type=click.Path(exists=True, dir_okay=False),
    help="Compile against this vmlinux.h instead of one generated from /sys/kernel/btf/vmlinux "
    "(cached in $EBPM_HOME/vmlinux). [env: EBPM_VMLINUX_H]",
)


def _summary(result: Any) -> list[str]:
    cfg = result.config
    lines = [f"built {cfg.name} {cfg.version}: {result.object_path}"]
    for p in cfg.programs:
        group = f"  (group {p.group})" if p.group else ""
        lines.append(f"  program {p.name:<24} {p.type:<15} {p.section}{group}")
    for e in cfg.events:
        lines.append(f"  events  {e.map} -> {e.type}")
    for a in cfg.args:
        lines.append(f"  arg     --{a.flag:<22} {a.type}, default {a.default!r}")
    if result.btf_path:
        lines.append(f"  btf     {result.btf_path}")
    if result.wasm_path:
        lines.append(f"  wasm    {result.wasm_path}")
    arch = cfg.requirements.arch
    if arch:
        import os

        from ebpm.arches import runs_on

        machine = os.uname().machine
        wanted = " or ".join(arch)
        lines.append(f"  arch    {wanted}" + ("" if runs_on(arch, machine) else
                     f" (this machine is {machine}: it runs on {wanted} only)"))
    return lines


def _result_json(result: Any) -> dict[str, Any]:
    return {
        "config": result.config.to_dict(),
        "object": str(result.object_path),
        "btf": str(result.btf_path) if result.btf_path else None,
        "wasm": str(result.wasm_path) if result.wasm_path else None,
    }


@click.command()
@click.argument("name")
@click.option("-t", "--template", type=click.Choice(_TEMPLATES), default="tracepoint",
              show_default=True, help="What the new package starts from.")
@click.option("-d", "--dir", "directory", type=click.Path(file_okay=False),
              help="Where to write it (default: ./NAME).")
def init(name: str, template: str, directory: str | None) -> None:
    """Start a new package NAME: NAME.bpf.c, NAME.h, ebpm.toml, README.md, .gitignore.

    \b
    Templates:
      tracepoint  files opened (syscalls:sys_enter_openat), with pid/uid/comm filters
      kprobe      files deleted (kprobe on do_unlinkat, with a tracepoint fallback)
      uprobe      host name lookups and their latency (uprobes on libc getaddrinfo)
      ringbuf     process starts and exits with lifetimes (libbpf-bootstrap's bootstrap)
      hist        a log2 histogram of read() sizes per process, printed at exit
    """
    from pathlib import Path

    from ebpm.build.scaffold import init_package

    files = init_package(name, template=template, directory=directory)
    root = Path(directory) if directory else Path(name)
    for f in files:
        click.echo(f"created {f}")
    click.echo(f"\nnext:\n  cd {root}\n  ebpm build\n  sudo ebpm run .")


@click.command()
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@_vmlinux_option
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@json_option
def build(directory: str | None, vmlinux: str | None, quiet: bool, as_json: bool) -> None:
    """Compile the package in DIRECTORY into DIRECTORY/.ebpm/. Without DIRECTORY: the package
    around the current directory (the nearest one upwards holding ebpm.toml, as cargo finds
    Cargo.toml).

    Writes NAME.bpf.o (clang -target bpf, DWARF stripped, BTF kept), config.json (programs,
    maps, events, args, the arch it is for) and NAME.btf when the object's BTF lacks the event
    type. The arch is this machine's unless ebpm.toml's [build] arch names another (x86,
    arm64, ...); `ebpm run` refuses the package on other machines. SOURCE_DATE_EPOCH and the
    same sources give the same bytes.
    """
    from ebpm.build import build as build_package
    from ebpm.cli.app import echo_json
    from ebpm.deps.project import project_root

    def say(line: str) -> None:
        if not quiet and not as_json:
            click.echo(line, err=True)

    result = build_package(project_root(directory), vmlinux_h=vmlinux, progress=say)
    if as_json:
        echo_json(_result_json(result))
    elif not quiet:
        click.echo("\n".join(_summary(result)))


@click.command()
@click.argument("operands", nargs=-1, metavar="[DIRECTORY] [REF]")
@_vmlinux_option
@click.option("--force", is_flag=True, help="Overwrite a published version tag.")
@click.option("--sign", "sign_", is_flag=True, help="Sign the pushed manifest (cosign format).")
@click.option("--key", "key", envvar="EBPM_SIGNING_KEY", metavar="KEY",
              help="Signing key name or PEM path (default: 'default'); its password is read "
              "from EBPM_KEY_PASSWORD or --password-stdin. [env: EBPM_SIGNING_KEY]")
@password_stdin_option
@click.option("--revision", default="", help="Source revision to record in the manifest.")
@registry_options
@json_option
def publish(operands: tuple[str, ...], vmlinux: str | None, force: bool, sign_: bool,
            key: str | None, password_stdin: bool, revision: str, access: RegistryAccess,
            as_json: bool) -> None:
    """Build the package in DIRECTORY (default: the package around the current directory, as
    `ebpm build` finds it), then push it to REF (`ebpm build` + `ebpm push`).

    REF is [registry/]repository[:tag]; the tag defaults to the package version, REF to
    $EBPM_REGISTRY/NAME (the package's name). One operand is DIRECTORY when it is one here,
    else REF. REF, --offline and the signing key are checked before anything is compiled.

    \b
    Examples:
      ebpm publish                                   # to $EBPM_REGISTRY/NAME:VERSION
      ebpm publish localhost:5000/tools/opens        # to that repository
      ebpm publish ./opens localhost:5000/tools/opens --sign
    """
    from pathlib import Path

    from ebpm.build import build as build_package
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import progress
    from ebpm.cli.sign import key_password
    from ebpm.cli.transfer import path_and_ref
    from ebpm.transfer.push import check_push
    from ebpm.transfer.push import push as push_package

    directory, ref = path_and_ref("publish", operands, ref_optional=True,
                                  path_name="DIRECTORY")
    if not Path(directory).is_dir():
        raise click.BadParameter(f"{directory!r} is not a directory", param_hint="DIRECTORY")
    signing_key = check_push(ref, access=access,
                             sign_key=(key or "default") if sign_ or key else None,
                             key_password=key_password(password_stdin))

    def say(line: str) -> None:
        if not as_json:
            click.echo(line, err=True)

    built = build_package(directory, vmlinux_h=vmlinux, progress=say)
    if ref is None:
        from ebpm import config

        ref = f"{config.default_registry()}/{built.config.name}"
    with progress(not as_json) as reporter:
        result = push_package(
            directory, ref, force=force, access=access, sign_key=signing_key,
            revision=revision, reporter=reporter,
        )
    if as_json:
        echo_json({"build": _result_json(built), "reference": str(result.reference),
                   "digest": result.digest, "unchanged": result.unchanged,
                   "signature": result.signature})
        return
    click.echo(f"built {built.config.name} {built.config.version}")
    state = "unchanged" if result.unchanged else (
        f"pushed ({result.uploaded} new blob{'' if result.uploaded == 1 else 's'})")
    click.echo(f"{result.reference.name}:{result.reference.tag}  {result.digest}  {state}")
    if result.signature:
        click.echo(f"signed: {result.signature}")
