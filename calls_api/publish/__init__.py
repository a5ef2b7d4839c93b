"""Publishing the spec to consumers: the bundle, the changelog and the breaking-change gate."""
