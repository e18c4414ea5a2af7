"""Framework sugar: Flask's ``current_user`` and the ``require_*`` helpers."""
