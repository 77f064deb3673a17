"""Reading speed: CPU seconds and MB/s of ``read_paths`` (parse only) on the given files.

    .venv/bin/python bench/bench_read.py DIR_OR_FILE...
    env PYTHONPATH=/tmp/base/src .venv/bin/python bench/bench_read.py DIR   # the same, older code

Cyclic garbage collection is off, as in the one-shot commands (``cli/main.py``,
``ONE_SHOT``: ``validate`` and ``matrix`` never run it); ``--gc`` keeps it on (then a
collection over everything read runs when reading ends: about 0.5 s at 100,000 pods).

Baseline: the same script over the code before a change (``git archive REV src``
unpacked elsewhere and put first on ``PYTHONPATH``), run right after, on the same
files. Figures and commands: ``bench/README.md``, "Reading and scale".
"""

from __future__ import annotations

import gc
import sys
import time

from sekisho.model.reader import read_paths


def main(argv: list[str]) -> int:
    if "--gc" in argv:
        argv = [a for a in argv if a != "--gc"]
    else:
        gc.disable()
    start = time.process_time()
    result = read_paths(argv)
    cpu = time.process_time() - start
    size = sum(len(text.encode()) for text in result.texts.values()) / 1e6
    print(
        f"{size:.1f} MB, {result.files} files, {len(result.objects)} objects, "
        f"{len(result.issues)} issues: {cpu:.2f} s CPU, {size / cpu:.1f} MB/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
