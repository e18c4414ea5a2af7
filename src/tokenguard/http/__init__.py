"""Framework-neutral HTTP pieces: cookies, request/response views, the /auth routes."""
