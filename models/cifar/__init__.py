"""The CRD benchmark's CIFAR model zoo (one file per family); importing registers every name."""

from models.cifar import (  # noqa: F401  (imported for registration)
    mobilenetv2,
    resnet,
    resnet50,
    shufflenetv1,
    shufflenetv2,
    vgg,
    wrn,
)
