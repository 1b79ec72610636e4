"""The ReAct knowledge-fill tier: a pure async library (no Ray, no web server)."""
