"""The web chat: a Streamlit page on top of the pipeline's OpenAI-compatible API (nothing else).

``events`` folds the API's SSE stream into a view state (pure, unit-tested), ``client`` reads that stream with the
``openai`` client, ``app`` is the Streamlit page that renders the view state, ``cli`` starts it (`suiqa webui`).
"""
