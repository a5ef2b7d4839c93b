"""`make generate`: spec -> validated document -> intermediate model -> generated code."""
