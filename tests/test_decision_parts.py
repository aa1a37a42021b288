"""The pure parts of scored decisions, with plain data: candidates, codes, assignment, calibration, choice."""

from __future__ import annotations

import math
import random

import pytest

from agents.arguments import FieldChoice, assign, candidate_features, optional_pick
from agents.calibration import (
    IDENTITY_RECALIBRATION,
    RECALIBRATION_FEATURES,
    Logistic,
    auroc,
    calibrated_ece,
    expected_calibration_error,
    fit_choice,
    fit_logistic,
    logit,
    recalibrate,
    recalibration_features,
    reliability,
)
from agents.candidates import chunk_lists, expressions, field_candidates, numbers, quoted, string_spans, written_numbers
from agents.choice import choose_tool, field_words, lexical_overlap, name_overlap, rest_overlap, tool_words, words
from agents.codes import currencies, currency_mentions, date_format, date_mentions, dates, write_date
from agents.nearby import echo, nearness, places, tokens
from agents.scoring import Scored, scoring_messages, tool_line
from orchestrator.types import ChatMessage

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("text", "wanted"), [
    ("a base of 10 units and height of 5", [10, 5]),
    ("net income of $2,000,000 and 5% rate", [2000000, 5, 0.05]),
    ("213 million people, 8.5 million km", [213, 213000000, 8.5, 8500000]),
    ("charges of 1e-9 and 2e-9", [1e-09, 2e-09]),
    ("6cm by 300K, the 19th century", [6, 300, 19]),
    ("twelve eggs and a dozen more", [12]),
    ("revenues of $1M and $1.2M", [1, 1000000, 1.2, 1200000]),
])
def test_numbers_as_people_write_them(text, wanted):
    found = numbers([text])
    assert all(any(math.isclose(w, f) for f in found) for w in wanted), found


def test_codes_from_names_and_dates_in_the_layout_asked_for():
    assert currencies("How many Canadian dollars for 500 US dollars?") == ["CAD", "USD"]
    assert currencies("Convert 20 GBP to euros") == ["GBP", "EUR"]
    assert dates("from 2023 April 4th to April 8th") == [(2023, 4, 4), (None, 4, 8)]
    assert dates("closing March.11, 2022 and 15th October, 2023") == [(2022, 3, 11), (2023, 10, 15)]
    assert date_format("The birth date. Must be in MM-DD-YYYY format.") == "MM-DD-YYYY"
    assert date_format("Date, formatted as yyyy-mm-dd.") == "YYYY-MM-DD"
    assert write_date((2022, 3, 11), "MM-DD-YYYY") == "03-11-2022" and write_date((None, 4, 8)) is None


def test_field_candidates_by_type():
    text = ["Book 'The Plaza' in New York for 3 nights from July 10, 2022, paying in euros."]
    assert [c.value for c in field_candidates("nights", {"type": "integer"}, text)][:3] == [3, 10, 2022]
    assert field_candidates("currency", {"type": "string", "description": "Currency code."}, text)[0].value == "EUR"
    assert field_candidates("check_in_date", {"type": "string"}, text)[0].value == "2022-07-10"
    strings = [c.value for c in field_candidates("hotel", {"type": "string"}, text)]
    assert "The Plaza" in strings and "New York" in strings
    assert [c.value for c in field_candidates("ok", {"type": "boolean"}, text)] == [True, False]
    assert [c.value for c in field_candidates("unit", {"type": "string", "enum": ["km", "miles"]}, ["in miles"])][:1] == ["miles"]
    assert [c.value for c in field_candidates("months", {"type": "integer"}, ["next month"])][:2] == [1, 0]  # fallbacks


