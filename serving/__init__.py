"""vLLM launch profiles and a process launcher for the domain (InternLM2) and agent (Qwen) LLM tiers."""
