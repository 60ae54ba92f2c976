"""Optuna studies that tune each loss's weight (and optionally its hyperparameters) on a
validation split held out of the training set."""