def test_spans_and_quotes():
    spans = dict(string_spans(["What's the distance between Boston, MA and Washington D.C. by train?"]))
    assert spans.get("Boston, MA") == "name" and "Washington D.C" in spans
    assert sorted(quoted(["Analyze 'I love it here!' and \"Good\""])) == ["Good", "I love it here!"]
    assert quoted(["Retrieve the DNA molecule with id `DNA123`."]) == ["DNA123"]
    assert dict(string_spans(["criminal cases of Mr. X in New York"])).get("Mr. X") == "name"
    assert dict(string_spans(["the case information of the R vs Adams legal case"])).get("R vs Adams") == "name"
    # an aside in brackets is never cut open: "Glucose (C6H12O6" is no one's value
    spans = dict(string_spans(["Calculate the molecular weight of Glucose (C6H12O6) in grams/mole."]))
    assert spans.get("Glucose") == "name" and "C6H12O6" in spans
    assert not any(s.count("(") != s.count(")") for s in spans)


def test_a_sentence_does_not_make_its_first_word_a_name():
    spans = dict(string_spans(["Mix yellow and blue colors. Book a room in Paris, France."]))
    assert spans["Mix"] != "name" and spans["Book"] != "name" and spans.get("Paris, France") == "name"
    # a run of capitalised words that opens a sentence is also a name without its first word
    spans = dict(string_spans(["Retrieve Personal Info and Job History data."]))
    assert spans.get("Retrieve Personal Info") == spans.get("Personal Info") == spans.get("Job History") == "name"
    assert "History" not in spans or spans["History"] == "word"
    assert dict(string_spans(["New York in May? Call Anna Smith now."])).get("Anna Smith") == "name"


def test_a_number_goes_on_a_name_but_a_date_does_not():
    names = [s for s, source in string_spans(["The air in London 2022/08/16, on Windows 10 with Python 3.11 in a Boeing 737-800 "
                                              "from Paris 08/16 for La Liga 2020-2021"]) if source == "name"]
    assert {"London", "Windows 10", "Python 3.11", "Boeing 737-800", "Paris", "La Liga"} <= set(names)
    assert not any("/" in n or "2020" in n for n in names)


def test_words_listed_with_and_are_a_list_candidate():
    assert chunk_lists(["Check the price of tomatoes and lettuce at the Whole Foods."]) == [["tomatoes", "lettuce"]]
    assert chunk_lists(["delete their email addresses, phone numbers and social security numbers"]) == [
        ["email addresses", "phone numbers", "social security numbers"]]
    assert chunk_lists(["a vegetarian pasta with cheese"]) == [] and chunk_lists(["camping, hiking or fishing"]) == [["camping", "hiking", "fishing"]]
    values = [c.value for c in field_candidates("items", {"type": "array", "items": {"type": "string"}}, ["price of tomatoes and lettuce"])]
    assert values[0] == ["tomatoes", "lettuce"]


def test_quoted_texts_listed_together_are_one_list_and_chunks_join_with_of():
    text = ["Run a regression with predictor variables 'Age', 'Income' and 'Education' and a target 'Purchase_Amount'."]
    values = [c.value for c in field_candidates("predictors", {"type": "array", "items": {"type": "string"}}, text)]
    assert values[0] == ["Age", "Income", "Education"]
    spans = dict(string_spans(["Who first proposed the theory of evolution?"]))
    assert spans.get("theory of evolution") == "chunk" and spans.get("theory") == "chunk"


def test_formulas_and_arithmetic_as_candidates_in_python_notation():
    assert expressions(["the derivative of the function 3x^2 + 2x - 1."]) == ["3x^2 + 2x - 1"]
    assert expressions(["the area under the curve y=x^2 from x=1 to x=3"]) == ["x^2"]
    assert expressions(["What is 17 times 23, and 100 divided by 4?"]) == ["17 * 23", "100 / 4"]
    assert expressions(["coefficients a = 3, b = -11 and c = -4, from 2012 to 2015, 1-2 weeks"]) == []
    found = [(c.value, c.source) for c in field_candidates("function", {"type": "string"}, ["Integrate y = x^3 from 1 to 2"])]
    assert found[:2] == [("x^3", "expression"), ("x**3", "formula")]


