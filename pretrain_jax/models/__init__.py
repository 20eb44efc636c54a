"""Model families. `build_model(config.model, vocab_size, rngs=...)` returns an `nnx.Module` called as
`model(batch, *, rngs=None) -> ModelOutput` (batch.py: logits per loss head, and the targets of heads
only the model can score); docs/contracts.md lists the batch keys.

    with nnx.use_eager_sharding(False):
        model = build_model(config.model, vocab_size=8192, rngs=nnx.Rngs(params=0))
    out = model(batch)                                                 # deterministic (no dropout)
    out = model(batch, rngs=nnx.Rngs(dropout=key, sample=sample_key))  # training

family (config.model)          module                      output logits (and targets)
encoder                        encoder.Encoder             mlm (B, P, V); nsp (B, 2) if the batch has nsp targets
encoder + model.electra=True   electra.Electra             mlm, rtd (B, L, 2), and rtd's targets
decoder                        decoder.Decoder             lm (B, L, V)
encoder_decoder                encoder_decoder.EncoderDecoder  lm (B, Ld, V)
two_stream                     two_stream.TwoStream        plm (B, Np, V)

Every family also has `encode(batch, *, rngs=None) -> (B, L, D)` hidden states, which
`build_classifier` (fine-tuning, logits cls (B, n)) pools.
"""

import math

import jax
import ml_collections
from flax import nnx

from pretrain_jax.models.classifier import Classifier
from pretrain_jax.models.decoder import Decoder
from pretrain_jax.models.electra import Electra
from pretrain_jax.models.encoder import Encoder
from pretrain_jax.models.encoder_decoder import EncoderDecoder
from pretrain_jax.models.spec import ModelSpec, spec_from_config
from pretrain_jax.models.two_stream import TwoStream

_FAMILIES = {
    "encoder": Encoder,
    "decoder": Decoder,
    "encoder_decoder": EncoderDecoder,
    "two_stream": TwoStream,
}


def build_from_spec(spec: ModelSpec, *, rngs: nnx.Rngs) -> nnx.Module:
    module = Electra if spec.electra else _FAMILIES[spec.family]
    return module(spec, rngs=rngs)


def build_model(model_config: ml_collections.ConfigDict, vocab_size: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """Validates `config.model` and builds the family's module. vocab_size: the full embedding size."""
    return build_from_spec(spec_from_config(model_config, vocab_size), rngs=rngs)


def build_classifier(model_config: ml_collections.ConfigDict, vocab_size: int, num_classes: int, *,
                     pooling: str = "cls", rngs: nnx.Rngs, backbone: nnx.Module | None = None) -> Classifier:
    """A fine-tuning classifier (logits "cls" (B, num_classes)) on a fresh or given backbone."""
    spec = spec_from_config(model_config, vocab_size)
    backbone = build_from_spec(spec, rngs=rngs) if backbone is None else backbone
    return Classifier(backbone, spec, num_classes, pooling=pooling, rngs=rngs)


def count_params(model_config: ml_collections.ConfigDict, vocab_size: int) -> int:
    """Parameter count of the model `build_model` would build, from shapes only (allocates nothing)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: build_model(model_config, vocab_size, rngs=nnx.Rngs(0)))
    return param_count(abstract)


def param_count(model: nnx.Module) -> int:
    """Number of scalar parameters in a (possibly abstract) model."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))


__all__ = [
    "Classifier",
    "ModelSpec",
    "build_classifier",
    "build_from_spec",
    "build_model",
    "count_params",
    "param_count",
    "spec_from_config",
]
