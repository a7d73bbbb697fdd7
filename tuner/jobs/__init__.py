"""Fine-tuning jobs: records, the queue, and the worker that runs them."""
