"""A tier served by several vLLM servers is scraped as one: counters, histogram sums and counts and gauges add up,
so the timeline's means are the tier's (issue 24's two agent engines on one GPU)."""

import httpx

from benchmarks import timeline

ENGINE = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="qwen-agent"}} {running}
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_sum{{engine="0",model_name="qwen-agent"}} {s}
vllm:e2e_request_latency_seconds_count{{engine="0",model_name="qwen-agent"}} {n}
"""


def test_a_list_of_endpoints_adds_up(monkeypatch):
    pages = {"http://a/metrics": ENGINE.format(running=10, s=30.0, n=10),
             "http://b/metrics": ENGINE.format(running=6, s=10.0, n=10)}

    def get(url, timeout):
        if url not in pages:
            raise httpx.ConnectError("down")
        return httpx.Response(200, text=pages[url])

    monkeypatch.setattr(timeline.httpx, "get", get)
    both = timeline.scrape(["http://a/metrics", "http://b/metrics"])
    assert timeline.total(both, "vllm:num_requests_running") == 16
    one = timeline.scrape("http://a/metrics")
    assert timeline.hist_mean({}, both, "vllm:e2e_request_latency_seconds") == {"count": 20, "mean": 2.0}
    assert timeline.hist_mean({}, one, "vllm:e2e_request_latency_seconds") == {"count": 10, "mean": 3.0}
    assert timeline.scrape(["http://a/metrics", "http://down/metrics"]) == one  # a server that does not answer adds 0
