import dagmpi


def fib(n):
    if n < 2:
        return n
    a = dagmpi.spawn(fib, n - 1)
    b = dagmpi.spawn(fib, n - 2)
    return dagmpi.fetch(a) + dagmpi.fetch(b)


def square(x):
    return x * x


def structured(d, lst, tup):
    return d["a"] + lst[0] + tup[1][0]


def returns_task(x):
    return dagmpi.spawn(square, x)  # a Task handle travels inside a result


if __name__ == "__main__":
    assert dagmpi.fetch(dagmpi.spawn(fib, 12)) == 144
    sq = [dagmpi.spawn(square, i) for i in range(20)]
    s = dagmpi.spawn(structured, {"a": sq[1]}, [sq[2]], (0, (sq[3],)))
    assert dagmpi.fetch(s) == 1 + 4 + 9
    got = sorted(dagmpi.fetch(t) for t in dagmpi.as_completed(sq))
    assert got == [i * i for i in range(20)]
    done, not_done = dagmpi.wait(sq, timeout=30)
    assert len(done) == 20 and not not_done
    inner = dagmpi.fetch(dagmpi.spawn(returns_task, 9))
    assert isinstance(inner, dagmpi.Task) and dagmpi.fetch(inner) == 81
    assert dagmpi.fetch(dagmpi.spawn(square, inner)) == 81 * 81
    assert dagmpi.fetch(sq[:3]) == [0, 1, 4]

    @dagmpi.task(name="sq", priority=3)
    def sq2(x):
        return x * x

    assert sq2(3) == 9 and dagmpi.fetch(sq2.spawn(5)) == 25
    print("NESTED-OK")
