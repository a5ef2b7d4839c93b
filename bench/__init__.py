"""`make bench`: the service against bare Starlette, FastAPI and stock connexion."""