def test_the_words_beside_a_value_say_which_field_it_fills():
    text = "accelerating at 2 meters/second^2 for a duration of 5 seconds, starting from a speed of 10"
    assert tokens("DNA123 weighs 150lbs, x = -2 m/s^2") == ["dna123", "weighs", "150", "lbs", "x", "-2", "m", "s"]
    assert [nearness(v, words("acceleration"), text) for v in (2, 5, 10)] == [0.5, 0.0, 0.0]
    assert [nearness(v, words("speed"), text) for v in (2, 5, 10)] == [0.0, 0.0, 0.5]
    seconds = words("The time in seconds")
    # "5 seconds" beside it; "2 meters/second" a word away; "seconds" six words before 10
    assert nearness(5, seconds, text) > nearness(2, seconds, text) > nearness(10, seconds, text) == 0.0
    assert nearness(213000000, words("population"), "a population of 213 million") == 0.0  # not written as such
    # only the value's own clause: "decay rate" follows 0.5, but after "and", so it says nothing of it
    clauses = "synaptic input rate of 200 and weight 0.5 and decay rate of 0.1."
    assert [nearness(v, words("decay_rate"), clauses) for v in (200, 0.5, 0.1)] == [0.5, 0.0, 1 / 2 + 1 / 3]
    assert nearness(3, words("charge"), "a charge of 2 coulombs, 3 meters away") == 0.0 < nearness(2, words("charge"), "a charge of 2")
    assert places(5, "coefficients 5, 20 and -25 or 2.5") == [1] and places([3, 2, 1], "A [3, 2, 1] and B [1, 2, 3]") == [1]
    assert echo("DNA", words("DNA_id")) == 1.0 and echo("DNA123", words("DNA_id")) == 0.0 and echo("human cell", words("cell_type")) == 0.5


def _choice(name, values, lps, required=True):
    from agents.candidates import Candidate

    return FieldChoice(name, required, [Candidate(v, "number") for v in values]), [Scored(lp, 1) for lp in lps]


def test_joint_assignment_gives_a_value_once_and_follows_the_written_order():
    params = {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}, "c": {"type": "integer"}}, "required": ["a", "b", "c"]}
    fields = [_choice("a", [2, 3, -4], [-0.3, -5.5, -22.0]), _choice("b", [2, 3, -4], [-2.0, -4.0, -19.0]),
              _choice("c", [2, 3, -4], [-4.0, -6.2, -21.0])]
    args, missing = assign([f for f, _ in fields], [s for _, s in fields], params, ["coefficients 2, 3 and -4"],
                           Logistic({}, -9.0), {"lp": 1.0}, 1.0)
    assert args == {"a": 2, "b": 3, "c": -4} and missing == []
    twice = [_choice("a", [2], [-0.1]), _choice("b", [2], [-0.1])]
    args, _ = assign([f for f, _ in twice], [s for _, s in twice], {"properties": {"a": {}, "b": {}}}, ["2 plus 2"], Logistic({}, -9.0))
    assert args == {"a": 2, "b": 2}  # written twice: given twice
    once = [_choice("a", [5, 20, -25], [-0.3, -5.3, -20.5]), _choice("b", [5, 20, -25], [-1.8, -3.3, -16.9]),
            _choice("c", [5, 20, -25], [-4.2, -5.3, -18.8])]
    args, _ = assign([f for f, _ in once], [s for _, s in once], params, ["coefficients 5, 20, and -25"], Logistic({}, -9.0), {"lp": 1.0}, 1.0)
    assert args == {"a": 5, "b": 20, "c": -25}  # "-25" does not write 5 a second time


