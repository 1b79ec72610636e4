"""Settings of the web chat (env prefix ``SUIQA_WEBUI_``): the defaults of the sidebar and of `suiqa webui`.

`suiqa webui` fills ``endpoint`` from the running stack (``$SUIQA_HOME/run/stack.json``) and hands the page its
settings as ``SUIQA_WEBUI_*`` environment variables; the sidebar then overrides them per browser session.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from suiqa.settings import TierSettings


class WebUISettings(TierSettings):
    model_config = SettingsConfigDict(env_prefix="SUIQA_WEBUI_", env_nested_delimiter="__", extra="forbid")

    endpoint: str = Field("http://127.0.0.1:8080/v1", description="The pipeline API's OpenAI base URL.")
    api_key: SecretStr = Field(SecretStr(""), description="Sent as `Authorization: Bearer`; blank = no key.")
    model: str = Field("", description="The `model` to ask; blank = the first card of GET /v1/models.")
    system_prompt: str = Field("", description="Optional system message sent before the conversation.")
    max_steps: int = Field(3, ge=1, le=20, description="Agent steps (request extension `sui_max_steps`).")
    max_tokens: int = Field(256, ge=1, le=8192, description="OpenAI `max_tokens` of the answer.")
    temperature: float = Field(0.7, ge=0, le=2)
    request_timeout_s: float = Field(150, gt=0, description="Read timeout of one request (then: 'too slow').")
    connect_timeout_s: float = Field(5, gt=0, description="Connect timeout (then: 'API down').")
    slow_after_s: float = Field(20, gt=0, description="Warn that the API is slow when no answer token by then.")
    host: str = Field("127.0.0.1", description="Where `suiqa webui` binds Streamlit.")
    port: int = Field(8501, ge=1, le=65535, description="Streamlit's port.")
