"""The sans-IO request path: extraction, the verified-token cache, the decision, CSRF and the
rate limits. Nothing here writes a response or touches a framework."""

from .decide import Guard, Outcome, Refusal

__all__ = ["Guard", "Outcome", "Refusal"]