def test_numbers_keep_how_they_were_written_and_rates_read_percentages_as_fractions():
    assert written_numbers(["a rate of 8% on $20,000 for two years"]) == {8: "8%", 0.08: "8%", 20000: "$20,000", 2: "two"}
    cands = field_candidates("annual_rate", {"type": "number", "description": "The annual rate."}, ["a rate of 8% for two years"])
    choice = FieldChoice("annual_rate", True, cands, [Scored(-1.0, 1)] * len(cands))
    feats = {c.value: candidate_features(choice, i, {"description": "The annual rate."}, "a rate of 8% for two years")
             for i, c in enumerate(cands)}
    assert feats[0.08]["percent_fraction"] == 1.0 and feats[8]["percent_fraction"] == 0.0
    assert feats[0.08]["near_name"] == feats[8]["near_name"] > 0  # both written as "8%", beside "rate"
    as_percent = candidate_features(choice, cands.index(next(c for c in cands if c.value == 8)),
                                    {"description": "The increase in percent."}, "a rate of 8%")
    assert as_percent["percent_whole"] == 1.0


def test_numbers_are_taken_in_the_order_written_and_a_magnitude_bare_is_told_apart():
    text = "the top five restaurants rated above 4/5, with 100 million shares"
    assert written_numbers([text]) == {5: "five", 4: "4", 100: "100 million", 100000000: "100 million"}
    cands = field_candidates("shares", {"type": "integer"}, [text])
    choice = FieldChoice("shares", True, cands, [Scored(-1.0, 1)] * len(cands))
    feats = {c.value: candidate_features(choice, i, {}, text) for i, c in enumerate(cands)}
    assert feats[100]["unscaled"] == 1.0 and feats[100000000]["unscaled"] == 0.0 and "unscaled" not in feats[5]
    assert feats[5]["near_name"] == 0.0 and candidate_features(FieldChoice("top", True, cands, choice.scores), 0, {}, text)["near_name"] == 1.0


def test_codes_follow_the_order_the_request_names_them_in():
    assert currency_mentions("Convert 150 Euros to Canadian dollars.") == {"EUR": "Euros", "CAD": "Canadian dollars"}
    assert date_mentions("from July 10, 2022 to July 20, 2022") == [((2022, 7, 10), "July 10, 2022"), ((2022, 7, 20), "July 20, 2022")]
    text = ["Convert 150 Euros to Canadian dollars."]
    params = {"properties": {"from_currency": {"type": "string", "description": "Currency code."},
                             "to_currency": {"type": "string", "description": "Currency code."}},
              "required": ["from_currency", "to_currency"]}
    choices = [FieldChoice(name, True, field_candidates(name, params["properties"][name], text)) for name in params["properties"]]
    assert [c.written for c in choices[0].candidates[:2]] == ["Euros", "Canadian dollars"]
    # the model slightly prefers the codes the wrong way round; where the request writes them decides
    def scored(choice: FieldChoice, preferred: str) -> list[Scored]:
        return [Scored(-9.0 if c.source != "currency" else -1.0 if c.value == preferred else -1.2, 1) for c in choice.candidates]

    scores = [scored(choices[0], "CAD"), scored(choices[1], "EUR")]
    args, _ = assign(choices, scores, params, text, Logistic({}, -9.0), {"lp": 1.0}, 1.0)
    assert args == {"from_currency": "EUR", "to_currency": "CAD"}


def test_a_currency_enum_reads_the_currencies_the_request_names():
    schema = {"type": "string", "enum": ["USD", "EUR", "CHF"], "description": "Currency the amount is in."}
    found = field_candidates("source", schema, ["How much is 300 Swiss francs in US dollars?"])
    assert [(c.value, c.source, c.written) for c in found] == [("CHF", "currency", "Swiss francs"), ("USD", "currency", "US dollars"),
                                                               ("EUR", "enum", None)]
    # what the request asks for is "much"; "Swiss francs" it gives, as CHF
    assert rest_overlap("How much is 300 Swiss francs?", words("how much money"), [300, "CHF", "Swiss francs"]) == 1.0
    assert rest_overlap("How much is 300 Swiss francs?", words("how much money"), [300, "CHF"]) == pytest.approx(1 / 3)


