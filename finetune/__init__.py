"""Fine-tuning: instruction data from the poetry corpus, XTuner QLoRA configs, PEFT LoRA, merge."""
