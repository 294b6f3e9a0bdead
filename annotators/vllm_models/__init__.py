"""vLLM plugin: the method's own pre-labellers, SALMONN (audio) and Chat-UniVi (video), served by vLLM.

Installed into the vLLM environment (.venv-vllm) with the project (`pip install --no-deps -e .`,
scripts/setup), it is found through the entry point `vllm.general_plugins` -> `emer_models =
annotators.vllm_models:register`, which vLLM calls in every process before it reads a model's config.
This package imports only torch, transformers and vLLM (never the engine's Prefect side); the model
modules are named by string, so registering costs no import of them.
"""

from __future__ import annotations

ARCHITECTURES = {
    "SalmonnForConditionalGeneration": "annotators.vllm_models.salmonn:SalmonnForConditionalGeneration",
    "ChatUniViForConditionalGeneration": "annotators.vllm_models.chat_univi:ChatUniViForConditionalGeneration",
}


def register() -> None:
    """Register the config types with transformers' AutoConfig and the architectures with vLLM."""
    from transformers import AutoConfig
    from vllm import ModelRegistry

    from .configs import ChatUniViConfig, SalmonnConfig

    for config in (SalmonnConfig, ChatUniViConfig):
        AutoConfig.register(config.model_type, config, exist_ok=True)
    supported = set(ModelRegistry.get_supported_archs())
    for arch, target in ARCHITECTURES.items():
        if arch not in supported:
            ModelRegistry.register_model(arch, target)
