"""A user's-eye audit of explain, analyze, quiz, map, diff, watch, metrics, sweep and fleet:
each test is a defect found by feeding the commands what real users and hostile input give."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvmalloc.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
DUMP = ROOT / "tests" / "data" / "vmallocinfo" / "arm32-mediatek-goclever-i5-3.4.5.txt"
LOG = ROOT / "tests" / "data" / "logs" / "armada385-module.log"
DUMPS = ROOT / "tests" / "data" / "dumps"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


# ---- metrics ---------------------------------------------------------------------------------
def test_metrics_refuses_a_port_above_65535(capsys: pytest.CaptureFixture[str]) -> None:
    # Was an OverflowError traceback from socket.bind.
    code, _, err = _run(capsys, "metrics", "--serve", "99999", str(DUMP))
    _one_error(code, err, "--serve", "65535")


def test_metrics_output_error_names_the_output_not_a_temporary_file(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "missing" / "vmalloc.prom"
    code, _, err = _run(capsys, "metrics", "-o", str(target), str(DUMP))
    _one_error(code, err, str(target))
    assert ".tmp" not in err
    code, _, err = _run(capsys, "metrics", "-o", str(tmp_path), str(DUMP))
    _one_error(code, err, str(tmp_path))
    assert ".tmp" not in err and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


# ---- an empty dump is no state: metrics, diff, watch -------------------------------------------
def test_an_empty_dump_is_an_error_for_metrics_diff_and_watch(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Was: metrics said read_ok 1 with no areas; diff called every area gone "(addresses
    # hashed)"; watch stored a sample of 0 areas.
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, out, err = _run(capsys, "metrics", str(empty))
    _one_error(code, err, str(empty), "no vmalloc areas")
    assert out == ""
    code, _, err = _run(capsys, "diff", "--interval", "1h", str(DUMP), str(empty))
    _one_error(code, err, str(empty))
    store = tmp_path / "w.db"
    code, _, err = _run(capsys, "watch", "--plain", "--count", "1", "--store", str(store), str(empty))
    assert code == 2 and str(empty) in err and "Traceback" not in err


def test_diff_refuses_times_given_out_of_order(capsys: pytest.CaptureFixture[str]) -> None:
    # Was exit 0 with "-1s" in one line and "no time apart" in the next.
    code, out, err = _run(capsys, "diff", "--times", "7200,3600", str(DUMP), str(DUMP))
    _one_error(code, err, "--times")
    assert out == ""


# ---- explain -----------------------------------------------------------------------------------
def test_explain_refuses_no_ram(capsys: pytest.CaptureFixture[str]) -> None:
    # Was "RAM unknown (given: --ram)".
    code, out, err = _run(capsys, "explain", "--ram", "0", str(LOG))
    _one_error(code, err, "--ram")
    assert out == ""


def test_explain_refuses_an_empty_vmallocinfo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Was "0 areas, 0.0% used ...: the failed request fits in it now".
    empty = tmp_path / "vmallocinfo"
    empty.write_text("\n")
    code, out, err = _run(capsys, "explain", "--vmallocinfo", str(empty), str(LOG))
    _one_error(code, err, str(empty), "no vmalloc areas")
    assert out == ""


def test_explain_refuses_a_command_line_the_model_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    # Was exit 0 with a note that the layout could not be computed.
    code, out, err = _run(capsys, "explain", "--cmdline", "vmalloc=16q", str(LOG))
    _one_error(code, err, "16q")
    assert out == ""


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(lambda s: s.encode("utf-8", "replace")))
def test_any_bytes_as_a_log_explain_exits_0_or_2(data: bytes, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"vmap allocation for size 1048576 failed\n" + data)
    code, _, err = _run(capsys, "explain", str(path))
    assert code in (0, 2) and "Traceback" not in err


# ---- quiz and map ------------------------------------------------------------------------------
def test_quiz_refuses_freeing_an_area_twice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "quiz", "-A", "a16k,f0,f0")
    _one_error(code, err, "f0", "p0")
    assert out == ""


def test_map_reads_every_dump_format_and_names_the_file(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    # Was: only the plain format, and errors blamed "<vmallocinfo>".
    out_html = tmp_path / "m.html"
    code, _, err = _run(capsys, "map", "--vmallocinfo", str(DUMPS / "proc-with-prompts-crlf.txt"),
                        "-o", str(out_html))
    assert code == 0, err
    assert "<svg" in out_html.read_text()
    bad = tmp_path / "bad.txt"
    bad.write_text("0xzz-0x1 4096 foo\n")
    code, _, err = _run(capsys, "map", "--vmallocinfo", str(bad))
    _one_error(code, err, str(bad))
    assert "<vmallocinfo>" not in err


# ---- sweep -------------------------------------------------------------------------------------
def test_sweep_spec_refuses_no_ram(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text('[sweep]\nram = "0"\n[axes]\nkernels = ["6.1"]\nworkloads = ["module_churn"]\nseeds = 1\n')
    code, _, err = _run(capsys, "sweep", "--dry-run", str(spec))
    _one_error(code, err, "sweep.ram")


def test_a_table_with_no_rows_compacts_to_nothing(tmp_path: Path) -> None:
    # A sweep whose every run the model refused has no series rows: compacting the series
    # table failed on a folder never made (pyarrow's "Failed to open local file").
    from pyvmalloc.scale.store import Table, schema

    t = Table(str(tmp_path), "series", schema(["run_id", "step"]))
    t.compact(sort_by=["run_id"])
    assert t.read().num_rows == 0 and not os.path.exists(t.path)


def test_a_closed_pipe_reaches_main_from_the_monitoring_commands() -> None:
    # `pyvmalloc diff ... | head` printed "pyvmalloc diff: Broken pipe" and exited 2: the
    # guard took the closed pipe for a file error; main() ends quietly on it.
    from pyvmalloc.cli.monitor_args import guarded

    def closed(_: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        guarded("diff", closed)(None)  # type: ignore[arg-type]


def test_a_store_with_a_table_dropped_is_one_line_for_watch_diff_and_history(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Was an sqlite3.OperationalError traceback ("no such table: callers").
    import sqlite3

    store = tmp_path / "w.db"
    code, _, err = _run(capsys, "watch", "--plain", "--count", "1", "--store", str(store), str(DUMP))
    assert code == 0, err
    db = sqlite3.connect(store)
    db.execute("DROP TABLE callers")
    db.commit()
    db.close()
    for argv in (["history", str(store)], ["diff", "--store", str(store)],
                 ["watch", "--plain", "--count", "1", "--store", str(store), str(DUMP)]):
        code, _, err = _run(capsys, *argv)
        _one_error(code, err, str(store), "callers")


def test_explain_does_not_say_vmalloc_cannot_help_when_the_arch_is_unknown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # The verdict said "vmalloc= cannot help" and "helps: no" while a note said it helps on
    # a 32-bit kernel, which the log did not tell.
    log = tmp_path / "log"
    log.write_text("vmap allocation for size 1048576 failed: use vmalloc=<size> to increase size\r\n")
    code, out, err = _run(capsys, "explain", str(log))
    assert code == 0, err
    first, second = out.splitlines()[:2]
    assert "cannot help" not in first and "32-bit" in first
    assert "vmalloc= helps: unknown" in second
    code, out, _ = _run(capsys, "explain", "--arch", "x86_64", str(log))
    assert "vmalloc= cannot help" in out.splitlines()[0]


def test_fleet_names_why_a_dump_was_not_ranked() -> None:
    # Was "not ranked: 1 error (hashed addresses hide the holes; errors name the line)" with
    # no error shown anywhere in the terminal.
    from pyvmalloc.scale.fleet_report import format_ranking

    rows = [{"rank": None, "status": "error", "error": "trunc.txt:38: truncated line\x1b[2J"},
            {"rank": None, "status": "hashed", "error": "addresses hashed"}]
    text = format_ranking(rows)
    assert "not ranked: 1 error, 1 hashed (hashed addresses hide the holes)" in text
    assert "  trunc.txt:38: truncated line\\x1b[2J\n" in text


def test_the_tour_ends_with_commands_for_the_machine_it_ran(capsys: pytest.CaptureFixture[str]) -> None:
    # Its "Next" screen offered `machine --arch arm ... vmalloc=384M` and a Python line without
    # the kernel or allocator, whatever the reader had chosen.
    code, out, err = _run(capsys, "tour", "--arch", "arm64", "--kernel", "4.19", "--allocator", "rbtree")
    assert code == 0, err
    nxt = out[out.index("== Next"):]
    assert "--arch arm " not in nxt and "vmalloc=384M" not in nxt
    assert "pyvmalloc machine --arch arm64 --kernel 4.19 --allocator rbtree" in nxt
    assert "kernel='4.19', allocator='rbtree'" in nxt


def test_history_plot_into_a_folder_says_to_give_a_file(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    store = tmp_path / "w.db"
    assert _run(capsys, "watch", "--plain", "--count", "1", "--store", str(store), str(DUMP))[0] == 0
    code, out, err = _run(capsys, "history", "--plot", str(tmp_path), str(store))
    _one_error(code, err, "--plot", "not a directory")
    assert out == ""


def test_ramdump_parser_table_and_text_of_one_device_give_one_range(
        capsys: pytest.CaptureFixture[str]) -> None:
    # The table drops "+0x0/0x240": map_lowmem (lowmem itself, at 0xc0000000) was read as an
    # allocation, and analyze put VMALLOC_START there (1016 MiB, 27.7% used) where the same
    # device's text dump gives 0xd0800000 (752 MiB, 4.1% used).
    firsts = []
    for name in ("ramdump-parser-vmalloc.txt", "ramdump-parser-table-vmalloc.txt"):
        code, out, err = _run(capsys, "analyze", str(DUMPS / name))
        assert code == 0, err
        firsts.append(out.splitlines()[0].split(": ", 1)[1])
    assert firsts[0] == firsts[1] and "of 752.0 MiB" in firsts[0]


def test_quiz_says_how_it_takes_topic_fits_with_explicit_operations(
        capsys: pytest.CaptureFixture[str]) -> None:
    # "ARG topic fits" was echoed above a "(placement)" question.
    code, out, _ = _run(capsys, "quiz", "--topic", "fits", "-A", "a16k")
    assert code == 0 and "Question 1 (placement)" in out
    assert "ARG topic fits (with -A: aSIZE items ask placement, iSIZE items fits)" in out


def test_watch_over_a_folder_passes_over_notes_and_side_files(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # A README (or a NAME.version beside NAME.txt) in the folder stopped the watch with
    # "README:1: expected 0xSTART-0xEND".
    folder = tmp_path / "dumps"
    folder.mkdir()
    (folder / "a.txt").write_text(DUMP.read_text())
    (folder / "a.version").write_text("Linux version 3.4.5\n")
    (folder / "README").write_text("Dumps of the device, one an hour\n")
    code, _, err = _run(capsys, "watch", "--plain", "--store", str(tmp_path / "w.db"), str(folder))
    assert code == 0, err
    assert "1 samples added" in err


def test_standard_input_for_metrics_and_diff_and_a_clear_no_for_watch(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # "-" was "-: No such file or directory", where analyze and explain read stdin.
    import io
    import sys

    class _Stdin:
        buffer = io.BytesIO(DUMP.read_bytes())

    monkeypatch.setattr(sys, "stdin", _Stdin())
    code, out, err = _run(capsys, "metrics", "-")
    assert code == 0 and 'vmalloc_caller_bytes{caller="binder_mmap"}' in out, err
    _Stdin.buffer = io.BytesIO(DUMP.read_bytes())
    code, out, err = _run(capsys, "diff", "--times", "0,3600", str(DUMP), "-")
    assert code == 0 and "<stdin>" in out, err
    code, _, err = _run(capsys, "diff", "-", "-")
    _one_error(code, err, "'-'")
    code, _, err = _run(capsys, "metrics", "--serve", "0", "-")
    _one_error(code, err, "'-'")
    code, _, err = _run(capsys, "watch", "--store", str(tmp_path / "w.db"), "-")
    _one_error(code, err, "'-'")


@pytest.mark.parametrize(("dump", "log", "words"), [
    ("arm32-zynq7000-innofirmware-4.4.0.txt", "i386-insmod-highmem.log", ("an arm machine", "i386")),
    ("x86_64-rhel8-sosreport-hashed.txt", "armada385-module.log", ("hashed", "nothing to plan on")),
])
def test_explain_refuses_a_vmallocinfo_of_another_machine(
        capsys: pytest.CaptureFixture[str], dump: str, log: str, words: tuple[str, ...]) -> None:
    # An ARM dump with an i386 log gave "vmalloc= helps" and "no vmalloc= needed" in one
    # answer; a hashed dump was passed over without a word.
    path = ROOT / "tests" / "data" / "vmallocinfo" / dump
    code, out, err = _run(capsys, "explain", "--vmallocinfo", str(path),
                          str(ROOT / "tests" / "data" / "logs" / log))
    _one_error(code, err, "--vmallocinfo", *words)
    assert out == ""


def test_explain_knows_a_request_larger_than_the_range_its_message_names(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # 1 MiB + guard in a 1 MiB range was "fits ever: unknown" without --arch; a range that
    # ends before it starts was printed as the module area 0xc0000000-0xb0000000.
    log = tmp_path / "log"
    log.write_text("vmalloc_node_range for size 1052672 failed: Address range restricted to "
                   "0xffffffffc0000000 - 0xffffffffc0100000\n")
    code, out, err = _run(capsys, "explain", str(log))
    assert code == 0, err
    assert "fits ever: no" in out.splitlines()[1]
    log.write_text("vmalloc_node_range for size 1052672 failed: Address range restricted to "
                   "0xc0000000 - 0xb0000000\n")
    code, out, err = _run(capsys, "explain", str(log))
    assert code == 0, err
    assert "0xc0000000-0xb0000000" not in out


def test_sweep_report_plots_into_a_file_is_said_before_the_table(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from pyvmalloc.scale.sweep import runs_table

    runs_table(str(tmp_path)).append([{"run_id": "0" * 16, "kernel": "6.1", "allocator": "default",
                                       "workload": "module_churn", "status": "ok"}])
    not_a_folder = tmp_path / "plots.png"
    not_a_folder.write_text("")
    code, out, err = _run(capsys, "sweep-report", "--plots", str(not_a_folder), str(tmp_path))
    _one_error(code, err, "--plots", "not a folder")
    assert out == ""
