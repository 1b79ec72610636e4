"""benchmarks/gpu/trace_summary.py on a real torch-profiler trace (CPU here) and on the arithmetic of GPU busy time
and CUDA API waits."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from benchmarks.gpu.trace_summary import load_events, main, summarize, union_us


def test_union_counts_overlaps_once():
    assert union_us([(0, 10), (5, 15), (20, 30), (21, 22)]) == 25
    assert union_us([]) == 0


def test_a_real_torch_trace_reads_as_host_work_and_no_gpu(tmp_path):
    x = torch.randn(256, 256)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(20):
            x = torch.tanh(x @ x)
    prof.export_chrome_trace(str(tmp_path / "worker.json"))
    (tmp_path / "gz").mkdir()
    with gzip.open(tmp_path / "gz" / "w.json.gz", "wb") as dst:  # vLLM writes .json.gz: both forms read the same
        dst.write((tmp_path / "worker.json").read_bytes())
    plain, zipped = summarize(load_events(tmp_path / "worker.json")), summarize(load_events(tmp_path / "gz"))
    assert plain == zipped
    assert plain["window_s"] > 0 and plain["gpu_busy"] == 0 and plain["cuda_api"] == [] and plain["waits"] == 0
    assert 0 < plain["host"][0]["busy"] <= 1


def test_gpu_busy_and_waits_over_the_window(tmp_path, capsys):
    events = [  # a 100 us window: kernels busy 40 us (two overlapping), the host waits 30 us in a synchronize
        {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "ts": 0, "dur": 100, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 0, "dur": 10, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 60, "dur": 30, "pid": 1, "tid": 1},
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 10, "dur": 30, "pid": 0, "tid": 7},
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 20, "dur": 30, "pid": 0, "tid": 7},
        {"ph": "i", "cat": "kernel", "name": "marker", "ts": 99},  # not a complete event: left out
    ]
    (tmp_path / "t.json").write_text(json.dumps({"traceEvents": events}))
    s = summarize(load_events(tmp_path / "t.json"))
    assert (s["window_s"], s["gpu_busy"], s["gpu_kernels"], s["waits"]) == (0.0001, 0.4, 2, 0.3)
    assert s["cuda_api"] == [{"name": "cudaStreamSynchronize", "share": 0.3, "calls": 1},
                             {"name": "cudaLaunchKernel", "share": 0.1, "calls": 1}]
    assert s["host"] == [{"thread": "1/1", "busy": 1.0}]
    assert main([str(tmp_path / "t.json"), "--json", str(tmp_path / "out" / "s.json")]) == 0
    assert json.loads((tmp_path / "out" / "s.json").read_text()) == s
    assert "GPU busy 40%" in capsys.readouterr().out


def test_an_empty_trace_says_why():
    with pytest.raises(SystemExit, match="start_profile"):
        summarize([])
