"""`linewarden collector run` whose event loop's thread is profiled between two signals (bench/scaleout.py --profile).

    python bench/collector_profiled.py OUT.prof collector run --config FILE

SIGUSR1 switches cProfile on (counting the thread's CPU time), SIGUSR2 switches it off and writes OUT.prof: the
profile then holds the load and not the start-up. Python runs signal handlers on the main thread, which is the
collector's event loop.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from linewarden.cli import main  # noqa: E402


def profiled(out: Path, argv: list[str]) -> int:
    profile = cProfile.Profile(time.thread_time)  # CPU time: on a shared box wall time counts others' turns

    def start(signum: int, frame: FrameType | None) -> None:
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return main(argv)


if __name__ == "__main__":
    raise SystemExit(profiled(Path(sys.argv[1]), sys.argv[2:]))
