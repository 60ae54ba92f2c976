"""Small models for the 8x8 grayscale ``digits`` data set; importing registers every name."""

from models.digits import cnn, resnet_tiny  # noqa: F401  (imported for registration)
