"""kdbench's data sets and loaders.

``load_splits(name, data_dir)`` reads a data set in its official on-disk format (decoded once
and cached as uint8 tensors) and holds a seeded validation split out of train;
``TensorLoader`` serves decoded splits batched on the run's device with seeded augmentation;
``imagenet_loader`` serves ImageNet's files through torchvision's DataLoader. Both yield
``Batch(images, labels, indices)``. See docs/data.md for the expected layouts.
"""

from benchmark.data.augment import Augment, crop_flip, draw_augmentation
from benchmark.data.factory import make_loader
from benchmark.data.imagenet_loader import ImageFolderLoader, imagenet_loader
from benchmark.data.loader import TensorLoader
from benchmark.data.registry import (DatasetSpec, dataset_info, list_datasets, load_splits,
                                     register_dataset)
from benchmark.data.types import ArrayData, Batch, DatasetInfo, FolderData, Splits

__all__ = [
    "ArrayData", "Augment", "Batch", "DatasetInfo", "DatasetSpec", "FolderData",
    "ImageFolderLoader", "Splits", "TensorLoader", "crop_flip", "dataset_info",
    "draw_augmentation", "imagenet_loader", "list_datasets", "load_splits", "make_loader",
    "register_dataset",
]
