"""Uploaded training files (OpenAI's Files API, ``purpose="fine-tune"``): validation, storage,
and the rows a fine-tuning job trains on."""

from tuner.files.crud import (
    content_path,
    create_file,
    delete_file,
    get_file,
    list_files,
    read_training_rows,
)
from tuner.files.models import (
    FILE_ID_PATTERN,
    FilePurpose,
    TuningFile,
    TuningFileCreate,
    TuningFilePublic,
)
from tuner.files.validation import FileLimits, check_file, read_examples

__all__ = [
    "FILE_ID_PATTERN",
    "FileLimits",
    "FilePurpose",
    "TuningFile",
    "TuningFileCreate",
    "TuningFilePublic",
    "check_file",
    "content_path",
    "create_file",
    "delete_file",
    "get_file",
    "list_files",
    "read_examples",
    "read_training_rows",
]
