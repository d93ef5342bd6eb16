"""tqdm progress bars on a terminal, silence when piped (SPEC §8)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class Bars:
    """Hands out one progress callback per table; closes them all at the end."""

    def __init__(self, stream: Any = None):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bars: list[tqdm] = []

    def callback(self, label: str, total: int | None):
        if not self.enabled:
            return None
        bar = tqdm(total=total, desc=label, unit="rows", file=self.stream, leave=True)
        self.bars.append(bar)

        def update(done: int, _total: int | None) -> None:
            bar.update(done - bar.n)

        return update

    def close(self) -> None:
        for bar in self.bars:
            bar.close()
