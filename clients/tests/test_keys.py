import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from clients import keys

KINDS = st.sampled_from(["live", "test"])
# Keys drawn by hypothesis, not by `secrets`: a strategy that depends on outside randomness is
# flaky by construction (hypothesis replays draws and must get the same key back).
TYPED_KEYS = st.builds(
    keys.typed_key,
    KINDS,
    st.text(alphabet=keys.ALPHABET, min_size=keys.RANDOM_LENGTH, max_size=keys.RANDOM_LENGTH),
)


@given(kind=KINDS)
def test_generated_keys_always_verify(kind):
    key = keys.generate_key(kind)

    assert key.startswith(keys.PREFIXES[kind])
    assert len(key) == keys.TYPED_LENGTH
    assert keys.has_valid_checksum(key)
    assert keys.plausible(key)


@given(key=TYPED_KEYS, data=st.data())
def test_a_key_with_one_character_changed_never_verifies(key, data):
    position = data.draw(st.integers(min_value=len("vo_live_"), max_value=len(key) - 1))
    replacement = data.draw(st.sampled_from(keys.ALPHABET).filter(lambda c: c != key[position]))

    mutated = key[:position] + replacement + key[position + 1 :]

    assert not keys.has_valid_checksum(mutated)


@given(key=TYPED_KEYS, data=st.data())
def test_a_key_with_two_neighbours_swapped_never_verifies(key, data):
    position = data.draw(st.integers(min_value=len("vo_live_"), max_value=len(key) - 2))
    assume(key[position] != key[position + 1])
    mutated = key[:position] + key[position + 1] + key[position] + key[position + 2 :]

    assert not keys.has_valid_checksum(mutated)


@given(key=TYPED_KEYS, cut=st.integers(min_value=1, max_value=10))
def test_truncated_or_extended_keys_never_verify(key, cut):
    assert not keys.has_valid_checksum(key[:-cut])
    assert not keys.has_valid_checksum(key + "A" * cut)


def test_random_part_is_base62_and_long_enough():
    key = keys.generate_key()

    random_part = key[len("vo_live_") : -keys.CHECKSUM_LENGTH]

    assert len(random_part) >= 32
    assert set(random_part) <= set(string.ascii_letters + string.digits)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("sk_test_123", True),  # the seed's client-supplied key
        ("short", False),
        ("has a space", False),
        ("vo_live_notachecksummedkey", False),
        ("x" * 257, False),
        ("", False),
    ],
)
def test_plausible(key, expected):
    assert keys.plausible(key) is expected


def test_hash_is_keyed_by_the_pepper(settings):
    first = keys.hash_key("sk_test_123")
    settings.API_KEY_PEPPER = "another-pepper"

    second = keys.hash_key("sk_test_123")

    assert first != second
    assert len(first) == 64
    assert "sk_test_123" not in first


def test_client_type_test_gets_test_keys():
    assert keys.kind_for("test") == "test"
    assert keys.kind_for("service") == "live"
