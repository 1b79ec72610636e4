"""Typed settings of the PEFT LoRA path (env prefix ``SUIQA_FINETUNE_``, optional YAML, CLI flags override)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from finetune.lora import LoraHyper
from suiqa.settings import TierSettings


class LoraSettings(TierSettings):
    """Hyper-parameters of `suiqa finetune lora` (defaults: a quick CPU run on the tiny model)."""

    model_config = SettingsConfigDict(env_prefix="SUIQA_FINETUNE_", extra="forbid")

    r: int = Field(8, ge=1, description="LoRA rank (vLLM serves adapters up to the profile's max_lora_rank).")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout.")
    lr: float = Field(2e-4, gt=0, description="AdamW learning rate.")
    steps: int = Field(20, ge=1, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Conversations per step.")
    max_length: int = Field(256, ge=16, description="Tokens per conversation (longer ones are cut).")
    seed: int = Field(0, description="Seed for LoRA init and batch order.")
    quantize: Literal["none", "4bit"] = Field("none", description="4bit = QLoRA (CUDA + bitsandbytes only).")

    def hyper(self) -> LoraHyper:
        return LoraHyper(**self.model_dump())
