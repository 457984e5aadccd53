"""LoRA on `lm_head` under TRL's fused LM head, as the Phi-3 Cookbook's LoRA and QLoRA rows train it.

TRL's `SFTTrainer` and `DPOTrainer` compute the log-probabilities from `get_output_embeddings().weight` directly, in
tiles (`trl.trainer.utils.add_fused_lm_head`), so the forward of a PEFT layer on `lm_head` never runs and TRL refuses
such an adapter. Here `get_output_embeddings()` hands the fused head the adapter-merged weight `W + scaling * B @ A`,
a differentiable tensor: the log-probabilities are the adapted layer's own (its dropout is 0, checked in
`lora_config`), and A and B receive their gradients through it. Generation and evaluation call the layer as usual.
"""

import types

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import Tensor, nn
from transformers import PreTrainedModel


class MergedLoRAHead:
    """The weight and bias an adapted `lm_head` applies, for code that reads them instead of calling the layer.

    Args:
        layer (`peft.tuners.lora.Linear`): the LoRA layer PEFT put in place of `lm_head`.
    """

    def __init__(self, layer: BaseTunerLayer):
        self.layer = layer

    @property
    def weight(self) -> Tensor:
        weight = self.layer.get_base_layer().weight
        if self.layer.disable_adapters or self.layer.merged:  # DPO's reference pass, or weights merged already
            return weight
        for adapter in self.layer.active_adapters:
            if adapter in self.layer.lora_A:
                weight = weight + self.layer.get_delta_weight(adapter).to(weight.dtype)
        return weight

    @property
    def bias(self) -> Tensor | None:
        return self.layer.get_base_layer().bias


def expose_merged_lora_head(model: PreTrainedModel) -> None:
    """Makes `model.get_output_embeddings()` return a [`MergedLoRAHead`] once PEFT has adapted `lm_head`.

    Call it before the trainer wraps the model with PEFT; until then, and for a head without adapter, the method
    returns the module as before.

    Args:
        model ([`~transformers.PreTrainedModel`]): the model about to be trained.
    """
    module_output_embeddings = model.get_output_embeddings

    def get_output_embeddings(self) -> nn.Module | MergedLoRAHead:
        head = module_output_embeddings()
        return MergedLoRAHead(head) if isinstance(head, BaseTunerLayer) else head

    model.get_output_embeddings = types.MethodType(get_output_embeddings, model)