def test_one_written_date_fills_one_field_in_whichever_layout():
    text = ["Book a room from July 10, 2022 to July 20, 2022."]
    params = {"properties": {"from_date": {"type": "string", "description": "Start date, MM-DD-YYYY."},
                             "to_date": {"type": "string", "description": "End date, MM-DD-YYYY."}},
              "required": ["from_date", "to_date"]}
    choices = [FieldChoice(name, True, field_candidates(name, params["properties"][name], text)) for name in params["properties"]]
    # the model likes the first date in either layout best for both fields
    scores = [[Scored(-1.0 if "-10" in str(c.value) else -1.5 if c.source == "date" else -9.0, 1) for c in choice.candidates]
              for choice in choices]
    args, _ = assign(choices, scores, params, text, Logistic({}, -9.0), {"lp": 1.0}, 1.0)
    assert args == {"from_date": "07-10-2022", "to_date": "07-20-2022"}


def test_a_year_is_told_apart_from_a_count():
    text = "two nights at the Hilton from 10th December 2022"
    cands = field_candidates("nights", {"type": "integer"}, [text])
    choice = FieldChoice("nights", True, cands, [Scored(-1.0, 1)] * len(cands))
    feats = {c.value: candidate_features(choice, i, {"type": "integer"}, text) for i, c in enumerate(cands)}
    assert feats[2022].get("year_elsewhere") == 1.0 and "year_elsewhere" not in feats[2]
    assert feats[10].get("in_date") == 1.0 and "in_date" not in feats[2]  # "10th December 2022": a day
    year = FieldChoice("year", True, cands, choice.scores)
    assert candidate_features(year, cands.index(next(c for c in cands if c.value == 2022)), {}, text).get("year_for_year") == 1.0


def test_a_span_that_names_the_field_or_is_part_of_a_name_is_told_apart():
    text = "What are the opening hours of the Metropolitan Museum of Art on Saturday?"
    cands = field_candidates("museum_name", {"type": "string"}, [text])
    choice = FieldChoice("museum_name", True, cands, [Scored(-1.0, 1)] * len(cands))
    feats = {c.value: candidate_features(choice, i, {}, text.lower()) for i, c in enumerate(cands)}
    assert feats["Metropolitan Museum of Art"].get("echo_part") == 1.0 and "echo_name" not in feats["Metropolitan Museum of Art"]
    assert feats["Museum"].get("echo_name") == 1.0 and "echo_part" not in feats["Museum"]
    assert feats["Metropolitan"]["inside_name"] == 1.0 and feats["Metropolitan Museum of Art"]["inside_name"] == 0.0


def test_a_place_field_reads_the_words_that_introduce_a_place():
    text = "Predict the price of a house in San Francisco with an area of 1800 square feet."
    schema = {"type": "string", "description": "Location of the house."}
    cands = field_candidates("location", schema, [text])
    choice = FieldChoice("location", True, cands, [Scored(-1.0, 1)] * len(cands))
    cue = {c.value: candidate_features(choice, i, schema, text.lower()).get("place_cue") for i, c in enumerate(cands)}
    assert cue["San Francisco"] == 1.0 and cue["area of 1800 square feet"] == 0.0
    count = FieldChoice("count", True, cands, choice.scores)  # "count" is no "country"
    assert "place_cue" not in candidate_features(count, cands.index(next(c for c in cands if c.value == "San Francisco")), {}, text.lower())


def test_a_flag_set_true_is_one_the_request_names():
    text = "the details of case 1234, and verify if it's already closed."
    cands = field_candidates("closed_status", {"type": "boolean"}, [text])
    choice = FieldChoice("closed_status", True, cands, [Scored(-1.0, 1)] * len(cands))
    feats = {c.value: candidate_features(choice, i, {"type": "boolean"}, text) for i, c in enumerate(cands)}
    assert feats[True]["bool_named"] == 0.5 and "bool_named" not in feats[False]  # "closed", not "status"
    other = FieldChoice("want_year", True, cands, choice.scores)
    assert candidate_features(other, cands.index(next(c for c in cands if c.value is True)), {}, text)["bool_named"] == 0.0


