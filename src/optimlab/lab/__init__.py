"""The lab: the seeds' experiments run end to end (tasks -> runs -> store -> report)."""

from .tasks.base import Task

__all__ = ["Task"]
