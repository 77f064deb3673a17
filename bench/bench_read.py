"""Reading speed: CPU seconds and MB/s of ``read_paths`` (parse only) on the given files.

    .venv/bin/python bench/bench_read.py DIR_OR_FILE...
    env PYTHONPATH=/tmp/base/src .venv/bin/python bench/bench_read.py DIR   # the same, older code
    .venv/bin/python bench/bench_read.py --split DIR   # as the commands read: on two cores

``--split`` reads as ``validate`` and ``matrix`` do (``sources/split.py``: a forked
child reads half of the files); CPU is then both processes' and the wall time is
printed too (MB/s of wall time on two cores needs two free cores to mean anything).

Cyclic garbage collection is off, as in the one-shot commands (``cli/main.py``,
``ONE_SHOT``: ``validate`` and ``matrix`` never run it); ``--gc`` keeps it on (then a
collection over everything read runs when reading ends: about 0.5 s at 100,000 pods).

Baseline: the same script over the code before a change (``git archive REV src``
unpacked elsewhere and put first on ``PYTHONPATH``), run right after, on the same
files. Figures and commands: ``bench/README.md``, "Reading and scale".
"""

from __future__ import annotations

import gc
import resource
import sys
import time

from sekisho.model.reader import read_paths


def main(argv: list[str]) -> int:
    reader = read_paths
    if "--split" in argv:
        from sekisho.sources.split import read_paths as reader

        argv = [a for a in argv if a != "--split"]
    if "--gc" in argv:
        argv = [a for a in argv if a != "--gc"]
    else:
        gc.disable()
    wall = time.perf_counter()
    start = time.process_time() + _children_cpu()
    result = reader(argv)
    cpu = time.process_time() + _children_cpu() - start
    wall = time.perf_counter() - wall
    size = sum(len(text.encode()) for text in result.texts.values()) / 1e6
    print(
        f"{size:.1f} MB, {result.files} files, {len(result.objects)} objects, "
        f"{len(result.issues)} issues: {cpu:.2f} s CPU, {size / cpu:.1f} MB/s; "
        f"{wall:.2f} s wall, {size / wall:.1f} MB/s"
    )
    return 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
