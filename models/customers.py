"""Customers: one card per email address, built from the orders placed with it.

A customer's id is derived from the normalised email (see `customer_id_for`),
so the API knows an order's customer without a lookup, a retried write finds
the same card, and the database computes the same id for `orders.customer_id`
(db/customers.py holds the SQL twin of these functions).
"""

import hashlib
import re
import uuid

# Only ASCII letters are folded, so that Python and PostgreSQL (whose lower()
# depends on the database's locale) always agree on the normalised form.
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_NOT_PHONE = re.compile(r"[^0-9+]")
# Prefix of the hashed name, so customer ids never collide with other md5 ids.
ID_PREFIX = "customer:"


def normalise_email(email: str) -> str:
    """The form a customer is matched by: no spaces around, ASCII lower-case."""
    return email.strip(" ").translate(_ASCII_LOWER)


def normalise_phone(phone: str) -> str:
    """Digits and a leading '+' only: '+49 (30) 123-45' -> '+493012345'."""
    return _NOT_PHONE.sub("", phone)


def customer_id_for(email: str) -> str:
    """The customer id of an email: a name-based (MD5, version 3) UUID."""
    digest = hashlib.md5(
        (ID_PREFIX + normalise_email(email)).encode(), usedforsecurity=False
    ).digest()
    return str(uuid.UUID(bytes=digest, version=3))


def customer_url(customer_id: str) -> str:
    return f"/v1/customers/{customer_id}"
