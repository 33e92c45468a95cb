"""Base class for every config model: strict, documented, assignment-validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Pydantic base: unknown keys are errors (``extra="forbid"``), assignments are validated.

    Every field of a subclass must carry ``Field(description=...)``; a test walks the schema to check it.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
