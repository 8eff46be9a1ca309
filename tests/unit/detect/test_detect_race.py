"""Issue 21: uv detection failed in about 3 of 40 `doctor` runs with "unexpected TypeError": detection's threads
read Python's sysconfig while another thread was filling it (sysconfig has no lock in 3.11; uv.find_uv_bin
computed "uv" + None). Reproduced deterministically in a fresh interpreter: sysconfig's first fill is made slow,
and the main thread starts it right after the probe threads start; then detection runs concurrently many times.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, sysconfig, threading, time
    from fwsetup import detect
    from fwsetup.detect import system

    import uv

    started = threading.Event()
    fill = sysconfig._init_posix if hasattr(sysconfig, "_init_posix") else None
    if fill is not None:
        def slow_fill(vars):  # the race window, widened: the dict is published empty, then filled
            started.set()
            time.sleep(0.3)
            fill(vars)
        sysconfig._init_posix = slow_fill
        find_uv_bin = uv.find_uv_bin
        def find_uv_bin_in_the_window():  # the uv probe's thread reads sysconfig once a fill has begun
            started.wait(2)
            return find_uv_bin()
        uv.find_uv_bin = find_uv_bin_in_the_window

    probe_os = system.probe_os
    def os_reading_sysconfig(notes):  # the main thread reads sysconfig while the probe threads run
        sysconfig.get_config_var("EXE")
        return probe_os(notes)
    system.probe_os = os_reading_sysconfig

    bad = []
    for i in range(int(sys.argv[1])):
        sysconfig._CONFIG_VARS = None  # as in a fresh process
        started.clear()
        detect.clear_cache()
        profile = detect.detect_host(docker=False)
        bad += [n for n in profile.probe_errors if "unexpected" in n]
    print("\\n".join(bad) or "clean")
""")


def test_detection_threads_never_see_sysconfig_half_made() -> None:
    cp = subprocess.run(
        [sys.executable, "-c", SCRIPT, "5"], capture_output=True, text=True, timeout=300, check=False
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert cp.stdout.strip() == "clean", cp.stdout


def test_concurrent_detections_many_times() -> None:
    # Several detections at once in one process, again and again: none reports an unexpected error.
    code = textwrap.dedent("""
        import sysconfig, threading
        from fwsetup import detect
        bad = []
        for _ in range(10):
            sysconfig._CONFIG_VARS = None
            detect.clear_cache()
            def one():
                p = detect.detect_host(docker=False, refresh=True)
                bad.extend(n for n in p.probe_errors if "unexpected" in n)
            ts = [threading.Thread(target=one) for _ in range(4)]
            for t in ts: t.start()
            for t in ts: t.join()
        print("\\n".join(bad) or "clean")
    """)
    cp = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert cp.stdout.strip() == "clean", cp.stdout
