from orchestrator.engine.text import StopMatcher, Utf8Stream


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    shown = []
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        shown.append(text)
        if stopped:
            return "".join(shown), True
    return "".join(shown) + matcher.flush(), False


def test_stop_string_split_across_pieces_is_never_emitted():
    text, stopped = feed_all(StopMatcher(["</end>"]), ["Hello </", "en", "d> ignored"])
    assert (text, stopped) == ("Hello ", True)


def test_partial_stop_that_does_not_complete_is_released():
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False)
    assert m.feed("ART") == ("START", False)
    assert m.flush() == ""


def test_earliest_of_several_stops_wins():
    assert StopMatcher(["b", "a"]).feed("xxab") == ("xx", True)


def test_held_text_is_flushed_at_the_end():
    m = StopMatcher(["###"])
    assert m.feed("value #") == ("value ", False)
    assert m.flush() == "#"


def test_no_stops_passes_text_through():
    assert StopMatcher([]).feed("anything") == ("anything", False)


def test_utf8_character_split_across_tokens():
    data = "é😀".encode()
    stream = Utf8Stream()
    out = "".join(stream.feed(data[i : i + 1]) for i in range(len(data))) + stream.flush()
    assert out == "é😀"


def test_invalid_utf8_is_replaced_not_raised():
    stream = Utf8Stream()
    assert stream.feed(b"a\xffb") + stream.flush() == "a\ufffdb"
