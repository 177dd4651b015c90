"""ISO reference tables the validation rules read: currencies (ISO 4217) and countries
(ISO 3166-1 alpha-2), from pycountry, loaded once at import."""

from __future__ import annotations

import pycountry

# XTS is reserved for testing and XXX means "no currency": neither can be a card's currency.
_NOT_A_CURRENCY = frozenset({"XTS", "XXX"})

CURRENCIES: frozenset[str] = frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_A_CURRENCY
COUNTRIES: frozenset[str] = frozenset(c.alpha_2 for c in pycountry.countries)
