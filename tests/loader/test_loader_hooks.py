"""raw_tp, tp_btf, uprobe and uretprobe on the real kernel, each asserting what it decoded."""

from __future__ import annotations

import os
import subprocess

import pytest

from ebpm.run import load_path, run_object
from tests.loader.conftest import require_bpf

pytestmark = pytest.mark.kernel


def test_raw_tp_tp_btf_uprobe_uretprobe(built, trigger, collector, adder) -> None:
    require_bpf()
    pkg = load_path(built("hooks"))
    attach = {"on_add": f"uprobe:{adder}:add", "on_add_ret": f"uretprobe:{adder}:add"}
    seen: dict[str, dict[str, object]] = {}

    def both() -> None:
        os.getppid()
        subprocess.run([str(adder), "20", "22"], check=True, capture_output=True)

    class Until4(type(collector)):  # type: ignore[misc]
        def event(self, event: dict[str, object]) -> None:
            seen.setdefault(str(event["hook"]), event)
            if len(seen) == 4:
                raise KeyboardInterrupt  # a normal stop, as Ctrl-C

    reporter = Until4()
    with trigger(both, 0.1):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, attach=attach,
                             args=["--targ-pid", str(os.getpid())], duration=10,
                             sink=reporter)
    assert summary.stopped_by == "signal", seen
    assert set(seen) == {"RAW_TP", "TP_BTF", "UPROBE", "URETPROBE"}
    assert seen["RAW_TP"]["a"] == 110 and seen["RAW_TP"]["pid"] == os.getpid()
    assert seen["TP_BTF"]["a"] == 110 and seen["TP_BTF"]["b"] == os.getppid()
    assert (seen["UPROBE"]["a"], seen["UPROBE"]["b"]) == (20, 22)
    assert seen["URETPROBE"]["a"] == 42
    assert seen["UPROBE"]["pid"] == seen["URETPROBE"]["pid"] != os.getpid()
    assert any("uprobe" in a and "add" in a for a in summary.attached)


def test_uprobe_without_target_says_how_to_give_one(built) -> None:
    require_bpf()
    from ebpm.errors import LoadError

    pkg = load_path(built("hooks"))
    with pytest.raises(LoadError) as info:
        run_object(pkg.object, pkg.config, btf=pkg.btf, duration=0.1)
    assert "on_add" in info.value.message
    assert "--attach on_add=uprobe:BINARY:FUNC" in (info.value.hint or "")
