"""Resources left running or open: threads, asyncio tasks, child processes, file descriptors."""

from __future__ import annotations

import json
import re

import pytest
from inner import write_ini

THREADS = """
    import threading, time
    STOP = threading.Event()

    def test_thread_never_joined():
        threading.Thread(target=STOP.wait, args=(10,), name="poller", daemon=True).start()

    def test_thread_joined_is_clean():
        t = threading.Thread(target=time.sleep, args=(0.01,), name="short")
        t.start()
        t.join()

    def test_thread_that_ends_by_itself_is_clean():
        threading.Thread(target=lambda: None, name="quick", daemon=True).start()

    class Beat:
        def __init__(self):
            self.stop = threading.Event()  # made by the test, waited on by the thread's running stack
            self.thread = threading.Thread(target=self.stop.wait, args=(10,), name="beat", daemon=True)

    def test_thread_with_its_own_event_never_joined():
        Beat().thread.start()
"""


def test_thread_left_running_is_reported_once_with_name_and_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREADS)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=leaks.json")
    assert result.parseoutcomes() == {"passed": 4, "leaked": 2}
    result.stdout.fnmatch_lines(
        [
            "leakhunt: 1 resource left running or open",
            "1) thread 'poller' still running after teardown (threading.Thread, target threading.Event.wait)",
        ]
    )
    # a running thread is also an object threading._active holds, and its stack holds what it waits on:
    # reported once, as a thread
    assert "threading._active" not in result.stdout.str()
    assert "held by" not in result.stdout.str()
    tests = json.loads((pytester.path / "leaks.json").read_text())["tests"]
    assert [[(leak["kind"], leak["name"]) for leak in test["leaks"]] for test in tests] == [
        [("thread", "poller")],
        [("thread", "beat")],
    ]


def test_pending_asyncio_task(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        LOOP = asyncio.new_event_loop()

        async def forever():
            await asyncio.sleep(3600)

        async def short(n):
            await asyncio.sleep(0)
            return n

        def test_task_left_pending():
            LOOP.create_task(forever(), name="orphan")

        def test_tasks_awaited_are_clean():
            async def main():
                return await asyncio.gather(*(asyncio.create_task(short(i)) for i in range(3)))
            assert asyncio.run(main()) == [0, 1, 2]
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    result.stdout.fnmatch_lines(
        [
            "LEAKED *::test_task_left_pending: asyncio task 'orphan' still pending after teardown (_asyncio.Task, coroutine forever)"
        ]
    )


def test_child_process_left_running(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import atexit, subprocess, sys
        CHILDREN = []
        atexit.register(lambda: [p.kill() for p in CHILDREN])

        def test_child_never_waited():
            CHILDREN.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]))

        def test_child_waited_is_clean():
            subprocess.run([sys.executable, "-c", "pass"], check=True)
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    result.stdout.fnmatch_lines(
        ["1) child process pid * still running after teardown (subprocess.Popen, command *time.sleep(30)*)"]
    )


FDS = """
    import os
    KEPT = []

    def test_raw_descriptor_never_closed(tmp_path):
        KEPT.append(os.open(tmp_path / "data.bin", os.O_WRONLY | os.O_CREAT))

    def test_file_closed_by_with_is_clean(tmp_path):
        with open(tmp_path / "data.txt", "w") as handle:
            handle.write("x")
"""


def test_descriptor_left_open_when_fds_are_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FDS)
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-resources=fds")
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    result.stdout.fnmatch_lines(["[0-9]) file descriptor * still open after teardown (*data.bin)"])


def test_descriptors_are_not_checked_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(FDS)
    result = pytester.runpytest_subprocess("--detect-leaks")
    # the descriptor is not looked at; the number kept in a module-level list is a value that grows
    assert result.parseoutcomes() == {"passed": 2, "leaked": 1}
    assert "file descriptor" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["1) +1 value the collector does not track*", "   held by: *.KEPT (a module-level container*"]
    )


def test_resources_can_be_switched_off(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "leaks_resources = none")
    pytester.makepyfile(THREADS)
    result = pytester.runpytest_subprocess("--detect-leaks")
    # without the resource check the thread is still an object that program state holds
    assert result.parseoutcomes() == {"passed": 4, "leaked": 2}
    assert re.search(r"threading\.Thread x1 held by threading\._active", result.stdout.str())


def test_unknown_resource_kind_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(THREADS)
    result = pytester.runpytest("--detect-leaks", "--leaks-resources=threads,sockets")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*command line option --leaks-resources: unknown resource kind 'sockets'; expected a comma-separated list of threads, tasks, processes, fds, or all, or none*"
        ]
    )


def test_report_records_memory_after_each_test_and_names_the_biggest_growth(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        BIG = []
        def test_small():
            assert sum(range(10)) == 45
        def test_grows():
            BIG.append(bytearray(64 * 1024 * 1024))
        def test_after():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--detect-leaks", "--leaks-report=leaks.json")
    result.stdout.fnmatch_lines(
        ["leakhunt: memory grew most after: test_report_records_memory*::test_grows (+6?.* MiB)*"]
    )
    memory = json.loads((pytester.path / "leaks.json").read_text())["memory"]
    assert [entry["nodeid"].split("::")[1] for entry in memory] == ["test_small", "test_grows", "test_after"]
    grows = memory[1]
    assert grows["growth_bytes"] >= 64 * 1024 * 1024
    assert grows["rss_bytes"] - memory[0]["rss_bytes"] == grows["growth_bytes"]


def test_no_memory_curve_without_a_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_it():\n    pass\n")
    result = pytester.runpytest_subprocess("--detect-leaks")
    assert "memory grew most" not in result.stdout.str()
