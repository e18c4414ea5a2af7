"""Token cryptography: issuing and verifying JWTs and static-token digests.

Nothing here reads settings or does I/O beyond the optional remote JWKS fetch: what issuing
and verifying need comes in a :class:`~tokenguard.jose.policy.TokenPolicy`. Modules depend
in one direction, ``compact`` <- ``keys`` <- ``policy`` <- ``tokens``.
"""
