"""The OpenAI-compatible gateway: protocol models, auth, routing, the engine client and the traffic log."""
