"""The comparison apps. Each serves createCall and getCall with the service's own auth check,
generated models, handlers and store, so only the web layer differs from the service."""
