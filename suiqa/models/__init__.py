"""Offline model builders: tokenizer, tiny InternLM2 / Qwen2 checkpoints, InternLM2 <-> Llama converter."""
