"""Package flags from `const volatile` globals, the .rodata they write, and histogram text."""

from __future__ import annotations

import pytest

from ebpm.errors import ArchitectureError, UsageError
from ebpm.loader.args import help_text, parse_args, patch_rodata
from ebpm.loader.hist import log2_hist_lines
from ebpm.package import ArgSpec

SPECS = (
    ArgSpec(name="targ_pid", flag="pid", type="int", size=4, help="process id", offset=0),
    ArgSpec(name="targ_uid", flag="uid", type="uint", size=4, default=4294967295, offset=4),
    ArgSpec(name="targ_failed", flag="failed", type="bool", size=1, help="failed only",
            offset=8),
    ArgSpec(name="comm", flag="comm", type="str", size=8, offset=9),
)


def test_flags_forms() -> None:
    parsed = parse_args(SPECS, ["--pid", "42", "--uid=-1", "--failed", "--comm", "bash"])
    assert parsed.values == {"targ_pid": 42, "targ_uid": 0xFFFFFFFF, "targ_failed": True,
                             "comm": "bash"}
    assert parse_args(SPECS, ["--no-failed"]).values == {"targ_failed": False}
    assert parse_args(SPECS, ["--targ-pid", "0x10"]).values == {"targ_pid": 16}


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--pid", "x"], "expected an integer"),
        (["--pid", str(1 << 31)], "out of range"),
        (["--nope"], "unknown flag --nope"),
        (["--comm", "toolongname"], "at most 7 bytes"),
        (["--pid"], "needs a value"),
        (["pid"], "unexpected 'pid'"),
    ],
)
def test_flag_errors(argv: list[str], words: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_args(SPECS, argv)
    assert words in info.value.message


def test_rodata_patch_keeps_the_rest() -> None:
    rodata = bytes(range(17))
    out = patch_rodata(rodata, SPECS, parse_args(SPECS, ["--pid", "-2", "--comm", "sh"]))
    assert out[:4] == (-2).to_bytes(4, "little", signed=True)
    assert out[4:9] == rodata[4:9]
    assert out[9:17] == b"sh" + bytes(6)


def test_help_lists_every_flag() -> None:
    text = help_text("opensnoop", SPECS)
    assert text.splitlines()[0] == "usage: ebpm run opensnoop -- [FLAGS]"
    assert "--pid INT" in text and "process id" in text
    assert "--failed " in text and "(default: 4294967295)" in text


def test_log2_histogram_matches_libbpf_tools_layout() -> None:
    # what /usr/sbin/runqlat prints for these counts
    assert log2_hist_lines([6, 32, 0, 14], "usecs") == [
        "     usecs               : count    distribution",
        "         0 -> 1          : 6        |*******                                 |",
        "         2 -> 3          : 32       |****************************************|",
        "         4 -> 7          : 0        |                                        |",
        "         8 -> 15         : 14       |*****************                       |",
    ]
    assert log2_hist_lines([0, 0]) == []


def test_requirements_against_this_machine() -> None:
    from ebpm.errors import MissingFeatureError
    from ebpm.loader.environment import check_requirements, kernel_version
    from ebpm.package import Requirements

    assert kernel_version("6.1.0-18-amd64") == (6, 1, 0)
    assert kernel_version("5.15.0") > kernel_version("5.8")
    check_requirements(Requirements(kernel="5.8", arch=("x86_64",)), release="6.18.0",
                       machine="x86_64")
    with pytest.raises(MissingFeatureError) as info:
        check_requirements(Requirements(kernel="7.2"), release="6.18.0", machine="x86_64")
    assert info.value.feature == "kernel 7.2" and "this is 6.18.0" in info.value.message
    with pytest.raises(ArchitectureError):
        check_requirements(Requirements(arch=("aarch64",)), release="6.18.0", machine="x86_64")


@pytest.mark.parametrize(("arch", "machine"), [
    (("x86",), "x86_64"), (("x86_64",), "x86_64"), (("amd64",), "x86_64"),  # earlier builds
    (("arm64",), "aarch64"), (("aarch64",), "aarch64"), (("riscv",), "riscv64"),
    (("s390", "x86"), "x86_64"), ((), "mips"),
])
def test_a_package_runs_where_its_arch_names_the_machine(arch: tuple[str, ...],
                                                         machine: str) -> None:
    """`ebpm build` records libbpf's __TARGET_ARCH_ name; earlier builds `uname -m`."""
    from ebpm.loader.environment import check_requirements
    from ebpm.package import Requirements

    check_requirements(Requirements(arch=arch), release="6.18.0", machine=machine)


def test_a_package_for_another_arch_names_both_and_how_to_build_for_this_one() -> None:
    err = _refusal(("arm64",), "x86_64")
    assert (err.wanted, err.machine) == (("arm64",), "x86_64")
    assert err.message == "opens: built for arm64, and this machine is x86_64"
    assert err.hint == ('run it on arm64, or build it for this machine: `ebpm build` with '
                        '[build] arch = "x86" (or none)')
    assert _refusal(("x86",), "aarch64").hint.endswith('[build] arch = "arm64" (or none)')
    err = _refusal(("powerpc", "s390"), "vax")  # a machine libbpf has no name for
    assert err.message == "opens: built for powerpc or s390, and this machine is vax"
    assert err.hint == ("run it on powerpc or s390, or build it for this machine: `ebpm build` "
                        "on it, without [build] arch")


def _refusal(arch: tuple[str, ...], machine: str) -> ArchitectureError:
    from ebpm.loader.environment import check_requirements
    from ebpm.package import Requirements

    with pytest.raises(ArchitectureError) as info:
        check_requirements(Requirements(arch=arch), name="opens", release="6.18.0",
                           machine=machine)
    return info.value
