"""Sequence classification for fine-tuning: any family's `encode` + a `ClassificationHead`."""

from flax import nnx

from pretrain_jax.batch import ModelBatch, ModelOutput
from pretrain_jax.models.heads import ClassificationHead
from pretrain_jax.models.spec import ModelSpec


class Classifier(nnx.Module):
    """backbone.encode(batch) (B, L, D) -> pooled ([CLS] = position 0, or the last real token)
    -> logits "cls" (B, num_classes) float32. Pass a pre-trained backbone to fine-tune it.

    For encoder_decoder the encoder's hidden states are pooled (batch keys `encoder_*`).
    """

    def __init__(self, backbone: nnx.Module, spec: ModelSpec, num_classes: int, *, pooling: str,
                 rngs: nnx.Rngs):
        self.backbone = backbone
        self.head = ClassificationHead(spec, num_classes, pooling=pooling, rngs=rngs)

    def __call__(self, batch: ModelBatch, *, rngs: nnx.Rngs | None = None) -> ModelOutput:
        hidden = self.backbone.encode(batch, rngs=rngs)
        return ModelOutput({"cls": self.head(hidden, batch[self.backbone.segment_key], rngs=rngs)}, {})
