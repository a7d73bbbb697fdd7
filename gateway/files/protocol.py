"""OpenAI's file objects as ``/v1/files`` answers them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tuner.files import TuningFilePublic


class FileObject(TuningFilePublic):
    """OpenAI's ``file`` object."""


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True
