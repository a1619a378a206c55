"""Quickstart: tasks, objects and actors on a local rayredis cluster (runs unchanged on Ray)."""

from __future__ import annotations

import time

import numpy as np

import rayredis as ray


@ray.remote
def square(x: int) -> int:
    return x * x


@ray.remote
def total(*values: int) -> int:
    return sum(values)


@ray.remote
class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, k: int) -> int:
        self.n += k
        return self.n


@ray.remote
def column_sums(matrix: np.ndarray) -> np.ndarray:
    return matrix.sum(axis=0)


def main() -> None:
    start = time.time()
    ray.init(num_cpus=2)
    print(f"cluster up in {time.time() - start:.2f} s: {ray.cluster_resources()}")

    squares = [square.remote(i) for i in range(100)]
    print("sum of squares 0..99 =", ray.get(total.remote(*squares)))

    counter = Counter.remote()
    for k in range(10):
        counter.add.remote(k)
    print("counter =", ray.get(counter.add.remote(0)))

    matrix = np.ones((1000, 1000))
    ref = ray.put(matrix)  # stored once in shared memory, read by tasks without copying
    print("column sums[:3] =", ray.get(column_sums.remote(ref))[:3])

    @ray.remote
    def fails() -> None:
        raise ValueError("errors keep their type across processes")

    try:
        ray.get(fails.remote())
    except ValueError as e:
        print("caught:", str(e).splitlines()[0])

    ray.shutdown()
    print(f"done in {time.time() - start:.2f} s")


if __name__ == "__main__":
    main()
