"""What chat and text completions share: sampling parameters, execution, streaming and logging."""
