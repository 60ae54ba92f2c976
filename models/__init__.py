"""kdbench's model zoo: CRD-exact CIFAR models, torchvision models, digits models, feature taps.

Public API::

    create_model(name, num_classes=100, in_chans=3, **kw)   # model with kdbench_name/_taps
    list_models(pattern="*"), is_model(name), register_model(...)
    feature_taps(model), FeatureExtractor(model, taps), tap_info(model, input_size)
    load_published_checkpoint(name, path_or_state_dict, num_classes=100)

Importing this package registers every built-in architecture.
"""

from models.registry import (canonical_name, create_model, is_model, list_models, model_entry,
                             register_model)
from models.taps import (FeatureExtractor, TapInfo, bn_before_relu, classifier_of, feature_taps,
                         tap_info)
from models.checkpoints import load_published_checkpoint

from models import cifar, digits, torchvision_models  # noqa: F401,E402  (registration)

__all__ = [
    "FeatureExtractor",
    "TapInfo",
    "canonical_name",
    "create_model",
    "feature_taps",
    "is_model",
    "list_models",
    "load_published_checkpoint",
    "model_entry",
    "register_model",
    "tap_info",
]
