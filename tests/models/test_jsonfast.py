"""JSON in and out of the database: orjson's speed, the standard library's exactness."""
import json
import math

from crm_ingest.models import jsonfast


def test_integers_beyond_64_bits_keep_every_digit():
    value = {"id": 123456789012345678901234567890, "n": -98765432109876543210, "small": 42}
    text = jsonfast.dumps(value)
    assert jsonfast.loads(text) == value
    assert jsonfast.loads(text.encode()) == value
    assert jsonfast.loads(memoryview(text.encode())) == value


def test_a_long_digit_run_inside_a_string_is_read_as_it_is():
    value = [["f:2", "row", {"fields": {"phone": "0046701234567890123456", "email": "a@example.com"}}]]
    assert jsonfast.loads(jsonfast.dumps(value)) == value


def test_nan_and_infinity_that_json_wrote_are_read_back():
    text = json.dumps({"a": float("nan"), "b": float("inf")})
    read = jsonfast.loads(text)
    assert math.isnan(read["a"]) and read["b"] == float("inf")


def test_non_ascii_and_escapes_round_trip():
    value = {"namn": "Åsa Öberg", "note": "tab\\there \"quoted\" \u2603 \x01", "nul": "a\x00b"}
    assert jsonfast.loads(jsonfast.dumps(value)) == value
    assert jsonfast.loads(jsonfast.dumps_bytes(value)) == value


def test_eighteen_digits_go_through_orjson_and_stay_exact():
    value = {"n": 999999999999999999, "m": 9223372036854775807 // 10}
    assert jsonfast.loads(jsonfast.dumps(value)) == value


def test_text_with_a_lone_surrogate_is_read_by_the_standard_library():
    assert jsonfast.loads('{"a": "x\ud800y"}') == {"a": "x\ud800y"}