def test_an_optional_flag_is_written_with_the_value_that_is_not_its_default():
    from agents.candidates import Candidate

    flag = FieldChoice("detailed", False, [Candidate(True, "bool"), Candidate(False, "bool")], probs=[0.2, 0.8])
    assert optional_pick(flag, {"type": "boolean", "default": False}) == 0
    assert optional_pick(flag, {"type": "boolean", "default": True}) == 1
    other = FieldChoice("unit", False, [Candidate("km", "enum"), Candidate("miles", "enum")], probs=[0.3, 0.7])
    assert optional_pick(other, {"type": "string"}) == 1


def test_an_optional_field_is_written_with_its_likeliest_value_that_is_not_its_default():
    from agents.candidates import Candidate

    count = FieldChoice("count", False, [Candidate(5, "default"), Candidate(10, "number"), Candidate(16, "number")],
                        probs=[0.6, 0.3, 0.1])
    assert optional_pick(count, {"type": "integer", "default": 5}) == 1  # writing the default changes nothing
    assert optional_pick(count, {"type": "integer"}) == 0
    only = FieldChoice("count", False, [Candidate(5, "default")], probs=[1.0])
    assert optional_pick(only, {"type": "integer", "default": 5}) == 0


def test_a_value_beside_the_fields_name_wins_under_a_weight_for_it():
    params = {"properties": {"charge": {"type": "number"}, "distance": {"type": "number"}}, "required": ["charge", "distance"]}
    text = ["the electric field at a point 3 meters away from a charge of 2 coulombs"]
    picks = []
    for weights in ({"lp": 1.0}, {"lp": 1.0, "near_name": 6.0}):
        fields = [_choice("charge", [3, 2], [-1.0, -1.5]), _choice("distance", [3, 2], [-1.2, -1.0])]
        args, _ = assign([f for f, _ in fields], [s for _, s in fields], params, text, Logistic({}, -9.0), weights)
        picks.append(args)
    assert picks == [{"charge": 3, "distance": 2}, {"charge": 2, "distance": 3}]


def test_an_optional_field_is_written_only_when_include_says_so():
    params = {"properties": {"x": {"type": "integer"}, "n": {"type": "integer"}}, "required": ["x"]}
    fields = [_choice("x", [5, 7], [-0.1, -3.0]), _choice("n", [5, 7], [-4.0, -0.2], required=False)]
    for bias, wanted in ((-9.0, {"x": 5}), (9.0, {"x": 5, "n": 7})):
        args, _ = assign([f for f, _ in fields], [s for _, s in fields], params, ["5 and 7"], Logistic({}, bias))
        assert args == wanted


def test_logistic_fit_recovers_a_separating_weight_and_is_calibrated():
    rng = random.Random(1)
    rows, labels = [], []
    for _ in range(400):
        x = rng.uniform(-3, 3)
        rows.append({"x": x})
        labels.append(rng.random() < 1 / (1 + math.exp(-2 * x)))
    model = fit_logistic(rows, labels, l2=0.01)
    assert 1.5 < model.weights["x"] < 2.6 and abs(model.bias) < 0.4
    probs = [model(r) for r in rows]
    assert expected_calibration_error(probs, labels) < 0.08
    assert auroc(probs, labels) > 0.8 and auroc([0.5] * 10, [True, False] * 5) == 0.5
    assert sum(b["count"] for b in reliability(probs, labels)) == 400


def test_identity_recalibration_keeps_the_confidence():
    for p in (0.03, 0.5, 0.8, 0.999):
        assert recalibrate(IDENTITY_RECALIBRATION, p) == pytest.approx(p, abs=1e-9)
    assert recalibration_features(0.5) == {"logit": 0.0} and logit(1.0) < 14 and logit(0.0) > -14


