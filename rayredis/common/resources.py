"""Resource arithmetic in fixed point (1/10000 units) so fractional CPUs and GPUs add up exactly."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

UNIT = 10_000


def to_fixed(x: float) -> int:
    return int(round(x * UNIT))


class ResourceSet:
    """An immutable-by-convention mapping of resource name to fixed-point quantity."""

    __slots__ = ("_q",)

    def __init__(self, quantities: Mapping[str, int] | None = None):
        self._q: dict[str, int] = {k: v for k, v in (quantities or {}).items() if v != 0}

    @classmethod
    def from_floats(cls, amounts: Mapping[str, float]) -> ResourceSet:
        return cls({k: to_fixed(v) for k, v in amounts.items()})

    def to_floats(self) -> dict[str, float]:
        return {k: v / UNIT for k, v in self._q.items()}

    def get(self, name: str) -> int:
        return self._q.get(name, 0)

    def names(self) -> Iterable[str]:
        return self._q.keys()

    def is_empty(self) -> bool:
        return not self._q

    def fits_in(self, available: ResourceSet) -> bool:
        """True if every quantity here is available."""
        return all(available._q.get(k, 0) >= v for k, v in self._q.items())

    def __add__(self, other: ResourceSet) -> ResourceSet:
        out = dict(self._q)
        for k, v in other._q.items():
            out[k] = out.get(k, 0) + v
        return ResourceSet(out)

    def __sub__(self, other: ResourceSet) -> ResourceSet:
        out = dict(self._q)
        for k, v in other._q.items():
            out[k] = out.get(k, 0) - v
        return ResourceSet(out)

    def only(self, names: Iterable[str]) -> ResourceSet:
        keep = set(names)
        return ResourceSet({k: v for k, v in self._q.items() if k in keep})

    def key(self) -> tuple[tuple[str, int], ...]:
        """A hashable shape, used to group tasks with identical demands."""
        return tuple(sorted(self._q.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ResourceSet) and self._q == other._q

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return f"ResourceSet({self.to_floats()})"


class GpuAllocator:
    """Hands out whole GPU indexes for tasks that ask for GPUs (fractions share index 0.. in order)."""

    def __init__(self, num_gpus: int):
        self.free = list(range(num_gpus))
        self.fractional: dict[int, int] = {}  # index -> fixed-point share in use

    def can_acquire(self, amount_fixed: int) -> bool:
        """A fraction needs one GPU with room left; n whole GPUs need n free indexes."""
        if amount_fixed <= 0:
            return True
        if amount_fixed < UNIT:
            return bool(self.free) or any(u + amount_fixed <= UNIT for u in self.fractional.values())
        return len(self.free) >= amount_fixed // UNIT

    def acquire(self, amount_fixed: int) -> list[int]:
        if amount_fixed <= 0:
            return []
        if amount_fixed < UNIT:
            for idx, used in sorted(self.fractional.items()):
                if used + amount_fixed <= UNIT:
                    self.fractional[idx] = used + amount_fixed
                    return [idx]
            if not self.free:
                return []
            idx = self.free.pop(0)
            self.fractional[idx] = amount_fixed
            return [idx]
        n = amount_fixed // UNIT
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def release(self, ids: list[int], amount_fixed: int) -> None:
        if amount_fixed < UNIT and ids:
            idx = ids[0]
            left = self.fractional.get(idx, 0) - amount_fixed
            if left <= 0:
                self.fractional.pop(idx, None)
                self.free.append(idx)
                self.free.sort()
            else:
                self.fractional[idx] = left
            return
        self.free.extend(ids)
        self.free.sort()


def bundle_resource_names(name: str, pg_hex: str, index: int) -> tuple[str, str]:
    """Ray's naming: the indexed bundle resource and the wildcard (any bundle) resource."""
    return f"{name}_group_{index}_{pg_hex}", f"{name}_group_{pg_hex}"


def original_resources(demand: dict[str, float]) -> dict[str, float]:
    """A demand with placement-group bundle names (``CPU_group_0_<pg>``, ``CPU_group_<pg>``) turned
    back into the names the user asked for, without the bundle marker and zero amounts, as Ray's
    ``get_assigned_resources()`` reports them."""
    out: dict[str, float] = {}
    indexed = {n.partition("_group_")[0] for n in demand if _is_indexed(n)}
    for name, amount in demand.items():
        head, sep, _ = name.partition("_group_")
        if sep:
            if head == "bundle" or (head in indexed and not _is_indexed(name)):
                continue  # the marker, or the wildcard twin of an indexed demand
            name = head
        if amount > 0:
            out[name] = out.get(name, 0.0) + float(amount)
    return out


def _is_indexed(name: str) -> bool:
    """``X_group_<index>_<pg>`` (not the wildcard ``X_group_<pg>``)."""
    _, sep, rest = name.partition("_group_")
    return bool(sep) and rest.partition("_")[0].isdigit() and "_" in rest
