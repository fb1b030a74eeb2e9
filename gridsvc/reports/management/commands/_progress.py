"""A plain stdout progress bar for long imports (no extra dependency)."""

from __future__ import annotations


class ProgressBar:
    """``ProgressBar(stdout)(done, total, stage)`` redraws one line: ``saving [####    ] 40/100``."""

    def __init__(self, stdout, width: int = 30, every: int = 1) -> None:  # type: ignore[no-untyped-def]
        self.stdout = stdout
        self.width = width
        self.every = max(every, 1)

    def __call__(self, done: int, total: int, stage: str) -> None:
        if total <= 0 or (done % self.every and done != total):
            return
        filled = int(self.width * done / total)
        bar = "#" * filled + " " * (self.width - filled)
        end = "\n" if done == total else ""
        self.stdout.write(f"\r{stage} [{bar}] {done}/{total}", ending=end)
        self.stdout.flush()
