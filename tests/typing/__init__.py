"""Files here are type-checked by mypy (make test), never run: they pin the public types."""
