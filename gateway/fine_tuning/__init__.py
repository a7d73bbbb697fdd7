"""OpenAI's fine-tuning API and the admin's tune endpoint, over the tuner's jobs."""
