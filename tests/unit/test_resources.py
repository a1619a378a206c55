"""ResourceSet fixed-point arithmetic and the GPU index allocator."""

from __future__ import annotations

import pytest

from rayredis.common.resources import UNIT, GpuAllocator, ResourceSet, to_fixed


def rs(**amounts: float) -> ResourceSet:
    return ResourceSet.from_floats(amounts)


# ---- ResourceSet ---------------------------------------------------------------------------------


def test_to_fixed_rounds_to_ten_thousandths() -> None:
    assert to_fixed(1) == UNIT
    assert to_fixed(0.1) == 1_000
    assert to_fixed(0.00004) == 0
    assert to_fixed(0.00005) in (0, 1)  # banker's rounding is fine, but never more than one unit
    assert to_fixed(2.5) == 25_000


def test_fractional_cpus_add_up_exactly() -> None:
    # 0.1 + 0.2 != 0.3 in floating point, but must be equal in the scheduler's arithmetic.
    assert 0.1 + 0.2 != 0.3
    total = rs(CPU=0.1) + rs(CPU=0.2)
    assert total == rs(CPU=0.3)
    assert total.get("CPU") == 3_000
    assert rs(CPU=0.3).fits_in(total)
    assert total.fits_in(rs(CPU=0.3))


def test_ten_tenths_make_one_cpu() -> None:
    acc = ResourceSet()
    for _ in range(10):
        acc = acc + rs(CPU=0.1)
    assert acc == rs(CPU=1)
    assert acc.to_floats() == {"CPU": 1.0}

    left = rs(CPU=1)
    for _ in range(10):
        left = left - rs(CPU=0.1)
    assert left.is_empty()
    assert left == ResourceSet()


def test_zero_quantities_are_dropped() -> None:
    r = rs(CPU=1, GPU=0, custom=0.0)
    assert list(r.names()) == ["CPU"]
    assert (rs(CPU=1) - rs(CPU=1)).is_empty()
    assert ResourceSet({"a": 0}).is_empty()
    assert ResourceSet(None).is_empty()


def test_fits_in() -> None:
    avail = rs(CPU=2, GPU=1, mem=100)
    assert rs(CPU=2).fits_in(avail)
    assert rs(CPU=1, GPU=1).fits_in(avail)
    assert not rs(CPU=2.0001).fits_in(avail)
    assert not rs(custom=1).fits_in(avail)  # missing name counts as zero
    assert ResourceSet().fits_in(ResourceSet())
    assert ResourceSet().fits_in(avail)


def test_subtraction_can_go_negative_and_names_disjoint() -> None:
    r = rs(CPU=1) - rs(CPU=2, GPU=1)
    assert r.get("CPU") == -UNIT
    assert r.get("GPU") == -UNIT
    assert not rs(CPU=0.5).fits_in(r)
    assert (r + rs(CPU=2, GPU=1)) == rs(CPU=1)


def test_arithmetic_does_not_mutate_operands() -> None:
    a = rs(CPU=1)
    b = rs(CPU=2, GPU=1)
    _ = a + b
    _ = a - b
    assert a == rs(CPU=1)
    assert b == rs(CPU=2, GPU=1)


def test_only_key_hash_and_eq() -> None:
    r = rs(CPU=1, GPU=2, x=3)
    assert r.only(["CPU", "x", "absent"]) == rs(CPU=1, x=3)
    assert r.key() == (("CPU", UNIT), ("GPU", 2 * UNIT), ("x", 3 * UNIT))
    # Insertion order does not matter for key/eq/hash.
    r2 = ResourceSet({"x": 3 * UNIT, "GPU": 2 * UNIT, "CPU": UNIT})
    assert r == r2
    assert hash(r) == hash(r2)
    assert len({r, r2}) == 1
    assert r != {"CPU": UNIT}
    assert "CPU" in repr(r)


def test_to_floats_roundtrip() -> None:
    amounts = {"CPU": 0.25, "GPU": 1.5, "custom": 3.0}
    assert ResourceSet.from_floats(amounts).to_floats() == amounts


# ---- GpuAllocator --------------------------------------------------------------------------------


def test_gpu_whole_acquire_and_release() -> None:
    g = GpuAllocator(4)
    assert g.acquire(2 * UNIT) == [0, 1]
    assert g.acquire(UNIT) == [2]
    assert g.free == [3]
    g.release([0, 1], 2 * UNIT)
    assert g.free == [0, 1, 3]
    assert g.acquire(3 * UNIT) == [0, 1, 3]
    assert g.free == []
    g.release([2], UNIT)
    assert g.free == [2]


def test_gpu_zero_demand_gets_no_ids() -> None:
    g = GpuAllocator(2)
    assert g.acquire(0) == []
    assert g.acquire(-5) == []
    assert g.free == [0, 1]


def test_gpu_fractions_share_one_index() -> None:
    g = GpuAllocator(2)
    half = UNIT // 2
    assert g.acquire(half) == [0]
    assert g.acquire(half) == [0]  # two halves fit on GPU 0
    assert g.free == [1]
    assert g.acquire(half) == [1]  # third half goes to the next GPU
    assert g.free == []
    assert g.fractional == {0: UNIT, 1: half}
    # Releasing one half of GPU 0 keeps it in fractional use.
    g.release([0], half)
    assert g.fractional[0] == half
    assert 0 not in g.free
    # Releasing the last share returns the index to the free list, sorted.
    g.release([0], half)
    assert 0 not in g.fractional
    assert g.free == [0]
    g.release([1], half)
    assert g.free == [0, 1]
    assert g.fractional == {}


def test_gpu_fraction_packs_into_lowest_index_with_room() -> None:
    g = GpuAllocator(3)
    assert g.acquire(to_fixed(0.6)) == [0]
    assert g.acquire(to_fixed(0.6)) == [1]  # 0.6 + 0.6 > 1: new index
    assert g.acquire(to_fixed(0.4)) == [0]  # fills GPU 0 exactly
    assert g.acquire(to_fixed(0.3)) == [1]
    assert g.fractional == {0: UNIT, 1: to_fixed(0.9)}
    assert g.free == [2]


def test_gpu_tenth_fractions_fill_exactly() -> None:
    g = GpuAllocator(1)
    for _ in range(10):
        assert g.acquire(to_fixed(0.1)) == [0]
    assert g.fractional == {0: UNIT}
    assert g.acquire(to_fixed(0.1)) == []  # nothing left anywhere


@pytest.mark.parametrize("n", [0, 1, 3])
def test_gpu_exhausted_fraction_returns_empty(n: int) -> None:
    g = GpuAllocator(n)
    for _ in range(n):
        assert g.acquire(UNIT) != []
    assert g.acquire(UNIT // 4) == []


def test_original_resources_undo_bundle_names() -> None:
    from rayredis.common.resources import original_resources

    pg = "ab12cd34"
    indexed = {f"CPU_group_0_{pg}": 0.5, f"CPU_group_{pg}": 0.5, f"bundle_group_0_{pg}": 0.001,
               f"bundle_group_{pg}": 0.001, f"c_group_0_{pg}": 1.0, f"c_group_{pg}": 1.0}
    assert original_resources(indexed) == {"CPU": 0.5, "c": 1.0}  # the wildcard twins are not counted twice
    assert original_resources({f"CPU_group_{pg}": 1.0, f"bundle_group_{pg}": 0.001}) == {"CPU": 1.0}
    assert original_resources({"CPU": 1.0, "GPU": 0.0, "memory": 100.0}) == {"CPU": 1.0, "memory": 100.0}
