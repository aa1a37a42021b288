from orchestrator.engine.ledger import KVLedger, common_prefix_len


def test_common_prefix_len():
    assert common_prefix_len([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_len([1, 2], [1, 2, 3]) == 2
    assert common_prefix_len([], [1]) == 0


def test_shared_prefix_cells_are_counted_once():
    kv = KVLedger(100)
    kv.open(0)
    kv.append(0, [1, 2, 3, 4])
    kv.open(1)
    kv.copy_prefix(0, 1, 3)
    kv.append(1, [9])
    assert kv.tokens(1) == [1, 2, 3, 9]
    assert kv.used == 5  # 4 cells of slot 0 + 1 new cell of slot 1
    assert kv.exclusive_cells(0) == 1  # only position 3 is not shared
    kv.close(0)
    assert kv.used == 4  # the shared cells stay while slot 1 holds them
    kv.close(1)
    assert kv.used == 0 and kv.free == 100


def test_longest_prefix_picks_the_best_slot():
    kv = KVLedger(100)
    for slot, toks in [(0, [1, 2, 3]), (1, [1, 2, 3, 4, 5]), (2, [7])]:
        kv.open(slot)
        kv.append(slot, toks)
    assert kv.longest_prefix([1, 2, 3, 4, 9], [0, 1, 2]) == (1, 4)
    assert kv.longest_prefix([8], [0, 1, 2]) == (None, 0)
    assert kv.longest_prefix([1, 2, 3, 4], [0, 2]) == (0, 3)


def test_truncate_frees_the_tail():
    kv = KVLedger(10)
    kv.open(0)
    kv.append(0, [1, 2, 3, 4])
    kv.truncate(0, 2)
    assert kv.tokens(0) == [1, 2] and kv.used == 2
