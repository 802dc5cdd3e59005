"""The lab: the seeds' experiments run end to end (tasks -> runs -> store -> report)."""
