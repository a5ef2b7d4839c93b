"""Hand-written handlers: one module per tag of the spec, plus security (API keys)."""
