"""Modules the host must refuse cleanly, and guest builds that fail with the compiler's words."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from ebpm.build.guest import build_guest, sdk_include_dir
from ebpm.errors import BuildError, CompileError, WasmError
from ebpm.loader.wasm import run_guest

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "wasm-bpf" / "runtime-tests"


def test_not_a_module() -> None:
    with pytest.raises(WasmError, match="not a valid WebAssembly module"):
        run_guest(b"\0asm garbage", use_cache=False)


def test_unknown_import_is_named() -> None:
    wasm = wasmtime.wat2wasm(
        '(module (import "wasm_bpf" "wasm_bpf_no_such_call" (func (param i32) (result i32)))'
        ' (memory (export "memory") 1) (func (export "_start")))'
    )
    with pytest.raises(WasmError, match="wasm_bpf_no_such_call"):
        run_guest(wasm, use_cache=False)


def test_reactor_without_start_is_refused() -> None:
    wasm = wasmtime.wat2wasm('(module (memory (export "memory") 1))')
    with pytest.raises(WasmError, match="_start"):
        run_guest(wasm, use_cache=False)


def test_raw_pointers_read_as_unsigned_and_checked(kernel: None) -> None:
    # (i32,i32)->i64 load with a "negative" pointer: 0xFFFFFFF0 is not -16 from the end
    wasm = wasmtime.wat2wasm(
        '(module (import "wasm_bpf" "wasm_load_bpf_object" (func $load (param i32 i32) '
        '(result i64)))'
        ' (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
        ' (memory (export "memory") 1)'
        ' (func (export "_start")'
        '   (if (i64.ne (call $load (i32.const -16) (i32.const 8)) (i64.const 0))'
        '     (then (call $exit (i32.const 3))))'
        '   (if (i64.ne (call $load (i32.const 65530) (i32.const 64)) (i64.const 0))'
        '     (then (call $exit (i32.const 4))))'
        '   (call $exit (i32.const 0))))'
    )
    assert run_guest(wasm, use_cache=False).exit_code == 0


def test_sdk_headers_are_shipped() -> None:
    inc = sdk_include_dir()
    for header in ("bpf/libbpf.h", "bpf/bpf.h", "wasm-bpf.h", "libbpf-wasm.h"):
        assert (inc / header).is_file()


def test_build_without_app_c(tmp_path: Path, hello_object: Path) -> None:
    with pytest.raises(BuildError, match="app.c not found"):
        build_guest(tmp_path, hello_object)


def test_build_reports_compiler_diagnostics(tmp_path: Path, hello_object: Path) -> None:
    (tmp_path / "app.c").write_text(
        "#include <bpf/libbpf.h>\n#include \"hello.skel.h\"\n"
        "int main(void) { struct hello_bpf *s = hello_bpf__open(); return s->nope; }\n"
    )
    obj = tmp_path / "hello.bpf.o"
    obj.write_bytes(hello_object.read_bytes())
    with pytest.raises(CompileError) as err:
        build_guest(tmp_path, obj)
    assert any("nope" in d for d in err.value.diagnostics)


def test_build_a_skeleton_guest(tmp_path: Path, hello_object: Path) -> None:
    (tmp_path / "app.c").write_text(
        "#include <bpf/libbpf.h>\n#include \"hello.skel.h\"\n"
        "int main(void) {\n"
        "  struct hello_bpf *s = hello_bpf__open();\n"
        "  if (!s) return 1;\n"
        "  s->rodata->targ_pid = 42;\n"
        "  hello_bpf__destroy(s);\n"
        "  return 0;\n}\n"
    )
    obj = tmp_path / "hello.bpf.o"
    obj.write_bytes(hello_object.read_bytes())
    out = build_guest(tmp_path, obj)
    assert out == tmp_path / "hello.wasm"
    module = wasmtime.Module(wasmtime.Engine(), out.read_bytes())
    imports = {(i.module, i.name) for i in module.imports}
    assert ("wasm_bpf", "wasm_load_bpf_object") not in imports  # open only: nothing loaded
    assert {e.name for e in module.exports} >= {"_start", "__indirect_function_table"}
    assert run_guest(out.read_bytes(), use_cache=False).exit_code == 0


def test_package_import_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ebpm.loader.wasm, ebpm.build.guest\n"
        "assert 'wasmtime' not in sys.modules, 'wasmtime imported'\n"
        "from ebpm.loader.wasm import run_module\n"
        "assert 'wasmtime' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_wasm_run_imports_no_dataclasses_or_logging() -> None:
    """What `ebpm run X.wasm` imports beyond wasmtime (issue 12's bound: within 1.3x of the
    native run): no dataclasses (with inspect and ast: records instead), no logging (ebpm.log
    imports it when a record is written)."""
    import subprocess
    import sys

    code = ("import sys, ebpm.run.wasm, ebpm.loader.wasm.host; "
            "print(' '.join(sorted(m for m in ('dataclasses', 'logging', 'inspect', 'ast') "
            "if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""


def test_json_and_metrics_of_a_bare_module_are_refused_without_suggesting_native(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `.wasm` module prints its own output and carries its own object: --json and
    --metrics are not available for it, and --native (refused for it) is not suggested."""
    from tests.cli import ebpm

    module = str(CORPUS / "execve.wasm")
    for flag in (["--json"], ["--metrics", "127.0.0.1:9100"]):
        r = ebpm(capsys, "run", module, *flag, "--duration", "1")
        assert r.code == 2, r.err
        assert f"{flag[0]}: {module} is a WebAssembly module, which prints its own output; " \
            f"{flag[0]} is not available for it" in r.err
        assert "add --native" not in r.err and f"hint: leave out {flag[0]}" in r.err
