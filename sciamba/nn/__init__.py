"""Mamba and comparison backbones in PyTorch.

Every backbone maps ``(batch, L, d_model)`` to ``(batch, L, d_model)`` through
``forward(x, gaps=None)`` and says whether it models irregular time
(``supports_gaps``).

Mamba
-----
MambaBlock       -- the selective SSM block of Gu & Dao (2023)
Mamba            -- pre-norm residual stack; streaming ``step``, chunked ``forward``,
                    irregular time (``gaps``), bidirectional option
MambaState       -- its recurrent state (O(1) in the sequence length)
GraphedStep      -- Mamba.step replayed from a CUDA graph (streaming without host overhead)
GraphedTrainStep -- a training step of any model replayed from a CUDA graph (no host overhead)
RMSNorm          -- root-mean-square normalization

Comparison backbones
--------------------
S4D                 -- diagonal linear time-invariant SSM (FFT convolution)
TransformerEncoder  -- pre-norm Transformer on ``scaled_dot_product_attention``, KV cache
LSTM                -- stacked LSTM
make_backbone       -- one factory for "mamba", "s4d", "transformer", "lstm"

Tools
-----
describe                -- parameters and FLOPs per token, as a table
make_selective_copying  -- the selective copying task (Gu & Dao 2023, sec. 4.1)
"""

from ._describe import ModelDescription, describe
from ._factory import BACKBONES, make_backbone
from ._graphed_step import GraphedStep
from ._graphed_train import GraphedTrainStep
from ._lstm import LSTM
from ._mamba import Mamba, MambaBlock, MambaBlockState, MambaState
from ._norm import RMSNorm
from ._s4d import S4D
from ._selective_copying import make_selective_copying
from ._transformer import TransformerEncoder, TransformerState

__all__ = [
    "BACKBONES",
    "GraphedStep",
    "GraphedTrainStep",
    "LSTM",
    "Mamba",
    "MambaBlock",
    "MambaBlockState",
    "MambaState",
    "ModelDescription",
    "RMSNorm",
    "S4D",
    "TransformerEncoder",
    "TransformerState",
    "describe",
    "make_backbone",
    "make_selective_copying",
]
