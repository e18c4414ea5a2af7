"""Token cryptography: issuing and verifying JWTs and static-token digests.

Nothing here reads settings or does I/O beyond the optional remote JWKS fetch.
"""
