"""``manage.py tokenguard``: see :mod:`.tokenguard`."""
