"""The engine behind the gateway: an abstract client, vLLM's implementation, admission control."""
