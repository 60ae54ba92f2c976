"""A student evaluated through its loss's head (SimKD): the loss, not the student's own
classifier, turns the student's features into logits at test time.

:class:`HeadedStudent` wraps the student model, its feature extractor and the head-owning
loss term (``owns_head``) into the module the engine evaluates: ``forward(x)`` runs the
student once and returns ``term.head_logits(features)``; ``eval()``/``train()`` reach the
student and the head. Training accuracy reads the logits the term computed in the step's own
forward (``term.last_head_logits``), so BatchNorm statistics are updated once per step, as in
the official code. The saved weights carry the head under ``HEAD_PREFIX``.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from losses.registry import HEAD_PREFIX


class HeadedStudent(nn.Module):
    """The student through its loss's head: what is evaluated and saved."""

    def __init__(self, model: nn.Module, extractor, term: nn.Module):
        super().__init__()
        self.model, self.term = model, term
        self._extractor = extractor

    @classmethod
    def for_member(cls, member) -> Optional["HeadedStudent"]:
        term = member.loss.head_owner
        return None if term is None else cls(member.model, member.extractor, term)

    def forward(self, images: Tensor) -> Tensor:
        return self.term.head_logits(self._extractor(images))

    def train_logits(self) -> Tensor:
        """The head's logits from the last training step's forward (detached)."""
        return self.term.last_head_logits

    def saved_state(self) -> dict[str, Tensor]:
        """The head's state under ``HEAD_PREFIX``, for the student's weights file."""
        return {HEAD_PREFIX + k: v.detach().cpu().contiguous()
                for k, v in self.term.state_dict().items()}
