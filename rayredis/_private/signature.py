"""Call-site argument checks: a function's parameters, kept in a picklable form, bound as Ray does."""

from __future__ import annotations

import inspect
from typing import Any

#: (name, kind as int, has a default) per parameter; defaults themselves are not kept (they may not
#: pickle), a placeholder stands for them.
ParamSpec = list[tuple[str, int, bool]]

_KINDS = [
    inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.VAR_POSITIONAL,
    inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD]
_DEFAULT = object()


def describe(fn: Any, skip_first: bool = False) -> ParamSpec | None:
    """The parameters of ``fn`` (None when they cannot be read: builtins, C functions)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if skip_first and params and params[0].kind in (inspect.Parameter.POSITIONAL_ONLY,
                                                     inspect.Parameter.POSITIONAL_OR_KEYWORD):
        params = params[1:]
    return [(p.name, _KINDS.index(p.kind), p.default is not inspect.Parameter.empty) for p in params]


def rebuild(spec: ParamSpec) -> inspect.Signature:
    return inspect.Signature([
        inspect.Parameter(name, _KINDS[kind], default=_DEFAULT if has_default else inspect.Parameter.empty)
        for name, kind, has_default in spec])


def check(sig: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise ``TypeError`` (Python's message, as Ray raises it) unless the call binds."""
    if sig is not None:
        sig.bind(*args, **kwargs)
