"""Machine facts every benchmark prints with its table, and the --markdown file it appends to."""

from __future__ import annotations

import platform
import time


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def append_markdown(path: str, script: str, lines: list[str]) -> None:
    """Append `lines` (the printed header and table) to the markdown file `path` under a heading
    naming `script` and the time."""
    with open(path, "a") as f:
        f.write("\n".join(["", f"### {script} ({time.strftime('%Y-%m-%d %H:%M')})", ""] + lines) + "\n")
