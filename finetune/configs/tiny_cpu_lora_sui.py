# XTuner 0.1.23 config: the CPU test variant of internlm2_chat_1_8b_qlora_sui_e3.py. Same data path, map fn and
# internlm2_chat template; no quantization (bitsandbytes 4-bit needs CUDA), fp32 with a plain OptimWrapper (no AMP
# on CPU), a few iterations, short packed sequences, rank 8. Used by `make test-xtuner` on the tiny random model.
#
# The base is the tiny InternLM2 model in **Llama layout** (`suiqa finetune convert --to llama`): XTuner loads it
# with AutoModelForCausalLM, natively, so no InternLM2 remote code is needed (transformers has no InternLM2 class).
# `suiqa finetune xtuner train CONFIG --model DIR --data FILE --max-iters N` renders a copy of this file into the
# work dir with those settings replaced (XTuner's copy-and-edit convention), so this file keeps literal defaults.
import torch
from datasets import load_dataset
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, IterTimerHook, LoggerHook, ParamSchedulerHook
from mmengine.optim import ConstantLR, OptimWrapper
from peft import LoraConfig
from torch.optim import AdamW
from transformers import AutoModelForCausalLM, AutoTokenizer
from xtuner.dataset import process_hf_dataset
from xtuner.dataset.collate_fns import default_collate_fn
from xtuner.dataset.map_fns import alpaca_map_fn, template_map_fn_factory
from xtuner.engine.hooks import DatasetInfoHook
from xtuner.engine.runner import TrainLoop
from xtuner.model import SupervisedFinetune
from xtuner.utils import PROMPT_TEMPLATE

#######################################################################
#                          PART 1  Settings                           #
#######################################################################
pretrained_model_name_or_path = "var/finetune/base-llama"
use_varlen_attn = False

sui_alpaca_path = "var/finetune/data/val.alpaca.json"
prompt_template = PROMPT_TEMPLATE.internlm2_chat
max_length = 256
pack_to_max_length = True

batch_size = 2
accumulative_counts = 1
dataloader_num_workers = 0
max_iters = 4
lr = 2e-4
max_norm = 1

#######################################################################
#                      PART 2  Model & Tokenizer                      #
#######################################################################
tokenizer = dict(
    type=AutoTokenizer.from_pretrained,
    pretrained_model_name_or_path=pretrained_model_name_or_path,
    trust_remote_code=False,
    padding_side="right",
)

model = dict(
    type=SupervisedFinetune,
    use_varlen_attn=use_varlen_attn,
    llm=dict(
        type=AutoModelForCausalLM.from_pretrained,
        pretrained_model_name_or_path=pretrained_model_name_or_path,
        trust_remote_code=False,
        torch_dtype=torch.float32,
    ),
    lora=dict(type=LoraConfig, r=8, lora_alpha=16, lora_dropout=0.05, bias="none", task_type="CAUSAL_LM"),
)

#######################################################################
#                      PART 3  Dataset & Dataloader                   #
#######################################################################
sui_alpaca = dict(
    type=process_hf_dataset,
    dataset=dict(type=load_dataset, path="json", data_files=dict(train=sui_alpaca_path)),
    tokenizer=tokenizer,
    max_length=max_length,
    dataset_map_fn=alpaca_map_fn,
    template_map_fn=dict(type=template_map_fn_factory, template=prompt_template),
    remove_unused_columns=True,
    shuffle_before_pack=True,
    pack_to_max_length=pack_to_max_length,
    use_varlen_attn=use_varlen_attn,
    map_num_proc=1,  # 2-core CI machine: no worker pool
)

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=dataloader_num_workers,
    dataset=sui_alpaca,
    sampler=dict(type=DefaultSampler, shuffle=True, seed=0),
    collate_fn=dict(type=default_collate_fn, use_varlen_attn=use_varlen_attn),
)

#######################################################################
#                    PART 4  Scheduler & Optimizer                    #
#######################################################################
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=lr, betas=(0.9, 0.999), weight_decay=0),
    clip_grad=dict(max_norm=max_norm, error_if_nonfinite=False),
    accumulative_counts=accumulative_counts,
)
param_scheduler = [dict(type=ConstantLR, factor=1.0, by_epoch=False, begin=0, end=max_iters)]
train_cfg = dict(type=TrainLoop, max_iters=max_iters)

#######################################################################
#                           PART 5  Runtime                           #
#######################################################################
custom_hooks = [dict(type=DatasetInfoHook, tokenizer=tokenizer)]
default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, log_metric_by_epoch=False, interval=1),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, by_epoch=False, interval=max_iters, max_keep_ckpts=1),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="gloo"))
visualizer = None
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
log_processor = dict(by_epoch=False)
