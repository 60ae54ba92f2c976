"""Named training recipes: optimiser, learning-rate schedule, epochs, batch size, augmentation.

``crd-cifar`` is PROTOCOL §1 exactly (the recipe every published CIFAR-100 number used);
``imagenet`` is torchvision's standard ResNet recipe; ``digits`` is the embedded default's short
schedule. Epochs and batch size can be overridden: the milestones scale with the epochs and the
result is marked ``scaled`` so it is labelled as such everywhere (tags, tables).
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict

from benchmark.errors import user_error

# Students for which the published CIFAR recipe uses lr 0.01 instead of 0.05 (PROTOCOL §1).
SMALL_LR_STUDENTS = ("mobilenetv2", "shufflev1", "shufflev2")


class Augmentation(BaseModel):
    """Batched train-time augmentation: random crop with zero padding, horizontal flip."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    crop_padding: int = 4
    flip: bool = True


class Recipe(BaseModel):
    """Everything about how a network is trained, except the loss."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    epochs: int
    batch_size: int
    lr: float
    small_student_lr: Optional[float] = None
    lr_reference_batch: Optional[int] = None  # lr is per this many images (ImageNet: 256)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    augment: Optional[Augmentation] = Augmentation()
    scaled: bool = False

    def lr_for(self, student: str) -> float:
        """The initial learning rate for ``student`` (PROTOCOL §1's small-student rule)."""
        lr = self.lr
        if self.small_student_lr is not None and student in SMALL_LR_STUDENTS:
            lr = self.small_student_lr
        if self.lr_reference_batch:
            lr = lr * self.batch_size / self.lr_reference_batch
        return lr

    def scaled_to(self, epochs: int | None = None, batch_size: int | None = None) -> "Recipe":
        """A copy with other epochs / batch size; milestones keep their fraction of training."""
        if epochs is None and batch_size is None:
            return self
        changes: dict = {"scaled": True}
        if epochs is not None and epochs != self.epochs:
            if epochs < 1:
                raise user_error(f"--epochs must be at least 1, got {epochs}", "command line",
                                 "pass a positive number of epochs")
            changes["epochs"] = epochs
            changes["milestones"] = tuple(
                sorted({max(1, round(m * epochs / self.epochs)) for m in self.milestones
                        if round(m * epochs / self.epochs) < epochs}))
        if batch_size is not None and batch_size != self.batch_size:
            if batch_size < 1:
                raise user_error(f"--batch-size must be at least 1, got {batch_size}",
                                 "command line", "pass a positive batch size")
            changes["batch_size"] = batch_size
        if len(changes) == 1:
            return self
        return self.model_copy(update=changes)


RECIPES: dict[str, Recipe] = {
    "crd-cifar": Recipe(
        name="crd-cifar", epochs=240, batch_size=64, lr=0.05, small_student_lr=0.01,
        momentum=0.9, weight_decay=5e-4, milestones=(150, 180, 210), gamma=0.1,
        augment=Augmentation(crop_padding=4, flip=True),
    ),
    "crd-cifar-quick": Recipe(
        name="crd-cifar-quick", epochs=30, batch_size=64, lr=0.05, small_student_lr=0.01,
        momentum=0.9, weight_decay=5e-4, milestones=(19, 22, 26), gamma=0.1,
        augment=Augmentation(crop_padding=4, flip=True), scaled=True,
    ),
    "imagenet": Recipe(
        name="imagenet", epochs=100, batch_size=256, lr=0.1, lr_reference_batch=256,
        momentum=0.9, weight_decay=1e-4, milestones=(30, 60, 90), gamma=0.1,
        augment=None,  # RandomResizedCrop + flip happen in the ImageNet DataLoader
    ),
    "digits": Recipe(
        name="digits", epochs=20, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
        milestones=(12, 15, 18), gamma=0.1, augment=Augmentation(crop_padding=1, flip=False),
    ),
    # Students of the digits track (docs/digits-track.md): a 20% labelled part is 9 batches of
    # 32 an epoch, so they get more, smaller steps than the teacher's `digits` recipe.
    "digits-labelled": Recipe(
        name="digits-labelled", epochs=30, batch_size=32, lr=0.05, momentum=0.9,
        weight_decay=5e-4, milestones=(18, 23, 27), gamma=0.1,
        augment=Augmentation(crop_padding=1, flip=False),
    ),
}


def get_recipe(name: str) -> Recipe:
    """Look up a named recipe; unknown names raise a :class:`UserError` listing the known ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise user_error(f"unknown recipe '{name}'", "recipe",
                         f"use one of: {', '.join(sorted(RECIPES))}") from None
