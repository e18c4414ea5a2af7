"""Django management commands of tokenguard (``manage.py tokenguard``)."""
