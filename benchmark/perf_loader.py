"""Loader benchmark: the tensor loader against torchvision's DataLoader + PIL transforms.

Both serve the CIFAR training pipeline (random crop 32 with 4 zero pixels of padding,
horizontal flip, normalisation) over the same CIFAR-shaped random uint8 images. The reference
path is the one of the public CRD code: a Dataset of uint8 HWC arrays turned into PIL images,
``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize``, served
by a DataLoader with 0 and with 2 worker processes. Each path is warmed up, then timed over one
full epoch. A benchmark, not a test: ``kdbench perf loader`` prints it.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Iterable

import numpy as np
import torch

from benchmark.data.augment import Augment
from benchmark.data.loader import TensorLoader
from benchmark.data.types import ArrayData

CIFAR_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR_STD = (0.2675, 0.2565, 0.2761)
WARMUP_BATCHES = 5


class PILImageDataset(torch.utils.data.Dataset):
    """uint8 HWC images served as PIL images through a torchvision transform (the CRD way)."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform: Callable) -> None:
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index]), index


def random_cifar_like(num_images: int, seed: int = 0) -> ArrayData:
    """Random uint8 [N, 3, 32, 32] images with 100-class labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_images, 3, 32, 32), generator=generator,
                           dtype=torch.uint8)
    labels = torch.randint(0, 100, (num_images,), generator=generator)
    return ArrayData(images, labels)


def _time_epoch(batches: Callable[[], Iterable], count: int, device: torch.device) -> float:
    """Images per second over one full epoch of ``batches()`` after a short warm-up."""
    for number, _ in enumerate(batches()):
        if number + 1 >= WARMUP_BATCHES:
            break
    _synchronize(device)
    start = time.perf_counter()
    for batch in batches():
        images = batch[0].to(device, non_blocking=True)
        del images
    _synchronize(device)
    return count / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tensor_loader_rate(data: ArrayData, batch_size: int, device: torch.device) -> float:
    loader = TensorLoader(data, batch_size, shuffle=True, seed=0, augment=Augment(4, True),
                          mean=CIFAR_MEAN, std=CIFAR_STD, device=device)
    epochs = iter(range(10**9))

    def one_epoch():
        loader.set_epoch(next(epochs))
        return iter(loader)
    return _time_epoch(one_epoch, len(data), device)


def _dataloader_rate(data: ArrayData, batch_size: int, num_workers: int,
                     device: torch.device) -> float:
    from torchvision import transforms

    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
        transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)])
    dataset = PILImageDataset(data.images.permute(0, 2, 3, 1).numpy(), data.labels.numpy(),
                              transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         num_workers=num_workers,
                                         persistent_workers=num_workers > 0,
                                         pin_memory=device.type == "cuda")
    return _time_epoch(lambda: iter(loader), len(data), device)


def measure_loader_throughput(num_images: int = 10000, batch_size: int = 64,
                              device: str = "cpu", torch_threads: int = 1) -> dict:
    """Images/s of the tensor loader and of DataLoader + PIL (0 and 2 workers), and the ratios.

    The main process runs with ``torch_threads`` intra-op threads (default 1: one core per
    path, like the 0-worker DataLoader; this also keeps the figure stable on a busy machine).
    """
    target = torch.device(device)
    data = random_cifar_like(num_images)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        tensor_rate = _tensor_loader_rate(data, batch_size, target)
        workers0 = _dataloader_rate(data, batch_size, 0, target)
        workers2 = _dataloader_rate(data, batch_size, 2, target)
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "num_images": num_images, "batch_size": batch_size, "device": str(target),
        "torch_threads": torch_threads,
        "tensor_loader_images_per_s": tensor_rate,
        "dataloader_workers0_images_per_s": workers0,
        "dataloader_workers2_images_per_s": workers2,
        "speedup_vs_workers0": tensor_rate / workers0,
        "speedup_vs_workers2": tensor_rate / workers2,
    }


def format_table(result: dict) -> str:
    """The measurement as a small text table."""
    tensor_rate = result["tensor_loader_images_per_s"]
    rows = [("tensor loader", tensor_rate),
            ("DataLoader+PIL, 0 workers", result["dataloader_workers0_images_per_s"]),
            ("DataLoader+PIL, 2 workers", result["dataloader_workers2_images_per_s"])]
    lines = [f"{result['num_images']} CIFAR-shaped images, batch {result['batch_size']}, "
             f"device {result['device']}, {result['torch_threads']} torch threads",
             f"{'loader':<28}{'images/s':>12}{'tensor loader is':>20}"]
    for label, rate in rows:
        lines.append(f"{label:<28}{rate:>12,.0f}{tensor_rate / rate:>19.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    result = measure_loader_throughput(args.num_images, args.batch_size, args.device,
                                       args.torch_threads)
    print(format_table(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
