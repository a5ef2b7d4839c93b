"""A spec-first implementation of the jambonz Calls REST API.

Kept free of imports: `python -m calls_api.codegen` checks for a no-op before it loads
anything heavy.
"""
