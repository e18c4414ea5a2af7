"""Changes Django makes to its own users revoke their access tokens, as tokenguard's do.

The admin, ``manage.py changepassword``, ``user.groups.add(...)``, ``user.is_active = False;
user.save()``: with ``"tokenguard.integrations.django"`` in ``INSTALLED_APPS`` and a guard whose
user store is a :class:`~tokenguard.integrations.django.users.DjangoUserStore` over the saved
model, each change of a user is read as tokenguard reads users (the role from the groups,
admin/app access from ``is_superuser``/``is_staff``, the status from ``is_active``, the
password) before and after, and the one rule of
:func:`~tokenguard.guard.revocation.revoking_change` decides: a change of privilege voids the
user's access tokens issued until then, in every process (:meth:`AuthService.user_changed
<tokenguard.auth.service.AuthService.user_changed>`, which records a ``user_change`` event in
the audit trail too, without a client: a signal has no request at hand). Each client refreshes
into what its user now is.

What sends no signal is not seen: ``QuerySet.update()``, raw SQL, another program writing
the table. Call ``get_guard().revoke_user(str(pk))`` after those.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from ...app import TokenGuard
from ...flow import run_sync
from ...stores.base import User
from .conf import get_guard
from .users import DjangoUserStore

__all__ = ["connect"]

#: Where the user as it was waits between ``pre_*`` and ``post_*`` (on the instance).
_BEFORE = "_tokenguard_before"
#: A save of these fields alone changes nothing a token rests on (Django's own login).
_HARMLESS = frozenset({"last_login"})


def connect() -> None:
    """Listen to the saves, group changes and deletions of the user model (idempotent)."""
    model = get_user_model()
    pre_save.connect(_before_save, sender=model, dispatch_uid="tokenguard.revoke.pre_save")
    post_save.connect(_after_save, sender=model, dispatch_uid="tokenguard.revoke.post_save")
    post_delete.connect(_deleted, sender=model, dispatch_uid="tokenguard.revoke.post_delete")
    through = getattr(getattr(model, "groups", None), "through", None)
    if through is not None:
        m2m_changed.connect(_groups, sender=through, dispatch_uid="tokenguard.revoke.groups")


def _guarded(model: type[Any]) -> tuple[TokenGuard, DjangoUserStore] | None:
    """The guard, when its users are this model's (else tokenguard has nothing to say)."""
    try:
        guard = get_guard()
    except ImproperlyConfigured:
        return None  # tokenguard is not configured in this process: nothing to revoke
    users = guard.users
    if not isinstance(users, DjangoUserStore) or not issubclass(model, users.model):
        return None
    return guard, users


def _revoke(guard: TokenGuard, before: User, after: User | None) -> None:
    # The one place every change of a user goes through: it decides, revokes and audits.
    run_sync(guard.auth.user_changed(before, after))


def _revoke_unseen(guard: TokenGuard, users: DjangoUserStore, pk: Any) -> None:
    """Revoke a user whose role may have moved, unseen before the change; audited as a
    change of role (the provider read now: it is no field a group change moves)."""
    user_id = str(pk)
    guard.revoke_user(user_id)
    now = users.get_by_id(user_id)
    run_sync(
        guard.auth.audit.emit(
            "user_change", "success", user_id=user_id,
            provider=now.provider if now is not None else None, reason="role",
        )
    )


def _before_save(sender: type[Any], instance: Any, raw: bool = False, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if raw or instance.pk is None or (update_fields and set(update_fields) <= _HARMLESS):
        return
    found = _guarded(sender)
    if found is None:
        return
    _, users = found
    stored = sender._default_manager.db_manager(kwargs.get("using")).filter(pk=instance.pk)
    old = stored.first()
    if old is not None:
        instance.__dict__[_BEFORE] = users.as_user(old)


def _after_save(sender: type[Any], instance: Any, created: bool = False, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if before is None or created:
        return
    found = _guarded(sender)
    if found is not None:
        guard, users = found
        _revoke(guard, before, users.as_user(instance))


def _deleted(sender: type[Any], instance: Any, **kwargs: Any) -> None:
    found = _guarded(sender)
    if found is not None and instance.pk is not None:
        # Still readable here (the key is cleared after the signals): the user as it was.
        _revoke(found[0], found[1].as_user(instance), None)


def _groups(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    """A group joined or left changes the role (``DjangoUserStore(roles=...)``)."""
    model = get_user_model()
    if reverse:
        # group.user_set.add(...): the users are named by primary key; their role before
        # the change is not at hand afterwards, so any of them whose role may move is revoked.
        if action in ("post_add", "post_remove") and pk_set:
            found = _guarded(model)
            if found is not None and found[1].roles:
                for pk in pk_set:
                    _revoke_unseen(found[0], found[1], pk)
        return
    if action in ("pre_add", "pre_remove", "pre_clear"):
        found = _guarded(type(instance))
        if found is not None and found[1].roles and instance.pk is not None:
            instance.__dict__[_BEFORE] = found[1].as_user(instance)
    elif action in ("post_add", "post_remove", "post_clear"):
        before = instance.__dict__.pop(_BEFORE, None)
        found = _guarded(type(instance))
        if before is not None and found is not None:
            # The prefetched groups (if any) are stale now: read them again.
            getattr(instance, "_prefetched_objects_cache", {}).pop("groups", None)
            _revoke(found[0], before, found[1].as_user(instance))
