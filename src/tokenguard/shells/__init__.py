"""The edges: an ASGI scope or a WSGI environ in, one call into the request pipeline, the
decision written out. Nothing else lives here."""
