"""The adapter registry: adapters, versions, the artifact store and PEFT folder validation.

This package knows nothing about HTTP; the gateway maps its exceptions to responses.
"""
