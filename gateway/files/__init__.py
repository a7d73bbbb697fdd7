"""OpenAI's Files API for fine-tuning: upload, list, retrieve, download and delete training files."""
