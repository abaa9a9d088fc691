"""What `aepipe score` and `aepipe calibrate` read: image files, folders of them and .npy arrays of
images, one image at a time in the order given, so that memory does not grow with their number. A
file that cannot be scored (unreadable, of another shape, too small) becomes an input holding its
error, and the others are scored; `strict` refuses it instead. A PATH that does not exist, or a
folder without images, is a mistake in the command, refused before anything is read."""

import itertools
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from aepipe.data.images import (
    FORMATS,
    IMAGE_SUFFIXES,
    image_files,
    read_image,
    shape_name,
    unit_floats,
)
from aepipe.errors import AepipeError

T = TypeVar("T")
R = TypeVar("R")


class Pending(Protocol[R]):
    """A result to come: a thread pool's future, or a Dask cluster's."""

    def result(self) -> R: ...


@dataclass(frozen=True)
class Input:
    source: str  # the file, or `array.npy[7]` for an array's eighth image
    # float32 (side, side) or (side, side, 3) in [0, 1] (a scan: its own size); None where it failed
    pixels: np.ndarray | None
    # (width, height) of the image as it displays (of an array's image: its own)
    size: tuple[int, int]
    error: str | None = None  # why it could not be scored


def listed(paths: list[Path]) -> list[Path]:
    """The files to read, in order: each PATH, a folder's image files by name (not recursive)."""
    files = []
    for path in paths:
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise AepipeError(f"{path}: no {FORMATS} files in this folder")
            files.extend(found)
        elif not path.exists():
            raise AepipeError(f"{path}: no such file or folder")
        else:
            files.append(path)
    return files


def image_count(files: list[Path]) -> int:
    """How many images the files hold (an array's count from its header; an unreadable one counts
    1)."""
    return sum(_array_length(file) if file.suffix.lower() == ".npy" else 1 for file in files)


def read_images(
    files: list[Path], side: int, channels: int, invert: bool, strict: bool, tiled: bool = False
) -> Iterator[Input]:
    """Every image of `files` as the model takes it (inverted if `invert`), one at a time; `strict`:
    the first that cannot be scored is refused (AepipeError) instead of becoming an input with its
    error. `tiled`: each at its own size, at least side × side (a scan, cut into tiles of that
    side)."""
    for file in files:
        for item in _file_inputs(file, side, channels, invert, tiled):
            if strict and item.error:
                raise AepipeError(item.error)
            yield item


def _file_inputs(
    file: Path, side: int, channels: int, invert: bool, tiled: bool
) -> Iterator[Input]:
    try:
        if file.suffix.lower() == ".npy":
            array = _mapped_images(file, side, channels, tiled)
        elif file.suffix.lower() in IMAGE_SUFFIXES:
            image = read_image(file, side, channels, tiled=tiled)
            yield Input(str(file), _inverted(unit_floats(image.pixels), invert), image.size)
            return
        else:
            raise AepipeError(
                f"{file}: unsupported file; expected a {FORMATS} image, a .npy array or a folder"
            )
    except AepipeError as error:
        yield Input(str(file), None, (side, side), str(error))
        return
    yield from _array_inputs(file, array, invert)


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of `size` items (the last one shorter)."""
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """`items`, the next one made on a thread while the caller works on this one: files are decoded
    (Pillow and NumPy release the GIL) while the model scores the batch before. What the thread
    raises is raised here, in order."""
    ready: queue.Queue = queue.Queue(maxsize=1)

    def produce() -> None:
        try:
            for item in items:
                ready.put((item, None))
        except BaseException as error:  # handed to the caller, who raises it
            ready.put((None, error))
            return
        ready.put((None, StopIteration()))

    threading.Thread(target=produce, daemon=True).start()
    while True:
        item, error = ready.get()
        if isinstance(error, StopIteration):
            return
        if error is not None:
            raise error
        yield item


def worked_in_order(
    items: Iterable[T], work: Callable[[T], R], workers: int
) -> Iterator[tuple[T, R]]:
    """(item, work(item)) for each of `items`, in their order, `work` done on up to `workers` of
    them at a time on threads (a detector's call releases the GIL: one-thread calls side by side
    fill the cores)."""
    with ThreadPoolExecutor(workers) as pool:
        yield from in_order(items, lambda item: pool.submit(work, item), lambda: workers)


def in_order(
    items: Iterable[T], submit: Callable[[T], Pending[R]], window: Callable[[], int]
) -> Iterator[tuple[T, R]]:
    """(item, its future's result) for each of `items`, in their order, up to `window()` of them
    submitted at a time (asked again as each is submitted: a cluster's workers come and go)."""
    pending: deque = deque()
    for item in items:
        pending.append((item, submit(item)))
        if len(pending) >= window():
            done, future = pending.popleft()
            yield done, future.result()
    for done, future in pending:
        yield done, future.result()


def _inverted(pixels: np.ndarray, invert: bool) -> np.ndarray:
    return 1 - pixels if invert else pixels


def _array_inputs(path: Path, array: np.ndarray, invert: bool) -> Iterator[Input]:
    """A memory-mapped array's images, read from the file as they are needed; one whose values are
    out of range becomes an input with its error."""
    size = (array.shape[2], array.shape[1])
    for index in range(len(array)):
        source, pixels = f"{path}[{index}]", array[index]
        floats = unit_floats(pixels) if pixels.dtype == np.uint8 else pixels.astype(np.float32)
        if np.isfinite(floats).all() and floats.min() >= 0 and floats.max() <= 1:
            yield Input(source, _inverted(floats, invert), size)
        else:
            yield Input(
                source,
                None,
                size,
                f"{source}: {pixels.dtype} values from {pixels.min()} to {pixels.max()}; expected "
                "uint8 (0–255) or floats in [0, 1]",
            )


def _mapped_images(path: Path, side: int, channels: int, tiled: bool = False) -> np.ndarray:
    """The array at `path` in the dataset's layout, (N, side, side) or (N, side, side, 3),
    memory-mapped (`tiled`: (N, H, W[, 3]) scans, H and W at least side)."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise AepipeError(f"{path}: not a readable .npy array ({error})") from None
    shape, array = array.shape, _images_layout(array)
    fits = array is not None and (
        min(array.shape[1:3]) >= side if tiled else array.shape[1:3] == (side, side)
    )
    if not fits or (array.ndim == 4) != (channels == 3) or len(array) == 0:
        height, width = ("H", "W") if tiled else (side, side)
        expected = (
            f"(N, {height}, {width}, 3) or (N, 3, {height}, {width})"
            if channels == 3
            else f"({height}, {width}), (N, {height}, {width}) or (N, 1, {height}, {width})"
        )
        expected += f", H and W at least {side}" if tiled else ""
        raise AepipeError(
            f"{path}: array of shape {shape}; the model takes {shape_name(channels, side)} "
            f"images: expected {expected}, N ≥ 1"
        )
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise AepipeError(
            f"{path}: an array of {array.dtype}; expected uint8 (0–255) or floats in [0, 1]"
        )
    return array


def _array_length(path: Path) -> int:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return 1
    return len(array) if array.ndim > 2 else 1


def _images_layout(array: np.ndarray) -> np.ndarray | None:
    """(N, H, W) for greyscale or (N, H, W, 3) for colour from the layouts an array may come in;
    None for none of them."""
    if array.ndim == 2:
        return array[None]
    # channels first
    if array.ndim == 4 and array.shape[1] in (1, 3) and array.shape[3] not in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim == 4 and array.shape[3] == 1:
        return array[..., 0]
    return array if array.ndim == 3 or (array.ndim == 4 and array.shape[3] == 3) else None
