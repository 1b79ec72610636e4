"""Ray Serve adapter: hosts react_tier behind an OpenAI-compatible API."""
