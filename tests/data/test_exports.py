"""``speechssl.data`` imports its names on first use; every public name still resolves."""

from __future__ import annotations

import pytest

import speechssl.data


def test_every_public_name_resolves_to_its_module():
    for name in speechssl.data.__all__:
        value = getattr(speechssl.data, name)
        assert getattr(value, "__module__", speechssl.data._EXPORTS[name]).startswith("speechssl.data")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        speechssl.data.Nothing  # noqa: B018
