"""Money: integer minor units plus an ISO 4217 currency; decimal strings outside."""

from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# ISO 4217 codes whose minor unit is not 2 digits.
_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    **dict.fromkeys("CLF UYW".split(), 4),
}

# Active ISO 4217 currency codes (funds and precious metals left out).
_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL
    BSD BTN BWP BYN BZD CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS
    INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD
    LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH
    UGX USD UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)


def _known_currency(code: str) -> str:
    if code not in _CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


Currency = Annotated[
    str,
    Field(
        description="ISO 4217 currency code",
        json_schema_extra={"enum": sorted(_CURRENCIES)},
    ),
    AfterValidator(_known_currency),
]


def exponent(currency: str) -> int:
    """Digits after the decimal point in the currency's minor unit."""
    return _EXPONENTS.get(currency, 2)


def to_minor(amount: str | Decimal, currency: str) -> int:
    """Parse a decimal amount into minor units, refusing sub-minor precision."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not a decimal amount") from None
    if not value.is_finite():
        raise ValueError(f"{amount!r} is not a decimal amount")
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise ValueError(
            f"{amount} has more decimals than {currency} allows ({exponent(currency)})"
        )
    return int(minor)


def format_minor(minor: int, currency: str) -> str:
    """Render minor units as the decimal string the API shows, e.g. 1999 -> '19.99'."""
    digits = exponent(currency)
    return f"{Decimal(minor).scaleb(-digits):.{digits}f}"


class Money(BaseModel):
    """An amount as the API shows it: a decimal string and its currency."""

    model_config = ConfigDict(frozen=True)

    amount: str
    currency: str

    @classmethod
    def of(cls, minor: int, currency: str) -> "Money":
        return cls(amount=format_minor(minor, currency), currency=currency)
