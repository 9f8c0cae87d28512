"""Images in, batches out: decode and preprocess ahead of the model, and batch images of equal size together.

Datasets may mix image sizes; a batch must hold one size. Images are bucketed by their preprocessed shape, a
bucket leaves as a batch when it is full, and leftovers leave at the end; each image keeps its index, so callers
put results back in sample order. At most ``batch_size`` images per distinct shape wait in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robustad.kit.images import load_rgb
from robustad.records import Sample

if TYPE_CHECKING:
    import torch

PREFETCH = 4  # images decoded ahead of the model by a background thread


@dataclass
class Item:
    """One sample, decoded and preprocessed: ``index`` is its position in the list it came from."""

    index: int
    image: torch.Tensor  # (3, H, W) in [0,1], what the backbone receives
    size: tuple[int, int]  # (height, width) of the original image, for the anomaly map


def prepared(samples: list[Sample], preprocess: Callable[[Any], torch.Tensor], *,
             prefetch: int = PREFETCH) -> Iterator[Item]:
    """The samples as Items in order, decoded and preprocessed by a background thread ``prefetch`` ahead
    (PIL and torch release the GIL while decoding and resizing, so this overlaps with the model)."""
    if prefetch < 1:
        yield from (_item(index, sample, preprocess) for index, sample in enumerate(samples))
        return
    done = object()
    ahead: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work() -> None:
        try:
            for index, sample in enumerate(samples):
                if stop.is_set():
                    return
                ahead.put(_item(index, sample, preprocess))
            ahead.put(done)
        except BaseException as error:  # handed to the consumer, which re-raises it
            ahead.put(error)

    worker = threading.Thread(target=work, name="robustad-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on a full queue
            try:
                ahead.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.01)


def _item(index: int, sample: Sample, preprocess: Callable[[Any], torch.Tensor]) -> Item:
    image = load_rgb(sample.path)
    return Item(index, preprocess(image), (image.height, image.width))


def chunk_aligned(batch_size: int, chunk: int) -> int:
    """``batch_size`` rounded up to a multiple of ``chunk``: every batch of a size bucket then starts at a chunk
    boundary of the bucket's sample order, so its chunks are the same whatever the batch size."""
    return -(-batch_size // chunk) * chunk


def batches(items: Iterable[Item], batch_size: int) -> Iterator[list[Item]]:
    """Items grouped by image shape into batches of at most ``batch_size``."""
    buckets: dict[tuple, list[Item]] = {}
    for item in items:
        bucket = buckets.setdefault(tuple(item.image.shape), [])
        bucket.append(item)
        if len(bucket) == batch_size:
            yield buckets.pop(tuple(item.image.shape))
    yield from buckets.values()