def test_platt_map_fixes_overconfidence_and_keeps_the_ranking():
    """Decisions claim p but are right with sigmoid(logit(p) / 2 - 0.5): a Platt map fit on them
    finds the slope and offset, brings the ECE down, and ranks the decisions as before."""
    rng = random.Random(3)
    claimed, labels = [], []
    for _ in range(1500):
        p = rng.uniform(0.05, 0.98)
        claimed.append(p)
        labels.append(rng.random() < 1 / (1 + math.exp(-(logit(p) / 2 - 0.5))))
    model = fit_logistic([recalibration_features(p) for p in claimed], labels, RECALIBRATION_FEATURES, l2=0.01)
    assert 0.35 < model.weights["logit"] < 0.65 and -0.75 < model.bias < -0.25
    fixed = [recalibrate(model, p) for p in claimed]
    assert expected_calibration_error(claimed, labels) > 0.12 and expected_calibration_error(fixed, labels) < 0.05
    assert auroc(fixed, labels) == pytest.approx(auroc(claimed, labels))


def test_the_ece_of_a_calibrated_model_on_few_decisions_is_far_from_zero():
    stated = [0.1 + 0.8 * i / 63 for i in range(64)]
    few, few_p95 = calibrated_ece(stated)
    many, _ = calibrated_ece(stated * 10)
    assert 0.08 < few < few_p95 and many < few / 2  # shrinks as 1/sqrt(n)
    assert calibrated_ece(stated) == (few, few_p95) and calibrated_ece([]) == (0.0, 0.0)  # seeded


def test_what_the_request_asks_for_is_its_words_besides_the_values_it_gives():
    vocabulary = tool_words("get_crime_rate", "Crime rate of a city.", {"properties": {"city": {}, "year": {}}})
    request = "Provide the official crime rate in San Francisco in 2020"
    assert lexical_overlap(request, vocabulary) == pytest.approx(2 / 7)
    assert rest_overlap(request, vocabulary, ["San Francisco", 2020]) == pytest.approx(2 / 4)
    assert rest_overlap("Francisco 2020", vocabulary, ["San Francisco", 2020]) == 0.0  # nothing asked
    # the fields' descriptions and enum values, nested ones too, say what else the tool serves
    parameters = {"properties": {"type": {"type": "string", "enum": ["violent", "property"], "description": "Kind of crime."},
                                 "filters": {"type": "array", "items": {"type": "object", "properties": {
                                     "area": {"type": "string", "description": "A neighbourhood."}}}}}}
    assert field_words(parameters) == words("violent property kind crime neighbourhood")
    assert rest_overlap("Provide the violent crime rate in San Francisco in 2020", vocabulary | field_words(parameters),
                        ["San Francisco", 2020]) == pytest.approx(3 / 4)  # all but "provide"


def test_name_overlap_reads_the_tool_name_only():
    request = "What is the distance between New York and Los Angeles?"
    assert name_overlap(request, "geodistance.find") == 0.0  # "geodi" is not "dista": stems of whole words
    assert name_overlap(request, "distance.measure") == 0.5 and name_overlap(request, "flights.search") == 0.0
    assert name_overlap("Solve the quadratic equation", "math_roots.quadratic") == pytest.approx(1 / 3)
    assert name_overlap("anything", "get") == 0.0  # a name of stop words only


def test_fit_choice_ranks_the_right_option_first():
    groups = [[{"f": 1.0, "g": 0.0}, {"f": 0.0, "g": 1.0}] for _ in range(20)]
    w = fit_choice(groups, [0] * 20, ["f", "g"])
    assert w["f"] > w["g"]
    best, probs = choose_tool(groups[0], w)
    assert best == 0 and probs[0] > 0.5


def test_tool_words_and_the_catalogue_line():
    words = tool_words("math.factorial", "Calculate the factorial of a given number.", {"properties": {"number": {}}})
    assert lexical_overlap("What is the factorial of 5?", words) == 1.0
    line = tool_line("math.factorial", "Factorial.", {"properties": {"number": {"type": "integer", "description": "The number."}}, "required": ["number"]})
    assert line == "- math.factorial(number: integer): Factorial.\n    number: The number."
    messages = scoring_messages("Be brief.", [("t", "T.", {"properties": {}})], [ChatMessage(role="user", content="hi")], examples=True)
    assert messages[0].role == "system" and "Examples (with other tools)" in messages[0].content and messages[-1].content == "hi"
