"""Example operator-added tool: live web search over HTTP (off by default).

Enable it through config, without touching the loop::

    extra_tools:
      - path: react_tier.web_search:WebSearchTool
        kwargs: {endpoint: "http://searxng.internal:8080/search", k: 3}

It speaks the SearXNG JSON API (``GET /search?q=...&format=json`` -> ``{"results": [{"title", "url",
"content"}]}``); results are citable with their URL as id and source ``web``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from react_tier.results import Citation
from react_tier.tools import Tool, ToolContext, ToolResult


class WebSearchTool(Tool):
    name = "web_search"
    description = "在互联网上检索最新的外部资料，返回带链接编号的摘要；知识库没有答案时使用。"
    parameters: ClassVar[dict[str, Any]] = {"type": "object",
                                            "properties": {"query": {"type": "string", "description": "检索词"}},
                                            "required": ["query"]}

    def __init__(self, endpoint: str, k: int = 3, timeout_s: float = 10.0, api_key: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        if not endpoint.startswith(("http://", "https://")):
            raise TypeError(f"endpoint must be an http(s) URL, got {endpoint!r}")
        self.endpoint, self.k, self.timeout_s = endpoint, k, timeout_s
        self.headers = dict(headers or {})
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        async with httpx.AsyncClient(timeout=self.timeout_s, headers=self.headers) as client:
            response = await client.get(self.endpoint, params={"q": args["query"], "format": "json"})
            response.raise_for_status()
            results = response.json().get("results", [])[: self.k]
        if not results:
            return ToolResult("网上没有找到相关资料。")
        lines = [f"[{r.get('url', '')}] {r.get('title', '')}：{r.get('content', '')}" for r in results]
        sources = [Citation(id=r.get("url", ""), source="web", title=r.get("title", "")) for r in results]
        return ToolResult("\n".join(lines), sources)
