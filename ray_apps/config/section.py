"""The base of every config section, and the error a config that cannot run raises."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..errors import StartError


class ConfigError(StartError, ValueError):
    """A config that cannot run; the message names the offending key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
