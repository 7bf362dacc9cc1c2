"""Products, inventory and the health probes."""

import httpx

from tests.conftest import FIRST, SECOND, MakeProduct


async def test_inventory_shows_each_warehouse(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    sku = await make_product({FIRST: 4, SECOND: 1})

    inventory = (await api.get(f"/v1/inventory/{sku}")).json()

    assert (inventory["on_hand"], inventory["reserved"], inventory["available"]) == (
        5,
        0,
        5,
    )
    assert [(w["warehouse"], w["available"]) for w in inventory["warehouses"]] == [
        (FIRST, 4),
        (SECOND, 1),
    ]


async def test_products_are_paged_with_prices_and_stock(
    api: httpx.AsyncClient, make_product: MakeProduct
) -> None:
    made = {
        await make_product({FIRST: 3}, price_minor=1999),
        await make_product({SECOND: 2}, price_minor=500),
    }

    found = {}
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/products", params=params)).json()
        found.update({p["sku"]: p for p in page["items"] if p["sku"] in made})
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert found.keys() == made
    assert {p["available"] for p in found.values()} == {3, 2}
    assert {p["prices"][0]["amount"] for p in found.values()} == {"19.99", "5.00"}


async def test_health_and_readiness(api: httpx.AsyncClient) -> None:
    assert (await api.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = (await api.get("/readyz")).json()
    assert ready["checks"] == {"database": "ok", "temporal": "ok"}
