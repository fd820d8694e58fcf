"""The event contract shared with producers: pydantic models and exported JSON Schema."""
