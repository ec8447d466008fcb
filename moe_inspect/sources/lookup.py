"""The state of one ``load_model`` call, shared by the sources it tries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..spec import ModelFiles

Progress = Callable[[str], None] | None


@dataclass
class Lookup:
    model: str
    revision: str | None
    read_tensors: bool
    progress: Progress
    tried: list[str] = field(default_factory=list)  # one line per source attempted
    bytes_read: int = 0  # bytes fetched over the network (cached files count 0)

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)

    def finish(self, files: ModelFiles, source: str) -> ModelFiles:
        """Stamp ``files.ref`` with the winning source, the attempts and the bytes fetched."""
        files.ref.source = source
        files.ref.sources_tried = list(self.tried)
        files.ref.bytes_read = self.bytes_read
        return files
